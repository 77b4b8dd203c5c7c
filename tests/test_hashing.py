"""The hash spec: golden vectors, vectorised == scalar reference, combo hash bit-exact with mmh3."""

import mmh3
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings, strategies as st

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
