"""The hash spec: golden vectors, vectorised == scalar reference, combo hash bit-exact with mmh3."""

import tracemalloc

import mmh3
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings, strategies as st

from features import hashing
from features.hashing import (HASH_SEED, HASH_SPEC_VERSION, MISSING_TOKEN, bucket_ids, combo_hash,
                              hash64_tokens,
                              combo_hash_reference, feature_id, feature_ids)

INT64 = st.integers(-(2**63), 2**63 - 1)
EDGES = [0, -1, 1, -(2**63), 2**63 - 1]


def test_spec_constants_are_pinned():
    # Changing either is a new hash spec version: every model trained on the old IDs breaks.
    assert (HASH_SPEC_VERSION, HASH_SEED) == (1, 233447461)


@pytest.mark.parametrize("field, token, expected", [
    ("user_id", "42", -2817327840227830615),
    ("item_id", "i123", 6870533565378932564),
    ("price", "b7", 4134003491933659232),
    ("city", MISSING_TOKEN, 7465374921739089558),
    ("C1", "68fd1e64", -6076901516050004566),
])
def test_feature_id_golden_vectors(field, token, expected):
    assert feature_id(field, token) == expected
    assert feature_id(field, token) == mmh3.hash64(f"{field}\x1f{token}".encode(), seed=HASH_SEED, signed=True)[0]


@pytest.mark.parametrize("name, id_a, id_b, expected", [
    # merchant_id "17" x hour "9" of the synthetic spec's cross, as feature IDs
    ("merchant_id_x_hour", 3798096518668389685, 6640138066903053170, 248270152961193645),
    ("user_x_item", -1, 0, -1890712858838269745),
    ("a_x_b", -(2**63), 2**63 - 1, 7043351944130149911),
])
def test_cross_id_golden_vectors(name, id_a, id_b, expected):
    """A cross's ID is ``feature_id(name, f"{id_a}:{id_b}")`` (the published hash spec): the
    separator, the signed decimal IDs and the order are all part of it."""
    from features.pipeline import cross_ids

    assert mmh3.hash64(f"{name}\x1f{id_a}:{id_b}".encode(), seed=HASH_SEED, signed=True)[0] == expected
    a = np.array([id_a, id_b, id_a, id_a], np.int64)        # repeated and swapped pairs map back row by row
    b = np.array([id_b, id_a, id_b, id_a], np.int64)
    expected_rows = [mmh3.hash64(f"{name}\x1f{x}:{y}".encode(), seed=HASH_SEED, signed=True)[0] for x, y in zip(a, b)]
    assert cross_ids(name, a, b).tolist() == expected_rows and expected_rows[0] == expected
    assert cross_ids(name, a, b).dtype == np.int64


@pytest.mark.parametrize("a, b, seed, expected", [
    (0, 0, 0, 2167721464),
    (1, 2, 0, 3381608592),
    (-1, 0, 1, 2338265715),
    (-(2**63), 2**63 - 1, 42, 4167410224),
    (123456789, -987654321, 0xDEA, 915802680),
])
def test_combo_hash_golden_vectors(a, b, seed, expected):
    assert combo_hash_reference(a, b, seed) == expected
    assert combo_hash(np.array([a]), np.array([b]), seed)[0] == expected


@settings(max_examples=300, deadline=None)
@given(a=st.one_of(INT64, st.sampled_from(EDGES)), b=st.one_of(INT64, st.sampled_from(EDGES)),
       seed=st.one_of(st.sampled_from([0, 1, 0xDEA, 2**32 - 1]), st.integers(0, 2**32 - 1)))
def test_combo_hash_equals_mmh3(a, b, seed):
    assert int(combo_hash(np.array([a], np.int64), np.array([b], np.int64), seed)[0]) == combo_hash_reference(a, b, seed)


def test_combo_hash_vectorised_on_many_random_pairs():
    rng = np.random.default_rng(0)
    a = rng.integers(-(2**63), 2**63 - 1, 5000, dtype=np.int64, endpoint=True)
    b = rng.integers(-(2**63), 2**63 - 1, 5000, dtype=np.int64, endpoint=True)
    a[:5], b[:5] = EDGES, EDGES[::-1]
    for seed in (0, 7, 2**31, 2**32 - 1):
        got = combo_hash(a, b, seed)
        assert got.dtype == np.uint32
        expected = [combo_hash_reference(x, y, seed) for x, y in zip(a.tolist(), b.tolist())]
        np.testing.assert_array_equal(got, np.array(expected, dtype=np.uint32))


def test_combo_hash_is_order_sensitive_and_broadcasts():
    a, b = np.array([11, 12]), np.array([21, 22])
    assert (combo_hash(a, b, 0) != combo_hash(b, a, 0)).all()
    np.testing.assert_array_equal(combo_hash(a, np.int64(5), 3), combo_hash(a, np.array([5, 5]), 3))


def test_feature_ids_follow_the_spec_for_every_input_type():
    values = ["a", "b", None, "a", ""]
    expected = [feature_id("f", "a"), feature_id("f", "b"), feature_id("f", MISSING_TOKEN),
                feature_id("f", "a"), feature_id("f", MISSING_TOKEN)]
    for column in (values, pd.Series(values, dtype="string"), pa.array(values), pa.chunked_array([values[:2], values[2:]])):
        assert feature_ids("f", column).tolist() == expected


def test_numeric_tokens_are_the_integer_text():
    # int 3 and float 3.0 are the same category ("3"); 3.5 keeps its decimal text; NaN is missing.
    got = feature_ids("f", np.array([3.0, 3.5, np.nan, -0.0]))
    assert got.tolist() == [feature_id("f", "3"), feature_id("f", "3.5"), feature_id("f", MISSING_TOKEN),
                            feature_id("f", "0")]
    assert feature_ids("f", np.array([3, 0], dtype=np.int64)).tolist() == [feature_id("f", "3"), feature_id("f", "0")]
    assert feature_ids("f", ["3"]).tolist() == [feature_id("f", "3")]


def test_field_name_separates_equal_tokens():
    assert feature_id("user", "1") != feature_id("item", "1")
    assert feature_id("ab", "c") != feature_id("a", "bc")


def test_bucket_ids_are_bucket_tokens():
    got = bucket_ids("price", np.array([0, 2, 0]), np.array([False, False, True]), n_buckets=4)
    assert got.tolist() == [feature_id("price", "b0"), feature_id("price", "b2"), feature_id("price", MISSING_TOKEN)]


@settings(max_examples=300, deadline=None)
@given(field=st.text(max_size=20), tokens=st.lists(st.text(max_size=40), min_size=1, max_size=20))
def test_vectorised_murmur_equals_mmh3_for_any_text(field, tokens):
    got = hash64_tokens(field, pa.array(tokens, pa.string()))
    expected = [feature_id(field, t if t else MISSING_TOKEN) for t in tokens]
    assert got.tolist() == expected


def test_vectorised_murmur_on_every_key_length_and_sliced_arrays():
    tokens = pa.array(["k" * n for n in range(70)] + ["é漢字🙂" * 3])
    for field in ("", "C1", "a_long_field_name_over_16_bytes"):
        expected = [feature_id(field, t or MISSING_TOKEN) for t in tokens.to_pylist()]
        assert hash64_tokens(field, tokens).tolist() == expected
        assert hash64_tokens(field, tokens.slice(5, 30)).tolist() == expected[5:35]


# --- memory bounded by the data, not by its longest key (issue 15) -------------------------------

MB = 1 << 20


def mixed_tokens(rng, long_bytes=MB):
    """Every short length, multiples of 16, 1 KB, one huge key, non-ASCII; shuffled, so short keys
    follow long ones in the kernel's reused scratch buffer."""
    lengths = [*range(0, 101), *range(16, 513, 16), *range(96, 132), 1024]
    tokens = ["".join(rng.choice(list("abc0\x00\x1f"), n)) for n in lengths]
    tokens += ["é漢字🙂" * k for k in (1, 4, 5, 40, 300)] + ["y" * long_bytes, "z" * (long_bytes - 1)]
    rng.shuffle(tokens)
    return tokens


def mmh3_ids(field, tokens):
    return [mmh3.hash64(f"{field}\x1f{t}".encode(), seed=HASH_SEED, signed=True)[0] if t
            else feature_id(field, MISSING_TOKEN) for t in tokens]


@pytest.mark.parametrize("field", ["", "C1", "a" * 15, "é" * 7, "a_long_field_name_over_16_bytes"])
def test_mixed_lengths_equal_mmh3(field):
    tokens = mixed_tokens(np.random.default_rng(len(field)))
    arr = pa.array(tokens, pa.string())
    assert hash64_tokens(field, arr).tolist() == mmh3_ids(field, tokens)
    assert hash64_tokens(field, arr.slice(3, 200)).tolist() == mmh3_ids(field, tokens[3:203])
    assert hash64_tokens(field, arr.slice(len(tokens))).tolist() == []


def test_murmur_on_raw_bytes_with_zero_bytes():
    rng = np.random.default_rng(2)
    lengths = rng.integers(0, 300, 500)
    lengths[:4] = [0, 16, 2 * MB, 127]
    data = rng.integers(0, 3, int(lengths.sum()), dtype=np.uint8)  # many zero bytes, like the padding
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    prefix = np.frombuffer(b"\x00ab\x1f", np.uint8)
    got = hashing.murmur3_x64_64(prefix, data, offsets, seed=7)
    expected = [mmh3.hash64(prefix.tobytes() + data[a:b].tobytes(), 7, signed=True)[0]
                for a, b in zip(offsets[:-1], offsets[1:])]
    assert got.tolist() == expected
    assert hashing.murmur3_x64_64(prefix, data[:0], np.zeros(1, np.int32)).shape == (0,)


def traced_peak(fn):
    tracemalloc.start()
    try:
        result = fn()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def short_tokens_and_one_long(n=20_000, long_bytes=MB):
    return pa.array([f"tok{i:x}" for i in range(n)] + ["x" * long_bytes], pa.string())


def test_one_huge_token_does_not_blow_up_memory():
    # Old layout: a [20001, 1 MB] matrix plus index arrays, ~18 GB. Bounded: data, a copy, one pass.
    tokens = short_tokens_and_one_long()
    ids, peak = traced_peak(lambda: hash64_tokens("item", tokens))
    assert peak < 16 * MB, f"peak {peak / MB:.0f} MB"
    assert ids[-1] == feature_id("item", "x" * MB) and ids[123] == feature_id("item", "tok7b")


def test_transform_table_with_a_huge_sparse_value():
    from features import pipeline
    rng = np.random.default_rng(3)
    n = 5_000
    items = np.array([f"item{k}" for k in range(2_000)], dtype=object)
    items[7] = "é" + "x" * MB
    item = pa.DictionaryArray.from_arrays(pa.array(rng.integers(0, len(items), n), pa.int32()), pa.array(items))
    users = rng.integers(0, 300, n)
    table = pa.table({"user": users, "item": item, "click": rng.integers(0, 2, n).astype(np.int8)})
    manifest = pipeline.Manifest(
        dataset="t", fields=["user", "item", "user_x_item"], sparse=["user", "item"], dense={},
        cross=[("user", "item")], label="click", group="user", passthrough=[], missing="token",
        hash_spec_version=HASH_SPEC_VERSION, hash_seed=HASH_SEED, config_hash="t", fit_dates=[], spec={},
        record={"digest": "t"})
    out, peak = traced_peak(lambda: pipeline.transform_table(table, manifest, "2026-01-01"))
    assert peak < 16 * MB, f"peak {peak / MB:.0f} MB"
    item_ids = {v: feature_id("item", v) for v in items}
    expected_item = [item_ids[v] for v in items[item.indices.to_numpy()]]
    expected_user = [feature_id("user", str(u)) for u in users]
    assert out["item"].to_pylist() == expected_item
    assert out["user"].to_pylist() == expected_user
    assert out["user_x_item"].to_pylist() == [feature_id("user_x_item", f"{a}:{b}")
                                              for a, b in zip(expected_user, expected_item)]
    assert item_ids[items[7]] in expected_item


# --- edges the mutation run found unpinned (benchmarks/results/mutation.md) ---------------------

def test_float_tokens_in_float32_and_at_the_integer_limit():
    """Tokens of floats: an integral value below 2^53 is the integer's text in any float width;
    float32 values keep their own shortest text (3.1, not float64's 3.0999999046325684); from 2^53 on
    (no longer every integer) the float's own text; NaN is missing whether or not Arrow marks it null."""
    f32 = pa.array([3.0, 3.1, float("nan"), -0.0, 1234567.0], pa.float32())
    assert feature_ids("f", f32).tolist() == [feature_id("f", t) for t in ("3", "3.1", MISSING_TOKEN, "0", "1234567")]
    f64 = pa.array([1234567890123.0, 2.0**53 - 1, 2.0**53, -(2.0**53), 1.5, float("nan"), None], pa.float64())
    assert feature_ids("f", f64).tolist() == [feature_id("f", t) for t in (
        "1234567890123", "9007199254740991", "9.007199254740992e+15", "-9.007199254740992e+15", "1.5",
        MISSING_TOKEN, MISSING_TOKEN)]


def test_boolean_tokens_are_0_and_1():
    assert feature_ids("f", pa.array([True, False, None])).tolist() == [
        feature_id("f", "1"), feature_id("f", "0"), feature_id("f", MISSING_TOKEN)]
    assert feature_ids("f", np.array([True, False])).tolist() == [feature_id("f", "1"), feature_id("f", "0")]


def test_pandas_object_column_with_nan_for_missing():
    # pandas marks a missing string as NaN in an object column: it is missing, not a float among strings
    expected = [feature_id("f", "a"), feature_id("f", MISSING_TOKEN), feature_id("f", MISSING_TOKEN), feature_id("f", "b")]
    column = pd.Series(["a", np.nan, None, "b"], dtype=object)
    for values in (column, column.to_numpy(), column.tolist()):          # also as NumPy / Python objects
        assert feature_ids("f", values).tolist() == expected


def test_hash64_tokens_null_and_empty_are_missing():
    got = hash64_tokens("f", pa.array(["a", None, "", "b"], pa.string()))
    assert got.tolist() == [feature_id("f", "a"), feature_id("f", MISSING_TOKEN), feature_id("f", MISSING_TOKEN),
                            feature_id("f", "b")]


def test_bucket_ids_infer_the_bucket_count_and_accept_an_empty_day():
    buckets, missing = np.array([0, 3, 1, 3]), np.array([False, False, True, False])
    expected = [feature_id("x", "b0"), feature_id("x", "b3"), feature_id("x", MISSING_TOKEN), feature_id("x", "b3")]
    assert bucket_ids("x", buckets, missing).tolist() == expected            # n_buckets from the data
    assert bucket_ids("x", buckets, missing, n_buckets=6).tolist() == expected
    empty = bucket_ids("x", np.array([], np.int64), np.array([], bool))
    assert empty.tolist() == [] and empty.dtype == np.int64


def test_vectorised_murmur_memory_is_a_small_multiple_of_the_data():
    """The padded copy of the data is bytes, not a wider dtype: the peak stays a few times the data
    (8 MB of 100-byte keys, all on the vectorised path), whatever the number of keys."""
    tokens = pa.array([f"{i:08d}" + "v" * 92 for i in range(80_000)], pa.string())
    data_bytes = tokens.buffers()[2].size
    ids, peak = traced_peak(lambda: hash64_tokens("item", tokens))
    assert peak < 4 * data_bytes, f"peak {peak / MB:.1f} MB for {data_bytes / MB:.1f} MB of keys"
    assert ids[12345] == feature_id("item", f"{12345:08d}" + "v" * 92)


def test_cross_ids_of_many_pairs_and_of_an_empty_day():
    """Every row's cross ID is the spec's, whatever the order and repetition of the pairs (small
    vocabularies on each side, so pairs repeat and share sides); no rows, no IDs."""
    from features.pipeline import cross_ids

    rng = np.random.default_rng(11)
    vocab_a = np.array([0, -1, 2**63 - 1, -(2**63), 17, 42], np.int64)
    vocab_b = np.array([5, -5, 99, 2**62], np.int64)
    a, b = rng.choice(vocab_a, 400), rng.choice(vocab_b, 400)
    expected = [feature_id("a_x_b", f"{x}:{y}") for x, y in zip(a.tolist(), b.tolist())]
    assert cross_ids("a_x_b", a, b).tolist() == expected
    assert cross_ids("a_x_b", a[::-1], b[::-1]).tolist() == expected[::-1]
    assert cross_ids("a_x_b", a[:1], b[:1]).tolist() == expected[:1]
    empty = cross_ids("a_x_b", np.array([], np.int64), np.array([], np.int64))
    assert empty.tolist() == [] and empty.dtype == np.int64
