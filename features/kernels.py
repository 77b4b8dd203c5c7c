"""The feature stage's compiled kernels (numba): the feature-ID hash and the bucket search.

``murmur3_x64_64``: MurmurHash3_x64_128 (first 64 bits) of many short keys, the feature-ID hash of the spec (``features.hashing``): bit-exact with ``mmh3.hash64(key, seed)[0]``
(tests/test_hashing.py compares them on every key length up to 1 MB and on random bytes). Key ``i``
is ``prefix + data[offsets[i]:offsets[i + 1]]`` (the field name and separator, then the token's UTF-8
bytes straight from an Arrow string buffer): each key is copied into one zero-padded scratch
buffer and read as little-endian 64-bit lanes, so memory is the longest key, not a padded matrix.

``bucket_index``: ``np.searchsorted(boundaries, x, side="right")``, as a vectorised count for the few
dozen boundaries a dense field has.

Compiled on first use and cached on disk next to this file (``cache=True``: later processes load
them in ~0.1 s); ``nogil``, so Dask threads run them in parallel.
"""

from __future__ import annotations

import numba as nb
import numpy as np

_U = np.uint64
_C1, _C2 = _U(0x87C37B91114253D5), _U(0x4CF5AD432745937F)
_M5, _N1, _N2 = _U(5), _U(0x52DCE729), _U(0x38495AB5)
_F1, _F2 = _U(0xFF51AFD7ED558CCD), _U(0xC4CEB9FE1A85EC53)


@nb.njit(inline="always")
def _rotl(x, r):
    return (x << _U(r)) | (x >> _U(64 - r))


@nb.njit(inline="always")
def _fmix(k):
    k ^= k >> _U(33)
    k *= _F1
    k ^= k >> _U(33)
    k *= _F2
    return k ^ (k >> _U(33))


@nb.njit(inline="always")
def _mix_h1(h1, h2, k1):
    k1 *= _C1
    h1 ^= _rotl(k1, 31) * _C2
    return (_rotl(h1, 27) + h2) * _M5 + _N1


@nb.njit(inline="always")
def _mix_h2(h1, h2, k2):
    k2 *= _C2
    h2 ^= _rotl(k2, 33) * _C1
    return (_rotl(h2, 31) + h1) * _M5 + _N2


@nb.njit(nogil=True, cache=True)
def murmur3_x64_64(prefix, data, offsets, seed, out):
    """Write the hash of key ``i`` into ``out[i]`` (uint64) for every ``i < len(out)``."""
    p = prefix.shape[0]
    longest = 0
    for i in range(out.shape[0]):
        longest = max(longest, offsets[i + 1] - offsets[i])
    scratch = np.zeros(((p + longest) // 16 + 1) * 16, np.uint8)
    lanes = scratch.view(np.uint64)                       # little-endian on every platform numba targets
    scratch[:p] = prefix
    for i in range(out.shape[0]):
        start, n = offsets[i], offsets[i + 1] - offsets[i]
        length = p + n
        scratch[p:length] = data[start:start + n]
        scratch[length:(length // 16 + 1) * 16] = 0       # the tail block's unused bytes
        h1 = _U(seed & 0xFFFFFFFF)
        h2 = h1
        blocks = length // 16
        for b in range(blocks):
            h1 = _mix_h1(h1, h2, lanes[2 * b])
            h2 = _mix_h2(h1, h2, lanes[2 * b + 1])
        tail = length - 16 * blocks
        if tail > 8:
            k2 = lanes[2 * blocks + 1] * _C2
            h2 ^= _rotl(k2, 33) * _C1
        if tail > 0:
            k1 = lanes[2 * blocks] * _C1
            h1 ^= _rotl(k1, 31) * _C2
        h1 ^= _U(length)
        h2 ^= _U(length)
        h1 += h2
        h2 += h1
        h1, h2 = _fmix(h1), _fmix(h2)
        out[i] = h1 + h2


LINEAR_BOUNDARIES = 128     # up to this many boundaries a vectorised count beats a binary search


@nb.njit(nogil=True, cache=True)
def bucket_index(boundaries, x, out):
    """``out[i]`` = the number of ``boundaries`` (sorted) ``<= x[i]``; 0 for NaN.

    Up to ``LINEAR_BOUNDARIES`` boundaries, a count over all of them, which the compiler vectorises
    (no data-dependent branch; a binary search mispredicts about one branch per level, 3x slower at
    64 boundaries); beyond, a binary search."""
    n_b = boundaries.shape[0]
    for i in range(x.shape[0]):
        v = x[i]
        if n_b <= LINEAR_BOUNDARIES:
            count = 0
            for j in range(n_b):
                count += boundaries[j] <= v
            out[i] = count
        else:
            lo, hi = 0, n_b
            while lo < hi:
                mid = (lo + hi) >> 1
                if boundaries[mid] <= v:
                    lo = mid + 1
                else:
                    hi = mid
            out[i] = lo
