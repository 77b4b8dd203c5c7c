"""features.stats: every statistic of a small feature day against a brute-force pandas computation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from features.hashing import MISSING_TOKEN, feature_id, feature_ids
from features.lake import Lake, atomic_dir, make_record, write_record
from features.spec import DatasetSpec
from features.stats import (compute_day_stats, expected_distinct_pairs, rank_frequency, read_day_stats,
                            write_day_stats)

SPEC = DatasetSpec(name="toy", label="click", sparse=["a", "b"], dense=[{"name": "x", "buckets": 4}],
                   cross=[("a", "b")], source={"kind": "synthetic"})
MANIFEST = {"dataset": "toy", "fields": ["a", "b", "x", "a_x_b"], "sparse": ["a", "b"],
            "dense": {"x": {"boundaries": [0.0, 1.0, 2.0], "log1p": False, "buckets": 4}},
            "cross": [["a", "b"]], "passthrough": ["p_true"], "record": {"digest": "toy-manifest"}}
N = 6_000


def _day(seed: int, id_offset: int = 0) -> pd.DataFrame:
    """A feature table: Zipf IDs with missing values, dense buckets, a cross, 10 % duplicate rows."""
    rng = np.random.default_rng(seed)
    a = (rng.zipf(1.6, N) + id_offset).astype(object)
    a[rng.random(N) < 0.05] = None
    b = np.array([f"s{v}" for v in rng.zipf(2.2, N)], dtype=object)
    k = rng.integers(0, 4, N)
    x_missing = rng.random(N) < 0.1
    frame = pd.DataFrame({
        "a": feature_ids("a", pa.array(list(a), pa.int64())),
        "b": feature_ids("b", pa.array(list(b))),
        "x": np.where(x_missing, feature_id("x", MISSING_TOKEN),
                      np.array([feature_id("x", f"b{j}") for j in range(4)])[k]),
        "label": (rng.random(N) < 0.2).astype(np.int8),
        "p_true": rng.random(N),
    })
    frame.insert(3, "a_x_b", feature_ids("a_x_b", pa.array([f"{p}:{q}" for p, q in zip(frame.a, frame.b)])))
    frame = pd.concat([frame, frame.iloc[: N // 10]], ignore_index=True)          # 600 exact duplicates
    return frame.iloc[rng.permutation(len(frame))].reset_index(drop=True)


def _write(lake: Lake, date: str, frame: pd.DataFrame, raw: str = "v1") -> None:
    with atomic_dir(lake.features("toy", date)) as tmp:
        half = len(frame) // 2                                   # two files: counts merge across partitions
        for i, part in enumerate((frame.iloc[:half], frame.iloc[half:])):
            pq.write_table(pa.Table.from_pandas(part, preserve_index=False), tmp / f"part-{i:05d}.parquet")
        write_record(tmp, make_record("transform", {"raw": f"{date}:{raw}"}, "toy", rows=len(frame)))


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    lake = Lake(tmp_path_factory.mktemp("stats"))
    _write(lake, "2026-03-01", _day(1))
    _write(lake, "2026-03-02", _day(2, id_offset=3))
    return lake


@pytest.fixture(scope="module")
def stats(lake):
    return compute_day_stats(SPEC, MANIFEST, lake, "2026-03-02")


def _read(lake, date) -> pd.DataFrame:
    return pd.concat([pd.read_parquet(f) for f in sorted(lake.features("toy", date).glob("*.parquet"))])


def test_stats_day_level(lake, stats):
    df = _read(lake, "2026-03-02")
    assert stats["rows"] == len(df) == N + N // 10
    assert stats["label_rate"] == pytest.approx(df.label.mean())
    assert stats["duplicate_rows"] == df.duplicated().sum() >= N // 10
    assert stats["previous_date"] == "2026-03-01"
    assert stats["manifest_digest"] == "toy-manifest"


@pytest.mark.parametrize("field", ["a", "b", "x", "a_x_b"])
def test_stats_per_field_match_pandas(lake, stats, field):
    df, prev = _read(lake, "2026-03-02"), _read(lake, "2026-03-01")
    col = df[field]
    missing = feature_id(field, MISSING_TOKEN)
    vc = col[col != missing].value_counts()
    s = stats["fields"][field]
    R = len(df)
    assert s["null_rate"] == pytest.approx((col == missing).mean())
    assert s["unique_ids"] == len(vc)
    assert s["top1_share"] == pytest.approx(vc.iloc[0] / R)
    assert s["top1_id"] == vc.index[0]
    assert s["top100_share"] == pytest.approx(vc.iloc[:100].sum() / R)
    assert s["tail_share"] == pytest.approx(vc[vc < 5].sum() / R)
    p = col.value_counts(normalize=True).to_numpy()
    assert s["entropy_bits"] == pytest.approx(-(p * np.log2(p)).sum())
    new = ~vc.index.isin(prev[field].unique())
    assert s["new_id_rate"] == pytest.approx(vc[new].sum() / R)
    assert s["new_id_share"] == pytest.approx(new.mean())
    assert sum(s["rank_frequency"]["rows"]) == vc.sum()
    assert s["kind"] == {"a": "sparse", "b": "sparse", "x": "dense", "a_x_b": "cross"}[field]


def test_stats_new_ids_are_measured_against_the_previous_day(stats):
    # day 2 shifts field a's IDs by 3: every value above the old maximum is new, most rows are not
    assert 0 < stats["fields"]["a"]["new_id_rate"] < 0.2
    assert stats["fields"]["b"]["new_id_rate"] < 0.01


def test_stats_dense_histogram_maps_bucket_ids_back(lake, stats):
    df = _read(lake, "2026-03-02")
    ids = np.array([feature_id("x", f"b{j}") for j in range(4)])
    h = stats["dense"]["x"]
    assert h["n_buckets"] == 4 and h["unknown"] == 0
    assert h["counts"] == [int((df.x == i).sum()) for i in ids]
    assert h["missing"] == int((df.x == feature_id("x", MISSING_TOKEN)).sum())


def test_stats_rank_frequency_bins():
    rf = rank_frequency(np.array([1, 10, 3, 5, 1]))             # sorted: 10, 5, 3, 1, 1
    assert rf == {"rank": [1, 2, 4], "freq": [10, 5, 1], "ids": [1, 2, 2], "rows": [10, 8, 2]}
    assert rank_frequency(np.array([], dtype=np.int64))["rank"] == []


def test_stats_write_skips_when_up_to_date_and_first_day_has_no_new_ids(lake):
    first = write_day_stats(SPEC, MANIFEST, lake, "2026-03-01")
    assert not first.skipped and first.stats["previous_date"] is None
    assert first.stats["fields"]["a"]["new_id_rate"] is None
    assert read_day_stats(lake, "toy", "2026-03-01") == first.stats
    assert write_day_stats(SPEC, MANIFEST, lake, "2026-03-01").skipped
    assert not write_day_stats(SPEC, MANIFEST, lake, "2026-03-01", min_count=3).skipped   # settings changed
    _write(lake, "2026-03-01", _day(1), raw="v2")                                         # input changed
    assert not write_day_stats(SPEC, MANIFEST, lake, "2026-03-01", min_count=3).skipped


def test_stats_missing_feature_day_names_dataset_and_date(lake):
    with pytest.raises(FileNotFoundError, match=r"dataset 'toy', date 2026-04-01: no complete feature day"):
        compute_day_stats(SPEC, MANIFEST, lake, "2026-04-01")


def test_stats_expected_distinct_pairs_close_to_exact(tmp_path):
    """The binned independence estimate of distinct (x_a, x_b) keys against the exact count."""
    rng = np.random.default_rng(3)
    R = 40_000
    frame = pd.DataFrame({"a": feature_ids("a", rng.zipf(1.3, R)), "b": feature_ids("b", rng.zipf(1.8, R)),
                          "label": np.zeros(R, np.int8)})
    lake = Lake(tmp_path)
    _write(lake, "2026-03-01", frame)
    manifest = {"fields": ["a", "b"], "sparse": ["a", "b"], "dense": {}, "passthrough": []}
    spec = DatasetSpec(name="toy", label="click", sparse=["a", "b"], source={"kind": "synthetic"})
    stats = compute_day_stats(spec, manifest, lake, "2026-03-01")
    exact = 2 * len(frame[["a", "b"]].drop_duplicates())            # ordered pairs (a, b) and (b, a)
    assert expected_distinct_pairs(stats) == pytest.approx(exact, rel=0.1)


def test_stats_on_a_distributed_client_match_the_threaded_run(lake, stats):
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        on_client = compute_day_stats(SPEC, MANIFEST, lake, "2026-03-02", client=client)
    assert {k: v for k, v in on_client.items() if k != "seconds"} == {k: v for k, v in stats.items() if k != "seconds"}
