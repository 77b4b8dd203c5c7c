"""The feature stage on small hand-made raw days: outputs, skipping, serving parity, bad input."""

import json
import shutil

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from features import pipeline
from features.hashing import MISSING_TOKEN, feature_id
from features.lake import COMPLETE, Lake, atomic_dir, fingerprint, make_record, read_record, write_record
from features.stats import compute_day_stats, read_day_counts, read_day_stats, stored_counts
from features.spec import DatasetSpec

DAYS = ["2026-03-01", "2026-03-02"]


def make_spec(**overrides) -> DatasetSpec:
    spec = dict(name="toy", label="click", group="user", sparse=["user", "item"],
                dense=[{"name": "price", "buckets": 8, "log1p": True}], cross=[("user", "item")],
                passthrough=["p_true"], source={"kind": "parquet"})
    return DatasetSpec.model_validate({**spec, **overrides})


def raw_frame(n=3000, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    price = rng.lognormal(3, 1, n)
    price[::17] = np.nan
    item = np.array([f"i{v}" for v in rng.zipf(1.3, n) % 500], dtype=object)
    item[::23] = None
    return pd.DataFrame({"click": rng.integers(0, 2, n).astype("int8"), "user": rng.zipf(1.5, n) % 300,
                         "item": item, "price": price, "p_true": rng.random(n)})


def write_raw(lake: Lake, date: str, frame: pd.DataFrame, parts: int = 2) -> None:
    with atomic_dir(lake.raw("toy", date)) as tmp:
        for k, chunk in enumerate(np.array_split(np.arange(len(frame)), parts)):
            pq.write_table(pa.Table.from_pandas(frame.iloc[chunk], preserve_index=False), tmp / f"part-{k}.parquet")
        write_record(tmp, make_record("ingest", {"source": f"{date}:{len(frame)}"}, "test"))


@pytest.fixture
def lake(tmp_path) -> Lake:
    lake = Lake(tmp_path)
    for i, d in enumerate(DAYS):
        write_raw(lake, d, raw_frame(seed=i))
    return lake


def test_fit_and_transform_write_the_documented_feature_table(lake):
    spec = make_spec()
    manifest = pipeline.fit(spec, lake, DAYS[:1])
    result = pipeline.transform(spec, lake, DAYS[1], manifest)
    assert not result.skipped and result.rows == 3000
    table = pd.read_parquet(lake.features("toy", DAYS[1]))
    assert list(table.columns) == ["user", "item", "price", "user_x_item", "label", "group", "p_true"]
    assert all(table[f].dtype == np.int64 for f in spec.fields)
    raw = raw_frame(seed=1)
    # Sparse IDs follow the spec, row for row; missing items get the missing token's ID.
    assert table["user"].iloc[0] == feature_id("user", str(raw["user"].iloc[0]))
    assert (table["item"].iloc[::23] == feature_id("item", MISSING_TOKEN)).all()
    assert (table["group"] == table["user"]).all()
    assert (table["label"].to_numpy() == raw["click"].to_numpy()).all()
    np.testing.assert_array_equal(table["p_true"], raw["p_true"])
    # Dense buckets: about balanced, missing prices get the missing token's ID.
    assert (table["price"].iloc[::17] == feature_id("price", MISSING_TOKEN)).all()
    assert table["price"].nunique() == len(manifest.dense["price"]["boundaries"]) + 2
    record = json.loads((lake.features("toy", DAYS[1]) / COMPLETE).read_text())
    assert record["rows"] == 3000 and record["inputs"]["manifest"] == manifest.digest
    stored = pipeline.Manifest.load(lake.manifest("toy"))
    assert stored == manifest and stored.fields == spec.fields and stored.hash_spec_version == 1


def feature_table_readers(url: str, storage_options: dict | None = None) -> dict[str, pd.DataFrame]:
    """The feature table ``features/<dataset>`` read whole, as other teams' tools read it."""
    import dask.dataframe as dd
    import pyarrow.dataset as pds
    from upath import UPath

    root = UPath(url, **(storage_options or {}))
    arrow = pds.dataset(root.path, filesystem=None if root.protocol in ("", "file") else root.fs,
                        format="parquet", partitioning="hive")
    frames = {"pandas": pd.read_parquet(url, storage_options=storage_options),
              "pyarrow.dataset": arrow.to_table().to_pandas(),
              "dask.dataframe": dd.read_parquet(url, storage_options=storage_options).compute()}
    frames = {k: f.assign(dt=f["dt"].astype(str)) for k, f in frames.items()}
    return {k: f.sort_values(list(f.columns), ignore_index=True) for k, f in frames.items()}


def test_the_feature_folders_are_one_hive_partitioned_table(lake):
    spec = make_spec()
    manifest = pipeline.fit(spec, lake, DAYS[:1])
    for d in DAYS:
        pipeline.transform(spec, lake, d, manifest)
    frames = feature_table_readers(str(lake.features("toy")))
    want = [*spec.fields, "label", "group", "p_true", "dt"]
    for name, frame in frames.items():
        assert list(frame.columns) == want, name
        assert len(frame) == 6000 and sorted(frame["dt"].unique()) == DAYS, name
        pd.testing.assert_frame_equal(frame, frames["pandas"], check_dtype=False, check_categorical=False)
    assert (lake.features("toy") / "_manifest.json").exists() and not (lake.features("toy") / "manifest.json").exists()


def test_a_version_1_lake_is_migrated_by_the_next_run(lake):
    """Version 1 wrote a ``dt`` column into the files and ``manifest.json`` into the table folder."""
    spec = make_spec()
    manifest = pipeline.fit(spec, lake, DAYS[:1])
    pipeline.transform(spec, lake, DAYS[1], manifest)
    folder = lake.features("toy", DAYS[1])
    record = read_record(folder)
    del record["inputs"]["feature_table"]        # version 1's key: no layout in it
    record["digest"] = make_record("transform", record["inputs"], record["config_hash"])["digest"]
    (folder / COMPLETE).write_text(json.dumps(record))
    lake.manifest("toy").rename(lake.features("toy") / "manifest.json")
    manifest = pipeline.fit(spec, lake, DAYS[:1])
    assert not pipeline.transform(spec, lake, DAYS[1], manifest).skipped     # rewritten in layout 2
    assert not (lake.features("toy") / "manifest.json").exists()
    assert pd.read_parquet(lake.features("toy")).shape[0] == 3000


def test_a_big_raw_file_is_split_into_row_group_tasks(lake, monkeypatch):
    monkeypatch.setattr(pipeline, "TASK_ROWS", 1000)
    with atomic_dir(lake.raw("toy", "2026-03-03")) as tmp:
        pq.write_table(pa.Table.from_pandas(raw_frame(n=5000, seed=3), preserve_index=False), tmp / "big.parquet",
                       row_group_size=700)
        write_record(tmp, make_record("ingest", {"source": "big"}, "test"))
    spec = make_spec()
    pieces = pipeline.raw_day_pieces(spec, lake, "2026-03-03")
    assert [p.groups for p in pieces] == [(0, 1), (2, 3), (4, 5), (6, 7)]        # 8 groups of 700 rows (last 100)
    manifest = pipeline.fit(spec, lake, DAYS[:1])
    pipeline.transform(spec, lake, "2026-03-03", manifest)
    files = lake.day_files("features", "toy", "2026-03-03")
    assert len(files) == 4
    table = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    np.testing.assert_array_equal(table["p_true"], raw_frame(n=5000, seed=3)["p_true"])     # row order kept


def test_rerun_with_unchanged_inputs_does_nothing_and_force_recomputes(lake):
    spec = make_spec()
    manifest = pipeline.fit(spec, lake, DAYS[:1])
    first = pipeline.transform(spec, lake, DAYS[0], manifest)
    mtime = (lake.features("toy", DAYS[0]) / COMPLETE).stat().st_mtime_ns
    assert pipeline.fit(spec, lake, DAYS[:1]) == manifest
    again = pipeline.transform(spec, lake, DAYS[0], manifest)
    assert again.skipped and again.rows == first.rows
    assert (lake.features("toy", DAYS[0]) / COMPLETE).stat().st_mtime_ns == mtime
    assert not pipeline.transform(spec, lake, DAYS[0], manifest, force=True).skipped
    # New raw data for the day -> recomputed, and so are its statistics.
    write_raw(lake, DAYS[0], raw_frame(n=100, seed=9))
    assert pipeline.transform(spec, lake, DAYS[0], manifest).rows == 100
    features = fingerprint(lake.features("toy", DAYS[0]))
    assert read_day_stats(lake, "toy", DAYS[0], features=features)["rows"] == 100


def ids_only(stats: dict) -> dict:
    """Statistics without the raw values of the heaviest IDs (only the transform pass knows them: a
    stored feature table holds IDs)."""
    fields = {f: {k: v for k, v in s.items() if k not in ("top_values", "top1_value")}
              for f, s in stats["fields"].items()}
    return {**stats, "fields": fields}


def test_transform_writes_the_days_statistics_in_the_same_pass(lake):
    """The statistics and count table the transform tasks produce (2 raw files, counts merged) are
    exactly those of a separate pass over the stored feature table, keyed by its fingerprint."""
    spec = make_spec(gate={"min_count": 3})
    manifest = pipeline.fit(spec, lake, DAYS[:1])
    pipeline.transform(spec, lake, DAYS[1], manifest)
    stats = read_day_stats(lake, "toy", DAYS[1])
    assert ids_only(stats) == compute_day_stats(manifest, lake, DAYS[1], min_count=3)
    assert all(len(stats["fields"][f]["top_values"]) > 0 for f in spec.sparse)
    assert stats["rows"] == 3000 and stats["min_count"] == 3
    counts, direct = read_day_counts(lake, "toy", DAYS[1]), stored_counts(manifest, lake, DAYS[1])
    for f in spec.fields:                    # the same counts (in whatever order the IDs were met)
        assert dict(zip(*(a.tolist() for a in counts[f]))) == dict(zip(*(a.tolist() for a in direct.fields[f])))
        assert len(counts[f][0]) == len(set(counts[f][0].tolist()))
    record = read_record(lake.stats("toy", DAYS[1]))
    assert record["inputs"] == {"features": fingerprint(lake.features("toy", DAYS[1]))}


def test_a_skipped_transform_writes_statistics_a_feature_day_lacks(lake):
    """A feature day written before the transform wrote statistics gets them on the next
    transform, from the stored table; the feature table itself is not rewritten."""
    spec = make_spec()
    manifest = pipeline.fit(spec, lake, DAYS[:1])
    pipeline.transform(spec, lake, DAYS[0], manifest)
    written = read_day_stats(lake, "toy", DAYS[0])
    shutil.rmtree(lake.stats("toy", DAYS[0]))
    mtime = (lake.features("toy", DAYS[0]) / COMPLETE).stat().st_mtime_ns
    assert pipeline.transform(spec, lake, DAYS[0], manifest).skipped
    assert (lake.features("toy", DAYS[0]) / COMPLETE).stat().st_mtime_ns == mtime
    assert read_day_stats(lake, "toy", DAYS[0]) == ids_only(written)
    stats_mtime = (lake.stats("toy", DAYS[0]) / COMPLETE).stat().st_mtime_ns
    assert pipeline.transform(spec, lake, DAYS[0], manifest).skipped                  # current: left alone
    assert (lake.stats("toy", DAYS[0]) / COMPLETE).stat().st_mtime_ns == stats_mtime


def test_refit_on_another_window_changes_the_manifest(lake):
    spec = make_spec()
    a = pipeline.fit(spec, lake, DAYS[:1])
    b = pipeline.fit(spec, lake, DAYS)
    assert a.digest != b.digest and b.fit_dates == DAYS


@pytest.mark.integration
def test_transform_runs_on_a_local_cluster(lake, tmp_path):
    """The feature table a LocalCluster of worker processes writes (one task per raw file) is,
    bit for bit and column for column, the in-process transform of the whole raw day; the bucket
    boundaries it fits are the ones fitted without a cluster."""
    from features.cluster import dask_client

    spec = make_spec()
    with dask_client(n_workers=2):
        manifest = pipeline.fit(spec, lake, DAYS[:1])
        result = pipeline.transform(spec, lake, DAYS[1], manifest)
    assert not result.skipped and result.rows == 3000
    on_cluster = pq.read_table(lake.features("toy", DAYS[1]))
    assert len(list(lake.features("toy", DAYS[1]).glob("part-*.parquet"))) == 2      # one file per raw file
    in_process = pipeline.transform_table(pq.read_table(lake.raw("toy", DAYS[1])), manifest, DAYS[1])
    assert on_cluster.schema.names == in_process.schema.names == [*spec.fields, "label", "group", "p_true"]
    for name in in_process.schema.names:
        a, b = on_cluster[name].combine_chunks(), in_process[name].combine_chunks()
        assert a.type == b.type and a.equals(b), name
    assert on_cluster.equals(in_process)
    assert ids_only(read_day_stats(lake, "toy", DAYS[1])) == compute_day_stats(manifest, lake, DAYS[1])
    local = Lake(tmp_path / "no-cluster")
    write_raw(local, DAYS[0], raw_frame(seed=0))
    assert pipeline.fit(spec, local, DAYS[:1]).dense == manifest.dense


def test_one_row_transform_equals_batch(lake):
    spec = make_spec()
    manifest = pipeline.fit(spec, lake, DAYS[:1])
    pipeline.transform(spec, lake, DAYS[1], manifest)
    batch = pd.read_parquet(lake.features("toy", DAYS[1]))
    raw = raw_frame(seed=1)
    for i in [0, 17, 23, 1000, 2999]:
        one = pipeline.transform_one(raw.iloc[i].to_dict(), manifest)
        assert one == {f: int(batch[f].iloc[i]) for f in spec.fields}


# --- bad input: one clear error naming what is wrong, and nothing written for that day ----------

def _assert_fails_cleanly(lake, spec, date, match):
    manifest = pipeline.fit(spec, lake, DAYS[:1])
    with pytest.raises(ValueError, match=match):
        pipeline.transform(spec, lake, date, manifest)
    assert not lake.features(spec.name, date).exists()
    assert not [p for p in lake.features(spec.name).iterdir() if p.name.startswith(".tmp")]


def test_missing_column_names_dataset_date_column_and_file(lake):
    write_raw(lake, DAYS[1], raw_frame().rename(columns={"item": "item_renamed"}))
    _assert_fails_cleanly(lake, make_spec(), DAYS[1], r"'toy', date 2026-03-02, file .*part-0.parquet: missing column\(s\) \['item'\]")


def test_spec_naming_an_unknown_column(lake):
    spec = make_spec(sparse=["user", "item", "no_such_field"])
    with pytest.raises(ValueError, match=r"missing column\(s\) \['no_such_field'\]"):
        pipeline.fit(spec, lake, DAYS[:1])


def test_wrong_dtype_names_the_column(lake):
    frame = raw_frame()
    frame["price"] = frame["price"].astype(str)
    write_raw(lake, DAYS[1], frame)
    _assert_fails_cleanly(lake, make_spec(), DAYS[1], r"file .*part-0.parquet: dense column 'price' has type (large_)?string, expected a number")


def test_label_outside_zero_one(lake):
    frame = raw_frame()
    frame.loc[5, "click"] = 2
    write_raw(lake, DAYS[1], frame)
    _assert_fails_cleanly(lake, make_spec(), DAYS[1], r"date 2026-03-02: label column 'click' has 1 value\(s\) outside")


def test_corrupt_parquet_file_is_named(lake):
    (lake.raw("toy", DAYS[1]) / "part-1.parquet").write_bytes(b"PAR1 this is not parquet")
    _assert_fails_cleanly(lake, make_spec(), DAYS[1], r"cannot read Parquet file .*part-1.parquet")


def test_empty_day(lake):
    write_raw(lake, DAYS[1], raw_frame().iloc[:0], parts=1)
    _assert_fails_cleanly(lake, make_spec(), DAYS[1], r"date 2026-03-02: raw day .* is empty")


def test_dense_field_all_nan_on_a_day(lake):
    frame = raw_frame()
    frame["price"] = np.nan
    write_raw(lake, DAYS[1], frame)
    _assert_fails_cleanly(lake, make_spec(), DAYS[1], r"date 2026-03-02: dense field 'price' is all missing")


def test_missing_raw_day(lake):
    manifest = pipeline.fit(make_spec(), lake, DAYS[:1])
    with pytest.raises(FileNotFoundError, match="date 2026-03-09: no complete raw day"):
        pipeline.transform(make_spec(), lake, "2026-03-09", manifest)


def test_manifest_of_another_spec_is_refused(lake):
    manifest = pipeline.fit(make_spec(), lake, DAYS[:1])
    with pytest.raises(ValueError, match="fitted for another version of the spec"):
        pipeline.transform(make_spec(cross=[]), lake, DAYS[1], manifest)


def test_missing_policy_error(lake):
    spec = make_spec(missing="error")
    manifest = pipeline.fit(spec, lake, DAYS[:1])
    with pytest.raises(ValueError, match="sparse field 'item' has missing values"):
        pipeline.transform(spec, lake, DAYS[1], manifest)


def test_an_interrupted_json_write_leaves_neither_a_temporary_nor_a_half_file(tmp_path, monkeypatch):
    import os

    from features.lake import write_json_atomic

    write_json_atomic(tmp_path / "manifest.json", {"v": 1})

    def interrupted(src, dst):
        raise SystemExit(143)                  # SIGTERM between the write and the rename

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(SystemExit):
        write_json_atomic(tmp_path / "manifest.json", {"v": 2})
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.json"]
    assert (tmp_path / "manifest.json").read_text().replace(" ", "").replace("\n", "") == '{"v":1}'
