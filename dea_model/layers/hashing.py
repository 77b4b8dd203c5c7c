"""Combo-ID hashing in torch (paper Eq. 4-5), bit-exact with ``features.hashing.combo_hash``.

The spec (DESIGN.md, ``features/hashing.py``): the combo ID of an ordered pair of feature IDs is
MurmurHash3_x86_32 of the 16-byte key ``le64(a) || le64(b)``, i.e. the four 32-bit blocks
``lo(a), hi(a), lo(b), hi(b)``, with seed ``s_m`` for codebook ``m``; address = hash mod size.

torch has no usable uint32 arithmetic on CPU (no shifts or adds), so the 32-bit state is kept in
**int32 bit patterns**: xor/or/and/left-shift/wrapping multiply and add give the same bits as
uint32; the logical right shift is an arithmetic shift followed by a mask. No int64 masks after
each multiply, half the memory traffic of an int64 port.

Pair addresses (:func:`combo_addresses`) factorise the hash: the block mixes of each ID and the
state after the two blocks of ``a`` depend on one field only, so they are computed per (sample,
field, seed) — O(n) — and only the last two rounds and the finaliser run per pair — O(n²). The
per-pair part runs in place on a cache-sized buffer, a block of samples at a time (a chain of ~20
elementwise ops, memory-bound on CPU).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["combo_hash", "combo_addresses", "codebook_seeds", "to_int32"]


def to_int32(c: int) -> int:
    """The int32 bit pattern (as a Python int) of the low 32 bits of ``c``."""
    c &= 0xFFFFFFFF
    return c - (1 << 32) if c >= 1 << 31 else c


_C1, _C2 = to_int32(0xCC9E2D51), to_int32(0x1B873593)
_N = to_int32(0xE6546B64)
_F1, _F2 = to_int32(0x85EBCA6B), to_int32(0xC2B2AE35)
_GOLDEN = 0x9E3779B9


def codebook_seeds(base_seed: int, count: int) -> list[int]:
    """Seeds s_m = base + m·0x9E3779B9 (mod 2³²) of codebooks m = 0 (main), 1..k (siamese)."""
    return [(base_seed + m * _GOLDEN) & 0xFFFFFFFF for m in range(count)]


def _halves(x: Tensor) -> tuple[Tensor, Tensor]:
    """lo(x), hi(x): the little-endian 32-bit blocks of int64 ``x`` as int32 bit patterns."""
    lo = x & 0xFFFFFFFF
    lo = lo - ((lo >> 31) << 32)  # to [-2³¹, 2³¹) exactly, so the cast below is value-preserving
    return lo.to(torch.int32), (x >> 32).to(torch.int32)


def _rotl_(h: Tensor, r: int, tmp: Tensor) -> Tensor:
    """h ← rotl32(h, r) in place (``tmp``: scratch of h's shape)."""
    torch.bitwise_right_shift(h, 32 - r, out=tmp).bitwise_and_((1 << r) - 1)
    return h.bitwise_left_shift_(r).bitwise_or_(tmp)


def _kmix(block: Tensor) -> Tensor:
    """k = rotl(block·c1, 15)·c2 (new tensor)."""
    k = block * _C1
    return _rotl_(k, 15, torch.empty_like(k)).mul_(_C2)


def _round_(h: Tensor, k: Tensor, tmp: Tensor) -> Tensor:
    """h ← rotl(h ⊕ k, 13)·5 + 0xE6546B64 in place."""
    h.bitwise_xor_(k)
    return _rotl_(h, 13, tmp).mul_(5).add_(_N)


def _finalise_(h: Tensor, tmp: Tensor) -> Tensor:
    """h ← fmix32(h ⊕ len) in place, len = 16 bytes."""
    h.bitwise_xor_(16)
    for shift, mult in ((16, _F1), (13, _F2), (16, None)):
        torch.bitwise_right_shift(h, shift, out=tmp).bitwise_and_((1 << (32 - shift)) - 1)
        h.bitwise_xor_(tmp)
        if mult is not None:
            h.mul_(mult)
    return h


def combo_hash(a: Tensor, b: Tensor, seed: int) -> Tensor:
    """MurmurHash3_x86_32(le64(a) ‖ le64(b), seed) as int64 values in [0, 2³²).

    a, b: int64 tensors (broadcast together), any device. Equals
    ``features.hashing.combo_hash(a, b, seed).astype(np.int64)`` element for element.
    """
    a, b = torch.broadcast_tensors(a.long(), b.long())
    (a_lo, a_hi), (b_lo, b_hi) = _halves(a), _halves(b)
    h = torch.full(a.shape, to_int32(seed), dtype=torch.int32, device=a.device)
    tmp = torch.empty_like(h)
    for block in (a_lo, a_hi, b_lo, b_hi):
        _round_(h, _kmix(block), tmp)
    return _finalise_(h, tmp).long() & 0xFFFFFFFF


def combo_addresses(ids: Tensor, left: Tensor, right: Tensor, seeds: Tensor, size: int,
                    chunk_pairs: int | None = 2**19) -> Tensor:
    """Codebook rows of every listed ordered pair under every seed, in one combined table.

    ``addr[m, b, p] = m·size + combo_hash(ids[b, left[p]], ids[b, right[p]], seeds[m]) mod size``

    Args:
        ids: (B, n) int64 feature IDs.
        left, right: (P,) int64 field indices of the pairs (query field, key field).
        seeds: (S,) int32 tensor of seed bit patterns (see :func:`codebook_seeds`, :func:`to_int32`).
        size: rows per codebook; S·size must be < 2³¹.
        chunk_pairs: on CPU the per-pair rounds run on blocks of about this many (seed, pair)
            cells, so that their ~20 in-place passes stay in cache (None: all at once, as on CUDA;
            at B = 1024, n = 39, 3 seeds that takes 60 ms instead of 30).
    Returns:
        (S, B, P) int32 row indices into a table of S·size rows (codebook-major, so each
        codebook's addresses are contiguous; int32 halves their memory, and index_select,
        index_add_ and embedding take it).
    """
    B, n = ids.shape
    S = seeds.numel()
    lo, hi = _halves(ids)
    k_lo, k_hi = _kmix(lo), _kmix(hi)  # (B, n) block mixes, once per field
    h_a = seeds.to(ids.device).view(S, 1, 1).expand(S, B, n).clone()  # (S, B, n)
    tmp = torch.empty_like(h_a)
    _round_(h_a, k_lo, tmp)
    _round_(h_a, k_hi, tmp)  # state after the 8 bytes of `a`, per field and seed
    if S * size >= 2**31:
        raise ValueError(f"{S} codebooks of {size} rows do not fit int32 row indices")
    offsets = (torch.arange(S, device=ids.device, dtype=torch.int32) * size).view(S, 1, 1)
    addr = torch.empty(S, B, left.numel(), dtype=torch.int32, device=ids.device)
    on_cpu = ids.device.type == "cpu" and not torch.compiler.is_compiling()
    chunk = max(1, chunk_pairs // max(1, S * left.numel()) if chunk_pairs and on_cpu else B)
    for c in range(0, B, chunk):  # from here on per pair, a cache-sized block of samples at a time
        h = h_a[:, c:c + chunk, left]  # (S, c, P)
        tmp = torch.empty_like(h)
        _round_(h, k_lo[c:c + chunk, right], tmp)
        _round_(h, k_hi[c:c + chunk, right], tmp)
        _finalise_(h, tmp)
        if size & (size - 1) == 0:  # power of two: the low bits of the int32 pattern are the uint32's
            h.bitwise_and_(size - 1)
        else:
            h = (h.long() & 0xFFFFFFFF).remainder_(size).int()
        torch.add(h, offsets, out=addr[:, c:c + chunk])
    return addr
