"""The hash spec: stable 64-bit feature IDs and 32-bit combo-ID addresses.

This module is the contract other models reuse. Changing ``HASH_SEED`` or any rule here is a new
``HASH_SPEC_VERSION`` (recorded in every manifest).

Feature ID of a value (spec v1)::

    feature_id(field, token) = mmh3.hash64(f"{field}\\x1f{token}".encode("utf-8"), seed=HASH_SEED, signed=True)[0]

``token`` is the raw value as a string for sparse fields (integers without a decimal point, e.g.
``"42"``; strings as they are), ``b<k>`` for bucket ``k`` of a dense field, and ``MISSING_TOKEN``
for a missing value of either kind.

Multi-valued fields (spec v1, extension): each element of a list is a value of its field,
``feature_id(field, token(element))`` by the rules above; missing elements (null, ``""``, NaN) are
dropped, the first ``max_len`` kept, and the field is stored as a ``list<int64>`` column (an empty
list when nothing is left). Where one ID per field is needed (the model's field token, Combo-ID
pairs, row hashes) the field's *bag ID* stands for the list, order-free::

    bag_id(field, [x_1..x_k]) = (Σ_i x_i) mod 2^64 as int64       (k ≥ 1)
    bag_id(field, [])         = feature_id(field, MISSING_TOKEN)

Combo ID of an ordered pair of feature IDs (paper Eq. 4-5)::

    combo_hash(a, b, seed) = MurmurHash3_x86_32(le64(a) || le64(b), seed)      (uint32)

bit-exact with ``mmh3.hash(key, seed, signed=False)``; the codebook address is
``combo_hash(...) % codebook_size``.
"""

from __future__ import annotations

import math

import mmh3
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

HASH_SPEC_VERSION = 1
HASH_SEED = 0x0DEA2025  # 233_447_461
MISSING_TOKEN = "__missing__"
FIELD_SEPARATOR = "\x1f"

Coded = tuple[np.ndarray, np.ndarray]     # (codes [N], table [K]): the feature IDs table[codes]


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


def token_of(value) -> str | None:
    """The token of one value (None: missing), by the rules of ``_tokens``: strings as they are
    (``""`` missing), booleans and integers as decimals, integral floats as the integer, NaN missing.
    Anything else (a non-integral float, a date...) goes through ``_tokens`` itself, so the rare
    cases keep one implementation; tests/test_serving_parity.py checks both against the spec."""
    if value is None:
        return None
    if isinstance(value, str):
        return value or None
    if isinstance(value, (bool, np.bool_)):
        return "1" if value else "0"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        if math.isnan(value):
            return None
        if abs(value) < 2.0**53 and value == math.floor(value):
            return str(int(value))
    return _tokens(pa.array([value])).to_pylist()[0] or None


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
    """Feature IDs (int64) of a column of values, vectorised (``feature_id_codes``)."""
    codes, table = feature_id_codes(field, values)
    return table[codes]


def feature_id_codes(field: str, values) -> tuple[np.ndarray, np.ndarray]:
    """``(codes [N], table [K])`` with feature IDs ``table[codes]``: the IDs of a column of values.

    The column is dictionary-encoded by Arrow in its own type (parquet dictionaries are reused),
    only the distinct values are turned into tokens and hashed (``hash64_tokens``, compiled
    MurmurHash3), and the IDs are taken back by index: no Python call per row or per distinct value.
    Nulls, NaN and empty strings get the ID of ``MISSING_TOKEN`` (the table's last entry is that ID;
    a table may hold an ID twice, e.g. ``""`` and null). The codes also count the IDs
    (``features.stats.coded_counts``) without hashing the rows again.
    """
    codes, table, _ = feature_id_codes_tokens(field, values)
    return codes, table


def feature_id_codes_tokens(field: str, values) -> tuple[np.ndarray, np.ndarray, pa.Array]:
    """``feature_id_codes`` and the tokens [K] of the table's IDs (the last, missing, is null): the
    raw values that statistics keep beside the heaviest IDs."""
    indices, distinct = _encode(values)
    tokens = _tokens(distinct)
    table = np.append(hash64_tokens(field, tokens), np.int64(feature_id(field, MISSING_TOKEN)))
    return indices, table, pa.concat_arrays([tokens, pa.nulls(1, pa.string())])


def bucket_ids(field: str, buckets: np.ndarray, missing: np.ndarray, n_buckets: int | None = None) -> np.ndarray:
    """Feature IDs of dense-field buckets: token ``b<k>``, or ``MISSING_TOKEN`` where ``missing``."""
    codes, table = bucket_id_codes(field, buckets, missing, n_buckets)
    return table[codes]


def bucket_id_codes(field: str, buckets: np.ndarray, missing: np.ndarray,
                    n_buckets: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(codes, table)`` of ``bucket_ids``: code k for bucket k, ``n_buckets`` for missing."""
    if n_buckets is None:
        n_buckets = int(buckets.max(initial=-1)) + 1
    table = np.array([feature_id(field, f"b{k}") for k in range(n_buckets)] + [feature_id(field, MISSING_TOKEN)],
                     dtype=np.int64)
    return np.where(missing, n_buckets, buckets), table


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


def murmur3_x64_64(prefix: np.ndarray, data: np.ndarray, offsets: np.ndarray, seed: int = HASH_SEED) -> np.ndarray:
    """First 64 bits (signed) of MurmurHash3_x64_128 of ``prefix + data[offsets[i]:offsets[i+1]]`` per i.

    Bit-exact with ``mmh3.hash64(key, seed, signed=True)[0]``; compiled (``features.kernels``, numba,
    imported on first use). Memory beyond the output is one buffer of the longest key.
    """
    from features.kernels import murmur3_x64_64 as kernel

    offsets = np.ascontiguousarray(offsets, dtype=np.int64)
    out = np.empty(max(len(offsets) - 1, 0), dtype=np.uint64)
    kernel(np.ascontiguousarray(prefix, dtype=np.uint8), np.ascontiguousarray(data, dtype=np.uint8), offsets,
           seed, out)
    return out.view(np.int64)


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


def bag_ids(field: str, offsets: np.ndarray, elements: np.ndarray) -> np.ndarray:
    """Bag IDs of the lists ``elements[offsets[i]:offsets[i+1]]`` (int64, wrapping sum; see the spec)."""
    offsets = np.asarray(offsets, dtype=np.int64)
    sums = np.zeros(len(offsets) - 1, np.int64)
    lengths = np.diff(offsets)
    full = lengths > 0
    if full.any():
        with np.errstate(over="ignore"):
            sums[full] = np.add.reduceat(np.asarray(elements, np.int64), offsets[:-1][full])
    return np.where(full, sums, np.int64(feature_id(field, MISSING_TOKEN)))


def list_offsets(column) -> tuple[np.ndarray, np.ndarray]:
    """(offsets [N+1], element IDs) of a ``list<int64>`` feature column (chunked or not)."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    offsets = arr.offsets.to_numpy().astype(np.int64)
    return offsets - offsets[0], arr.values.to_numpy()[offsets[0]:offsets[-1]]


def bag_id(field: str, elements: list[int]) -> int:
    """The reference bag ID of one list of element IDs."""
    if not elements:
        return feature_id(field, MISSING_TOKEN)
    total = sum(int(e) for e in elements) % 2**64
    return total - 2**64 if total >= 2**63 else total


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
