"""The hash spec: stable 64-bit feature IDs and 32-bit combo-ID addresses.

This module is the contract other models reuse. Changing ``HASH_SEED`` or any rule here is a new
``HASH_SPEC_VERSION`` (recorded in every manifest).

Feature ID of a value (spec v1)::

    feature_id(field, token) = mmh3.hash64(f"{field}\\x1f{token}".encode("utf-8"), seed=HASH_SEED, signed=True)[0]

``token`` is the raw value as a string for sparse fields (integers without a decimal point, e.g.
``"42"``; strings as they are), ``b<k>`` for bucket ``k`` of a dense field, and ``MISSING_TOKEN``
for a missing value of either kind.

Combo ID of an ordered pair of feature IDs (paper Eq. 4-5)::

    combo_hash(a, b, seed) = MurmurHash3_x86_32(le64(a) || le64(b), seed)      (uint32)

bit-exact with ``mmh3.hash(key, seed, signed=False)``; the codebook address is
``combo_hash(...) % codebook_size``.
"""

from __future__ import annotations

import mmh3
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.lib.stride_tricks import sliding_window_view

HASH_SPEC_VERSION = 1
HASH_SEED = 0x0DEA2025  # 233_447_461
MISSING_TOKEN = "__missing__"
FIELD_SEPARATOR = "\x1f"


def feature_id(field: str, token: str) -> int:
    """Reference (scalar) feature ID of one token: the spec, written once."""
    return mmh3.hash64(f"{field}{FIELD_SEPARATOR}{token}".encode("utf-8"), seed=HASH_SEED, signed=True)[0]


def _tokens(dictionary: pa.Array) -> pa.Array:
    """Canonical string tokens of distinct values (nulls stay null; NaN becomes null)."""
    arr = dictionary
    if pa.types.is_floating(arr.type):
        # Per value: an integral float is the integer's token (3.0 -> "3", like int 3); NaN is missing.
        arr = pc.if_else(pc.is_nan(arr), pa.scalar(None, arr.type), pc.add(arr, pa.scalar(0.0, arr.type)))
        integral = pc.and_(pc.equal(pc.floor(arr), arr), pc.less(pc.abs(arr), 2.0**53))
        as_int = pc.if_else(integral, arr, pa.scalar(0.0, arr.type)).cast(pa.int64()).cast(pa.string())
        arr = pc.if_else(integral, as_int, arr.cast(pa.string()))
    if pa.types.is_boolean(arr.type):
        arr = arr.cast(pa.int8())
    if not pa.types.is_string(arr.type):
        arr = arr.cast(pa.string())
    return arr


def _encode(values) -> tuple[np.ndarray, pa.Array]:
    """(indices, distinct values) of a column; nulls get index ``len(distinct)``."""
    arr = values if isinstance(values, (pa.Array, pa.ChunkedArray)) else pa.array(values, from_pandas=True)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.unify_dictionaries().combine_chunks() if pa.types.is_dictionary(arr.type) else arr.combine_chunks()
    encoded = arr if pa.types.is_dictionary(arr.type) else arr.dictionary_encode()
    distinct = encoded.dictionary
    indices = encoded.indices.fill_null(len(distinct)).to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
    return indices, distinct


def feature_ids(field: str, values) -> np.ndarray:
    """Feature IDs (int64) of a column of values, vectorised.

    The column is dictionary-encoded by Arrow in its own type (parquet dictionaries are reused),
    only the distinct values are turned into tokens and hashed (``hash64_tokens``, MurmurHash3 in
    NumPy), and the IDs are taken back by index: no Python call per row or per distinct value.
    Nulls, NaN and empty strings get the ID of ``MISSING_TOKEN``.
    """
    indices, distinct = _encode(values)
    table = np.append(hash64_tokens(field, _tokens(distinct)), np.int64(feature_id(field, MISSING_TOKEN)))
    return table[indices]


def bucket_ids(field: str, buckets: np.ndarray, missing: np.ndarray, n_buckets: int | None = None) -> np.ndarray:
    """Feature IDs of dense-field buckets: token ``b<k>``, or ``MISSING_TOKEN`` where ``missing``."""
    if n_buckets is None:
        n_buckets = int(buckets.max(initial=-1)) + 1
    table = np.array([feature_id(field, f"b{k}") for k in range(n_buckets)] + [feature_id(field, MISSING_TOKEN)],
                     dtype=np.int64)
    return table[np.where(missing, n_buckets, buckets)]


def hash64_tokens(field: str, tokens: pa.Array) -> np.ndarray:
    """``feature_id(field, t)`` for every string ``t`` of an Arrow array; null and "" -> missing."""
    tokens = tokens.cast(pa.string())
    valid = pc.fill_null(pc.greater(pc.utf8_length(tokens), 0), False).to_numpy(zero_copy_only=False)
    prefix = np.frombuffer((field + FIELD_SEPARATOR).encode("utf-8"), dtype=np.uint8)
    offsets = np.frombuffer(tokens.buffers()[1], dtype=np.int32)[tokens.offset: tokens.offset + len(tokens) + 1]
    data = tokens.buffers()[2]
    data = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, np.uint8)
    ids = murmur3_x64_64(prefix, data, offsets)
    return np.where(valid, ids, np.int64(feature_id(field, MISSING_TOKEN)))


LONG_KEY = 128            # keys longer than this (bytes) are hashed one at a time by mmh3 itself
CHUNK_BYTES = 1 << 20     # bytes of padded key matrix per vectorised pass (bounds the temporaries)


def murmur3_x64_64(prefix: np.ndarray, data: np.ndarray, offsets: np.ndarray, seed: int = HASH_SEED) -> np.ndarray:
    """First 64 bits (signed) of MurmurHash3_x64_128 of ``prefix + data[offsets[i]:offsets[i+1]]`` per i.

    Bit-exact with ``mmh3.hash64(key, seed, signed=True)[0]``. Memory is bounded by the data, not by
    its longest key. Key ``i`` has ``L_i = len(prefix) + offsets[i+1] - offsets[i]`` bytes and
    ``B_i = max(1, ceil(L_i / 16))`` blocks of 16 bytes:

    - ``L_i > LONG_KEY``: hashed by ``mmh3.hash64`` itself, one key at a time; there are at most
      ``len(data) / LONG_KEY`` such keys, and past ~100 bytes a call costs less than the NumPy kernel;
    - otherwise the key is in width class ``W = 16 · 2^c``, ``c = ceil(log2 B_i)`` (so ``W < 2·L_i + 16``),
      and is hashed with the other keys of its class, ``CHUNK_BYTES / W`` keys per ``_murmur_matrix``
      pass.

    Beyond the inputs, the peak is a copy of ``data``, a few arrays of ``n`` int64 and the
    temporaries of one pass (a small multiple of ``CHUNK_BYTES``).
    """
    data = data[offsets[0]: offsets[-1]]
    offsets = np.asarray(offsets, dtype=np.int64) - offsets[0]
    token_len = np.diff(offsets)
    lengths = token_len + len(prefix)
    out = np.empty(len(lengths), dtype=np.int64)
    head, view, long = prefix.tobytes(), memoryview(data), np.flatnonzero(lengths > LONG_KEY)
    out[long] = [mmh3.hash64(head + view[a:b], seed, signed=True)[0]
                 for a, b in zip(offsets[long].tolist(), offsets[long + 1].tolist())]
    padded = np.concatenate([data, np.zeros(2 * LONG_KEY + 16, np.uint8)])  # every class-width window fits
    blocks = np.maximum(-(-np.arange(LONG_KEY + 1) // 16), 1)  # B of every short length L = 0..LONG_KEY
    classes = np.append(np.frexp(blocks - 1)[1], -1).astype(np.int8)  # c = bit length of B - 1; long: -1
    width_class = classes[np.minimum(lengths, LONG_KEY + 1)]
    for c in np.flatnonzero(np.bincount(width_class + 1)[1:]).tolist():
        width, keys = 16 << c, np.flatnonzero(width_class == c)
        step = max(1, CHUNK_BYTES // width)
        for k in range(0, len(keys), step):
            sel = keys[k: k + step]
            out[sel] = _murmur_matrix(prefix, padded, offsets[sel], token_len[sel], width, seed)
    return out


def _murmur_matrix(prefix: np.ndarray, padded: np.ndarray, starts: np.ndarray, token_len: np.ndarray,
                   width: int, seed: int) -> np.ndarray:
    """MurmurHash3_x64_128 (first 64 bits) of keys ``prefix + padded[starts[i]: starts[i] + token_len[i]]``.

    The keys are laid out as a zero-padded byte matrix ``[m, width]`` (``width`` a multiple of 16,
    at least every key's length; ``padded`` extends at least ``width`` bytes past every start). Each
    16-byte block is two little-endian uint64 lanes, processed for all keys at once with per-key
    masks for the number of full blocks and the tail length.
    """
    n, p = len(starts), len(prefix)
    lengths = token_len + p
    keys = np.empty((n, width), dtype=np.uint8)
    keys[:, :p] = prefix
    keys[:, p:] = sliding_window_view(padded, width - p)[starts]  # row i = padded[starts[i]:][:width - p]
    keys[:, p:][np.arange(width - p) >= token_len[:, None]] = 0
    lanes = keys.view("<u8")  # [m, width / 8]
    full_blocks = lengths // 16
    tail = lengths % 16
    h1 = np.full(n, np.uint64(seed & 0xFFFFFFFF), dtype=np.uint64)
    h2 = h1.copy()
    with np.errstate(over="ignore"):
        for b in range(width // 16):
            k1, k2 = lanes[:, 2 * b].copy(), lanes[:, 2 * b + 1].copy()
            full = full_blocks > b
            if full.any():
                m1 = _mix_k1(k1) ^ h1
                m1 = _rotl64(m1, 27) + h2
                m1 = m1 * _U5 + np.uint64(0x52DCE729)
                m2 = _mix_k2(k2) ^ h2
                m2 = _rotl64(m2, 31) + m1
                m2 = m2 * _U5 + np.uint64(0x38495AB5)
                h1, h2 = np.where(full, m1, h1), np.where(full, m2, h2)
            at_tail = (full_blocks == b) & (tail > 0)
            if at_tail.any():  # tail bytes beyond the key are zero in the padded matrix
                h2 = np.where(at_tail & (tail > 8), h2 ^ _mix_k2(k2), h2)
                h1 = np.where(at_tail, h1 ^ _mix_k1(k1), h1)
        length = lengths.astype(np.uint64)
        h1, h2 = h1 ^ length, h2 ^ length
        h1 = h1 + h2
        h2 = h2 + h1
        h1, h2 = _fmix64(h1), _fmix64(h2)
        h1 = h1 + h2
    return h1.view(np.int64)


_X1, _X2, _U5 = np.uint64(0x87C37B91114253D5), np.uint64(0x4CF5AD432745937F), np.uint64(5)


def _rotl64(x: np.ndarray, r: int) -> np.ndarray:
    return (x << np.uint64(r)) | (x >> np.uint64(64 - r))


def _mix_k1(k: np.ndarray) -> np.ndarray:
    return _rotl64(k * _X1, 31) * _X2


def _mix_k2(k: np.ndarray) -> np.ndarray:
    return _rotl64(k * _X2, 33) * _X1


def _fmix64(k: np.ndarray) -> np.ndarray:
    k = k ^ (k >> np.uint64(33))
    k = k * np.uint64(0xFF51AFD7ED558CCD)
    k = k ^ (k >> np.uint64(33))
    k = k * np.uint64(0xC4CEB9FE1A85EC53)
    return k ^ (k >> np.uint64(33))


# --- MurmurHash3_x86_32 of the 16-byte key le64(a) || le64(b), vectorised -----------------------

_C1 = np.uint32(0xCC9E2D51)
_C2 = np.uint32(0x1B873593)


def _rotl(x: np.ndarray, r: int) -> np.ndarray:
    return (x << np.uint32(r)) | (x >> np.uint32(32 - r))


def _fmix32(h: np.ndarray) -> np.ndarray:
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> np.uint32(13))
    h = h * np.uint32(0xC2B2AE35)
    return h ^ (h >> np.uint32(16))


def combo_hash(ids_a, ids_b, seed: int) -> np.ndarray:
    """MurmurHash3_x86_32 of ``le64(a) || le64(b)`` with ``seed``: uint32, same shape as the inputs.

    Bit-exact with ``mmh3.hash(a.to_bytes(8, 'little', signed=True) + b.to_bytes(...), seed, signed=False)``.
    The key is four little-endian 32-bit blocks: lo(a), hi(a), lo(b), hi(b); length 16, no tail.
    """
    a = np.ascontiguousarray(ids_a, dtype=np.int64)
    b = np.ascontiguousarray(ids_b, dtype=np.int64)
    a, b = np.broadcast_arrays(a, b)
    ua, ub = a.astype("<i8").view(np.uint64), b.astype("<i8").view(np.uint64)
    blocks = (ua & np.uint64(0xFFFFFFFF), ua >> np.uint64(32), ub & np.uint64(0xFFFFFFFF), ub >> np.uint64(32))
    with np.errstate(over="ignore"):
        h = np.full(a.shape, np.uint32(seed & 0xFFFFFFFF), dtype=np.uint32)
        for block in blocks:
            k = block.astype(np.uint32) * _C1
            k = _rotl(k, 15) * _C2
            h = _rotl(h ^ k, 13) * np.uint32(5) + np.uint32(0xE6546B64)
        return _fmix32(h ^ np.uint32(16))


def combo_hash_reference(a: int, b: int, seed: int) -> int:
    """The spec's reference for one pair, through mmh3 itself (tests and docs)."""
    key = int(a).to_bytes(8, "little", signed=True) + int(b).to_bytes(8, "little", signed=True)
    return mmh3.hash(key, seed, signed=False)
