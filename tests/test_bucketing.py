import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest

from features.bucketing import QuantileBucketizer, symlog1p
from features.spec import DenseField


def _fit(values, buckets=4, log1p=False, npartitions=3):
    frame = dd.from_pandas(pd.DataFrame({"x": np.asarray(values, dtype="float64")}), npartitions=npartitions)
    return QuantileBucketizer([DenseField(name="x", buckets=buckets, log1p=log1p)]).fit(frame)


def test_boundaries_are_approximate_quantiles_and_buckets_are_balanced():
    rng = np.random.default_rng(0)
    x = rng.lognormal(size=100_000)
    b = _fit(x, buckets=10, npartitions=8)
    exact = np.quantile(x, np.linspace(0, 1, 11)[1:-1])
    np.testing.assert_allclose(b.boundaries_["x"], exact, rtol=0.05)
    buckets, missing = b.transform("x", x)
    counts = np.bincount(buckets, minlength=10) / len(x)
    assert not missing.any() and counts.min() > 0.08 and counts.max() < 0.12


def test_equal_boundaries_are_deduplicated():
    x = np.r_[np.zeros(900), np.arange(100)]  # 90 % zeros: most quantiles are 0
    b = _fit(x, buckets=10)
    assert b.boundaries_["x"] == sorted(set(b.boundaries_["x"]))
    assert b.n_buckets("x") < 10
    assert b.transform("x", np.array([0.0]))[0][0] == 1  # zeros share one bucket, above "below zero"


def test_nan_is_missing_and_infinities_land_in_edge_buckets():
    b = _fit(np.arange(1.0, 101.0), buckets=4)
    buckets, missing = b.transform("x", np.array([np.nan, -np.inf, np.inf, 50.0]))
    assert missing.tolist() == [True, False, False, False]
    assert buckets[1] == 0 and buckets[2] == b.n_buckets("x") - 1


def test_log1p_keeps_the_same_partition_of_rows():
    rng = np.random.default_rng(1)
    x = np.r_[rng.lognormal(size=5000) * 100, -3.0, -1.0]
    plain, logged = _fit(x, 8), _fit(x, 8, log1p=True)
    np.testing.assert_allclose(symlog1p(np.array(plain.boundaries_["x"])), logged.boundaries_["x"], rtol=0.02)
    np.testing.assert_allclose(symlog1p(np.array([-3.0])), [-np.log(4.0)])


def test_json_round_trip_replays_the_same_buckets():
    b = _fit(np.random.default_rng(2).normal(size=1000), buckets=16, log1p=True)
    again = QuantileBucketizer.from_dict(b.to_dict())
    x = np.linspace(-4, 4, 101)
    np.testing.assert_array_equal(b.transform("x", x)[0], again.transform("x", x)[0])


def test_all_nan_column_is_a_clear_error():
    with pytest.raises(ValueError, match="'x' is all missing"):
        _fit(np.full(100, np.nan))
