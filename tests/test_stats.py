"""features.stats: every statistic of a small feature day against a brute-force pandas computation;
the counts the transform tasks merge, the count tables the gate reads, the stats folder's record."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from features.hashing import MISSING_TOKEN, feature_id, feature_ids
from features.lake import Lake, atomic_dir, fingerprint, make_record, write_record
from features.manifest import Manifest
from features.stats import (COUNTS_FILE, compute_day_stats, expected_distinct_pairs, merge_counts, new_ids,
                            rank_frequency, read_day_counts, read_day_stats, stored_counts, table_counts,
                            write_day_stats)


def _manifest(fields: list[str], sparse: list[str], dense: dict, cross: list, passthrough: list[str]) -> Manifest:
    return Manifest(dataset="toy", fields=fields, sparse=sparse, dense=dense, cross=cross, label="click", group=None,
                    passthrough=passthrough, missing="token", hash_spec_version=1, hash_seed=0, config_hash="toy",
                    fit_dates=[], spec={}, record={"digest": "toy-manifest"})


MANIFEST = _manifest(["a", "b", "x", "a_x_b"], ["a", "b"],
                     {"x": {"boundaries": [0.0, 1.0, 2.0], "log1p": False, "buckets": 4}}, [("a", "b")], ["p_true"])
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
    return compute_day_stats(MANIFEST, lake, "2026-03-02")


def _read(lake, date) -> pd.DataFrame:
    return pd.concat([pd.read_parquet(f) for f in sorted(lake.features("toy", date).glob("*.parquet"))])


def test_stats_day_level(lake, stats):
    df = _read(lake, "2026-03-02")
    assert stats["rows"] == len(df) == N + N // 10
    assert stats["label_rate"] == pytest.approx(df.label.mean())
    assert stats["duplicate_rows"] == df.duplicated().sum() >= N // 10
    assert stats["manifest_digest"] == "toy-manifest" and stats["min_count"] == 5
    assert "previous_date" not in stats            # day-over-day rates are the gate's (it picks yesterday)


@pytest.mark.parametrize("field", ["a", "b", "x", "a_x_b"])
def test_stats_per_field_match_pandas(lake, stats, field):
    df = _read(lake, "2026-03-02")
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
    assert "new_id_rate" not in s
    assert sum(s["rank_frequency"]["rows"]) == vc.sum()
    assert s["kind"] == {"a": "sparse", "b": "sparse", "x": "dense", "a_x_b": "cross"}[field]


@pytest.mark.parametrize("field", ["a", "b", "x", "a_x_b"])
def test_new_ids_of_two_days_count_tables_match_pandas(lake, field):
    df, prev = _read(lake, "2026-03-02"), _read(lake, "2026-03-01")
    today = stored_counts(MANIFEST, lake, "2026-03-02")
    before = {f: ids for f, (ids, _) in stored_counts(MANIFEST, lake, "2026-03-01").fields.items()}
    got = new_ids(today.fields, before, today.rows)[field]
    col = df[field]
    vc = col[col != feature_id(field, MISSING_TOKEN)].value_counts()
    new = ~vc.index.isin(prev[field].unique())
    assert got["new_id_rate"] == pytest.approx(vc[new].sum() / len(df))
    assert got["new_id_share"] == pytest.approx(new.mean())


def test_new_ids_are_measured_against_the_previous_day(lake):
    today = stored_counts(MANIFEST, lake, "2026-03-02")
    before = {f: ids for f, (ids, _) in stored_counts(MANIFEST, lake, "2026-03-01").fields.items()}
    rates = new_ids(today.fields, before, today.rows)
    # day 2 shifts field a's IDs by 3: every value above the old maximum is new, most rows are not
    assert 0 < rates["a"]["new_id_rate"] < 0.2
    assert rates["b"]["new_id_rate"] < 0.01
    present = float((_read(lake, "2026-03-02").a != feature_id("a", MISSING_TOKEN)).mean())
    nothing_seen = new_ids(today.fields, {**before, "a": before["a"][:0]}, today.rows)["a"]
    assert nothing_seen["new_id_rate"] == pytest.approx(present) and nothing_seen["new_id_share"] == 1.0
    assert "a" not in new_ids(today.fields, {"b": before["b"]}, today.rows)   # a field yesterday lacked: not measured


def test_counts_merged_over_files_equal_the_counts_of_the_whole_table(lake):
    df = _read(lake, "2026-03-02")
    table = pa.Table.from_pandas(df, preserve_index=False)
    whole = table_counts(table, MANIFEST)
    merged = merge_counts([table_counts(table.slice(i, 1000), MANIFEST) for i in range(0, table.num_rows, 1000)])
    assert merged.rows == whole.rows == len(df) and merged.clicks == whole.clicks == int(df.label.sum())
    assert merged.distinct_rows == whole.distinct_rows == len(df.drop_duplicates())
    for f in MANIFEST.fields:
        vc = df[f].value_counts(sort=False)                   # order of first appearance, like the merge
        assert merged.fields[f][0].tolist() == vc.index.tolist() == whole.fields[f][0].tolist()
        assert merged.fields[f][1].tolist() == vc.tolist()


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


def test_stats_folder_holds_the_statistics_and_the_count_table_keyed_by_the_feature_day(lake):
    first = write_day_stats(MANIFEST, lake, "2026-03-01")
    assert not first.skipped
    assert read_day_stats(lake, "toy", "2026-03-01") == first.stats
    counts = read_day_counts(lake, "toy", "2026-03-01")
    direct = stored_counts(MANIFEST, lake, "2026-03-01")
    assert list(counts) == MANIFEST.fields
    for f in MANIFEST.fields:
        assert sorted(zip(*map(list, counts[f]))) == sorted(zip(*map(list, direct.fields[f])))
    assert read_day_counts(lake, "toy", "2026-03-01", with_counts=False)["a"].tolist() == counts["a"][0].tolist()
    assert (lake.stats("toy", "2026-03-01") / COUNTS_FILE).exists()
    features = fingerprint(lake.features("toy", "2026-03-01"))
    assert read_day_stats(lake, "toy", "2026-03-01", features=features) == first.stats
    assert read_day_stats(lake, "toy", "2026-03-01", features="rec:other") is None   # of another table: none

    assert write_day_stats(MANIFEST, lake, "2026-03-01").skipped
    assert not write_day_stats(MANIFEST, lake, "2026-03-01", min_count=3).skipped   # settings changed
    _write(lake, "2026-03-01", _day(1), raw="v2")                                     # the feature day changed
    assert read_day_stats(lake, "toy", "2026-03-01", features=fingerprint(lake.features("toy", "2026-03-01"))) is None
    assert not write_day_stats(MANIFEST, lake, "2026-03-01", min_count=3).skipped
    assert read_day_counts(lake, "toy", "2026-04-01") is None


def test_stats_missing_feature_day_names_dataset_and_date(lake):
    with pytest.raises(FileNotFoundError, match=r"dataset 'toy', date 2026-04-01: no complete feature day"):
        compute_day_stats(MANIFEST, lake, "2026-04-01")


def test_stats_expected_distinct_pairs_close_to_exact(tmp_path):
    """The binned independence estimate of distinct (x_a, x_b) keys against the exact count."""
    rng = np.random.default_rng(3)
    R = 40_000
    frame = pd.DataFrame({"a": feature_ids("a", rng.zipf(1.3, R)), "b": feature_ids("b", rng.zipf(1.8, R)),
                          "label": np.zeros(R, np.int8)})
    lake = Lake(tmp_path)
    _write(lake, "2026-03-01", frame)
    stats = compute_day_stats(_manifest(["a", "b"], ["a", "b"], {}, [], []), lake, "2026-03-01")
    exact = 2 * len(frame[["a", "b"]].drop_duplicates())            # ordered pairs (a, b) and (b, a)
    assert expected_distinct_pairs(stats) == pytest.approx(exact, rel=0.1)


def test_stats_on_a_distributed_client_match_the_threaded_run(lake, stats):
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        on_client = compute_day_stats(MANIFEST, lake, "2026-03-02", client=client)
    assert on_client == stats


def test_the_heaviest_ids_keep_their_raw_values_whatever_the_merge_order():
    """Each transform task keeps the raw values of its heaviest IDs; the day lists the top IDs with
    their value (``brand=nike``), the same for any split and merge order, equal to pandas' counts."""
    from features.pipeline import transform_coded
    from features.stats import TOP_LISTED, coded_counts, day_stats

    rng = np.random.default_rng(3)
    brands = np.array([f"brand{v}" for v in rng.zipf(1.5, N)], dtype=object)
    brands[rng.random(N) < 0.3] = None                               # missing is never a listed value
    raw = pa.table({"brand": pa.array(list(brands)), "click": pa.array(rng.integers(0, 2, N), pa.int8())})
    manifest = _manifest(["brand"], ["brand"], {}, [], []).model_copy(update={"label": "click"})

    def counts_of(bounds):
        parts = []
        for a, b in bounds:
            features, coded, tokens = transform_coded(raw.slice(a, b - a), manifest, "d")
            parts.append(coded_counts(features, coded, manifest, tokens))
        return merge_counts(parts)

    one = day_stats(counts_of([(0, 2000), (2000, 4000), (4000, N)]), manifest, "d")["fields"]["brand"]
    other = day_stats(counts_of([(4000, N), (0, 1000), (1000, 4000)]), manifest, "d")["fields"]["brand"]
    assert one["top_values"] == other["top_values"]
    expected = pd.Series(brands).value_counts()
    listed = one["top_values"]
    assert len(listed) == TOP_LISTED and one["top1_value"] == expected.index[0]
    for entry, (value, count) in zip(listed, expected.items()):
        assert entry["value"] == value and entry["id"] == feature_id("brand", value)
        assert entry["share"] == pytest.approx(count / N)
