"""The feature stage: fit a manifest on a window of raw days, transform a day into feature IDs.

``fit``        raw days (Dask)  -> ``features/<dataset>/_manifest.json`` (fitted bucket boundaries)
``transform``  raw day  (Dask)  -> ``features/<dataset>/dt=<date>/part-*.parquet``, and in the same
                                   pass its statistics ``stats/<dataset>/dt=<date>/`` (``features.stats``)
``transform_one``  one record   -> the same IDs, for serving

The work runs on whatever Dask scheduler is active: open ``features.cluster.dask_client()`` (a
``LocalCluster`` by default, or an existing scheduler's address) around the calls.
Both stages write atomically with a completion record and do nothing when it matches their inputs.

Feature table of a day: one int64 column per field of ``manifest.fields`` (sparse, dense, crosses),
``label`` int8, ``group`` int64 (the group field's ID, 0 without one), then the passthrough
columns; the day is the ``dt=`` folder (Hive partitioning, ``FEATURE_TABLE`` 2: version 1 files
also held a ``dt`` column, which made the folders unreadable as one table). A cross ``a_x_b`` has
the ID ``feature_id("a_x_b", f"{id_a}:{id_b}")``.

The transform's Dask tasks are contiguous row-group ranges of the raw files of about
``TASK_ROWS`` rows, so one big raw file still uses every worker; each task writes one part file.
"""

from __future__ import annotations

import bisect
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from upath import UPath

from features import hashing, stats
from features.bucketing import QuantileBucketizer, symlog1p
from features.lake import (Lake, atomic_dir, fingerprint, make_record, read_record, up_to_date,
                           write_json_atomic, write_record)
from features.manifest import Manifest
from features.spec import DatasetSpec
from features.storage import parquet_file, write_table

log = logging.getLogger(__name__)

FEATURE_TABLE = 2          # layout of the feature files (module docstring); in every transform record
TASK_ROWS = 1 << 18        # rows per transform task (whole row groups): ~60 MB of feature IDs per task
LEGACY_MANIFEST = "manifest.json"   # version 1's manifest, inside the table folder; removed by ``fit``


@dataclass
class TransformResult:
    dataset: str
    date: str
    path: UPath
    rows: int
    seconds: float
    skipped: bool


# --- raw-day checks: fail before any work, naming dataset, date, file and column --------------

@dataclass(frozen=True)
class Piece:
    """A transform task's input: row groups ``groups`` of one raw file."""
    file: UPath
    groups: tuple[int, ...]


def raw_day_pieces(spec: DatasetSpec, lake: Lake, date: str) -> list[Piece]:
    """The raw day's files cut into tasks of whole row groups (about ``TASK_ROWS`` rows each), their
    schemas checked against the spec (the footers read concurrently: a round trip each on S3)."""
    folder = lake.raw(spec.name, date)
    where = f"dataset {spec.name!r}, date {date}"
    files = lake.day_files("raw", spec.name, date)
    with ThreadPoolExecutor(max_workers=16) as pool:
        metas = list(pool.map(lambda f: _footer(f, where), files))
    pieces = []
    for f, meta in zip(files, metas):
        _check_schema(spec, meta.schema.to_arrow_schema(), f"{where}, file {f}")
        pieces += [Piece(f, groups) for groups in _row_group_runs(meta)]
    if sum(m.num_rows for m in metas) == 0:
        raise ValueError(f"{where}: raw day {folder} is empty (0 rows)")
    return pieces


def _footer(f: UPath, where: str) -> pq.FileMetaData:
    try:
        return parquet_file(f).metadata
    except (pa.ArrowInvalid, OSError) as e:
        raise ValueError(f"{where}: cannot read Parquet file {f}: {e}") from None


def _row_group_runs(meta: pq.FileMetaData) -> list[tuple[int, ...]]:
    """Consecutive row groups of a file, cut when a run reaches ``TASK_ROWS`` rows (one run if empty)."""
    runs, run, rows = [], [], 0
    for g in range(meta.num_row_groups):
        run.append(g)
        rows += meta.row_group(g).num_rows
        if rows >= TASK_ROWS:
            runs, run, rows = runs + [tuple(run)], [], 0
    return runs + [tuple(run)] if run or not runs else runs


def _check_schema(spec: DatasetSpec, schema: pa.Schema, where: str) -> None:
    missing = [c for c in spec.raw_columns if c not in schema.names]
    if missing:
        raise ValueError(f"{where}: missing column(s) {missing} (has {schema.names})")
    def kind(col):
        t = schema.field(col).type
        return t.value_type if pa.types.is_dictionary(t) else t
    label_t = kind(spec.label)
    if not (pa.types.is_integer(label_t) or pa.types.is_boolean(label_t) or pa.types.is_floating(label_t)):
        raise ValueError(f"{where}: label column {spec.label!r} has type {label_t}, expected integers 0/1")
    for d in spec.dense_names:
        t = kind(d)
        if not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_null(t)):
            raise ValueError(f"{where}: dense column {d!r} has type {t}, expected a number")
    for s in spec.sparse:
        t = kind(s)
        if not (pa.types.is_integer(t) or pa.types.is_string(t) or pa.types.is_large_string(t)
                or pa.types.is_floating(t) or pa.types.is_boolean(t) or pa.types.is_null(t)):
            raise ValueError(f"{where}: sparse column {s!r} has type {t}, expected strings or integers")
    for m in spec.multi_names:
        if not (pa.types.is_list(kind(m)) or pa.types.is_large_list(kind(m))):
            raise ValueError(f"{where}: multi-valued column {m!r} has type {kind(m)}, expected a list")




# --- fit ----------------------------------------------------------------------------------------

def fit(spec: DatasetSpec, lake: Lake, dates: list[str], *, force: bool = False) -> Manifest:
    """Fit the dense-field buckets on the raw days ``dates`` and write the manifest (skip when current)."""
    if not dates:
        raise ValueError(f"dataset {spec.name!r}: fit needs at least one raw day")
    files = {d: list(dict.fromkeys(p.file for p in raw_day_pieces(spec, lake, d))) for d in dates}   # schemas checked
    record = make_record("fit", {d: fingerprint(lake.raw(spec.name, d)) for d in dates}, spec.config_hash())
    path = lake.manifest(spec.name)
    if not force and path.exists():
        old = Manifest.load(path)
        if old.record.get("digest") == record["digest"]:
            log.info("manifest of %s is up to date (fit on %s): nothing to do", spec.name, ", ".join(dates))
            return old
    bucketizer = QuantileBucketizer(spec.dense)
    if spec.dense:
        frame = dd.read_parquet([str(f) for d in dates for f in files[d]], columns=spec.dense_names)
        try:
            bucketizer.fit(frame)
        except ValueError as e:
            raise ValueError(f"dataset {spec.name!r}, fit window {dates[0]}..{dates[-1]}: {e}") from None
    else:
        bucketizer.boundaries_ = {}
    manifest = Manifest(
        dataset=spec.name, fields=spec.fields, sparse=spec.sparse, dense=bucketizer.to_dict(),
        multi={m.name: m.model_dump(exclude={"name"}) for m in spec.multi},
        cross=spec.cross, label=spec.label, group=spec.group, passthrough=spec.passthrough,
        missing=spec.missing, hash_spec_version=hashing.HASH_SPEC_VERSION, hash_seed=hashing.HASH_SEED,
        config_hash=spec.config_hash(), fit_dates=list(dates), spec=spec.model_dump(mode="json"),
        record=record,
    )
    write_json_atomic(path, manifest.model_dump(mode="json"))
    legacy = lake.features(spec.name) / LEGACY_MANIFEST
    if legacy.exists():
        legacy.unlink()
    return manifest


# --- transform ----------------------------------------------------------------------------------

def transform_table(table: pa.Table, manifest: Manifest, date: str) -> pa.Table:
    """Raw rows -> feature-table rows (the one implementation batch and serving share)."""
    return transform_coded(table, manifest, date)[0]


def transform_coded(table: pa.Table, manifest: Manifest,
                    date: str) -> tuple[pa.Table, dict[str, hashing.Coded], dict[str, pa.Array]]:
    """``transform_table``; per field ``(codes, table)`` with the IDs ``table[codes]`` (what the
    statistics count: ``features.stats.coded_counts``); and per sparse or multi-valued field the raw
    tokens of its ``table`` entries (the statistics keep those of the heaviest IDs)."""
    where = f"dataset {manifest.dataset!r}, date {date}"
    n = table.num_rows
    coded: dict[str, hashing.Coded] = {}
    tokens: dict[str, pa.Array] = {}
    for field in manifest.sparse:
        *coded[field], tokens[field] = hashing.feature_id_codes_tokens(field, table[field])
        if manifest.missing == "error" and (_ids(coded[field]) == hashing.feature_id(field, hashing.MISSING_TOKEN)).any():
            raise ValueError(f"{where}: sparse field {field!r} has missing values and the spec says missing: error")
    lists = {}
    for field, options in manifest.multi.items():
        lists[field], coded[field], tokens[field] = multi_id_codes(field, table[field], options["max_len"])
    bucketizer = QuantileBucketizer.from_dict(manifest.dense)
    for field in manifest.dense:
        x = pc.fill_null(table[field].cast(pa.float64()), np.nan).to_numpy()
        buckets, missing = bucketizer.transform(field, x)
        if manifest.missing == "error" and missing.any():
            raise ValueError(f"{where}: dense field {field!r} has missing values and the spec says missing: error")
        coded[field] = hashing.bucket_id_codes(field, buckets, missing, n_buckets=bucketizer.n_buckets(field))
    for a, b in manifest.cross:
        coded[f"{a}_x_{b}"] = cross_id_codes(f"{a}_x_{b}", _ids(coded[a]), _ids(coded[b]))
    ids = {f: _ids(coded[f]) for f in manifest.fields if f not in lists}
    label = pc.fill_null(table[manifest.label].cast(pa.float64()), np.nan).to_numpy()
    bad = (label != 0) & (label != 1)
    if bad.any():
        examples = sorted({str(v) for v in label[bad][:5]})
        raise ValueError(f"{where}: label column {manifest.label!r} has {int(bad.sum())} value(s) outside "
                         f"{{0, 1}} (e.g. {examples})")
    columns = {f: lists[f] if f in lists else pa.array(ids[f], pa.int64()) for f in manifest.fields}
    columns["label"] = pa.array(label.astype(np.int8))
    columns["group"] = pa.array(ids[manifest.group] if manifest.group else np.zeros(n, np.int64))
    for col in manifest.passthrough:
        columns[col] = table[col]
    return pa.table(columns), coded, tokens


def multi_id_codes(field: str, column, max_len: int) -> tuple[pa.ListArray, hashing.Coded, pa.Array]:
    """A multi-valued field's ``list<int64>`` IDs (missing elements dropped, the first ``max_len``
    kept), and ``(codes, table)`` of the kept elements plus one missing ID per empty list: what the
    statistics count (an empty list counts as the field's missing value); and the table's tokens."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    n = len(arr)
    codes, table, tokens = hashing.feature_id_codes_tokens(field, pc.list_flatten(arr))
    rows = pc.list_parent_indices(arr).to_numpy().astype(np.int64)
    missing = len(table) - 1                                          # the table's last entry: MISSING_TOKEN
    keep = table[codes] != table[missing]
    codes, rows = codes[keep], rows[keep]
    first = np.searchsorted(rows, np.arange(n))                       # rows ascend: list order is row order
    keep = np.arange(rows.size) - first[rows] < max_len
    codes, rows = codes[keep], rows[keep]
    offsets = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n))]).astype(np.int32)
    ids = pa.ListArray.from_arrays(pa.array(offsets), pa.array(table[codes], pa.int64()))
    empty = np.full(int((np.diff(offsets) == 0).sum()), missing, np.int64)
    return ids, (np.concatenate([codes, empty]), table), tokens


def _ids(coded: hashing.Coded) -> np.ndarray:
    codes, table = coded
    return table[codes]


def cross_ids(name: str, ids_a: np.ndarray, ids_b: np.ndarray) -> np.ndarray:
    """ID of the cross ``name`` per row: ``feature_id(name, f"{id_a}:{id_b}")`` (``cross_id_codes``)."""
    return _ids(cross_id_codes(name, ids_a, ids_b))


def cross_id_codes(name: str, ids_a: np.ndarray, ids_b: np.ndarray) -> hashing.Coded:
    """``(codes, table)`` of the cross ``name``'s IDs, hashing distinct pairs only.

    Distinct pairs by hash tables, not by sorting rows: each side is factorized (codes < n_a, n_b),
    the pair is the one integer ``code_a · n_b + code_b`` (< n_a · n_b ≤ rows², far below 2^63),
    factorized again (25× faster than ``np.unique(axis=0)`` on 500k rows; the IDs do not depend on
    the order the pairs are found in).
    """
    code_a, uniq_a = pd.factorize(np.asarray(ids_a, dtype=np.int64))
    code_b, uniq_b = pd.factorize(np.asarray(ids_b, dtype=np.int64))
    n_b = max(len(uniq_b), 1)
    inverse, pairs = pd.factorize(code_a.astype(np.int64) * n_b + code_b)
    tokens = pc.binary_join_element_wise(pa.array(uniq_a[pairs // n_b], pa.int64()).cast(pa.string()),
                                         pa.array(uniq_b[pairs % n_b], pa.int64()).cast(pa.string()), ":")
    return inverse, hashing.hash64_tokens(name, tokens)


def _transform_piece(src: Piece, dst: UPath, manifest: Manifest, date: str) -> tuple[dict, stats.Counts]:
    """One Dask task: row groups of a raw Parquet file -> a feature Parquet file; returns the
    missing-value counts of its dense columns (day-level checks) and the value counts of the IDs it
    wrote (statistics). Reads and writes through the lake's filesystem: a worker on another host
    needs only the lake's URL and credentials."""
    columns = list(dict.fromkeys([manifest.label, *manifest.sparse, *manifest.multi, *manifest.dense,
                                  *manifest.passthrough]))
    schema = parquet_file(src.file).schema_arrow
    as_dictionary = [c for c in manifest.sparse if pa.types.is_string(schema.field(c).type)
                     or pa.types.is_large_string(schema.field(c).type)]
    table = parquet_file(src.file, read_dictionary=as_dictionary).read_row_groups(list(src.groups), columns=columns)
    features, coded, tokens = transform_coded(table, manifest, date)
    write_table(features, dst, compression="zstd")
    checks = {"rows": table.num_rows}
    for d in manifest.dense:
        col = table[d].cast(pa.float64())
        checks[f"nan:{d}"] = col.null_count + int(pc.sum(pc.is_nan(col)).as_py() or 0)
    return checks, stats.coded_counts(features, coded, manifest, tokens)


def _write_features(spec: DatasetSpec, lake: Lake, date: str, manifest: Manifest, pieces: list[Piece],
                    record: dict) -> stats.Counts:
    """The feature day's folder, one Dask task per piece; returns the day's merged counts."""
    with atomic_dir(lake.features(spec.name, date)) as tmp:
        tasks = [dask.delayed(_transform_piece, nout=2)(p, tmp / f"part-{i:05d}.parquet", manifest, date)
                 for i, p in enumerate(pieces)]
        checks, counts = dask.compute([t[0] for t in tasks], stats.merge_tree([t[1] for t in tasks]))
        for d in spec.dense_names:
            if sum(c[f"nan:{d}"] for c in checks) == counts.rows:
                raise ValueError(f"dataset {spec.name!r}, date {date}: dense field {d!r} is all missing (NaN) "
                                 f"in {lake.raw(spec.name, date)}")
        write_record(tmp, {**record, "rows": counts.rows, "files": len(pieces)})
    return counts


def transform(spec: DatasetSpec, lake: Lake, date: str, manifest: Manifest, *,
              force: bool = False, statistics: bool = True) -> TransformResult:
    """Write the feature table of one raw day and its statistics (``features.stats``), one Dask task
    per raw file: the tasks count the IDs they write, so the statistics cost no second pass.

    Skips when the feature day is up to date; its statistics are then computed from the stored
    table only when they are missing or stale (days written before the transform wrote them).
    ``statistics=False``: the table only (a model's scratch features, which nothing gates).
    """
    start = time.perf_counter()
    if manifest.config_hash != spec.config_hash():
        raise ValueError(f"dataset {spec.name!r}: the manifest was fitted for another version of the spec "
                         f"(config hash {manifest.config_hash} != {spec.config_hash()}); refit with `dea features --force`")
    pieces = raw_day_pieces(spec, lake, date)
    out = lake.features(spec.name, date)
    record = make_record("transform", {"raw": fingerprint(lake.raw(spec.name, date)), "manifest": manifest.digest,
                                       "feature_table": str(FEATURE_TABLE)}, spec.config_hash())
    min_count = stats.min_count_of(spec)
    if not force and up_to_date(out, record):
        rows = read_record(out).get("rows", 0)
        log.info("features of %s %s are up to date (%d rows): nothing to do", spec.name, date, rows)
        if statistics:
            stats.write_day_stats(manifest, lake, date, min_count=min_count)
        return TransformResult(spec.name, date, out, rows, time.perf_counter() - start, skipped=True)
    counts = _write_features(spec, lake, date, manifest, pieces, record)
    if statistics:
        stats.write_stats(counts, manifest, lake, date, min_count=min_count)
    seconds = time.perf_counter() - start
    log.info("features of %s %s: %d rows in %.1f s -> %s (statistics -> %s)", spec.name, date, counts.rows,
             seconds, out, lake.stats(spec.name, date))
    return TransformResult(spec.name, date, out, counts.rows, seconds, skipped=False)


def transform_one(record: dict, manifest: Manifest) -> dict[str, int | list[int]]:
    """Feature IDs of one raw record, for serving: identical to the batch transform of the same row
    (tests/test_serving_parity.py), without building Arrow tables: the hash called per field, the
    record's dense values transformed as one array and bucketed by ``bisect_right`` (=
    ``searchsorted(side="right")``) on the fitted boundaries."""
    missing = hashing.MISSING_TOKEN
    ids = {f: hashing.feature_id(f, hashing.token_of(record.get(f)) or missing) for f in manifest.sparse}
    for f, options in manifest.multi.items():
        tokens = [t for t in map(hashing.token_of, _elements(record.get(f), options.get("sep"))) if t]
        ids[f] = [hashing.feature_id(f, t) for t in tokens[:options["max_len"]]]
    if manifest.dense:
        names, logged, boundaries = _dense_plan(manifest)
        x = np.array([np.nan if record.get(d) is None else float(record.get(d)) for d in names])
        x[logged] = symlog1p(x[logged])
        for name, v, b in zip(names, x.tolist(), boundaries):
            ids[name] = hashing.feature_id(name, missing if v != v else f"b{bisect.bisect_right(b, v)}")
    for a, b in manifest.cross:
        ids[f"{a}_x_{b}"] = hashing.feature_id(f"{a}_x_{b}", f"{ids[a]}:{ids[b]}")
    return {f: ids[f] for f in manifest.fields}


def _elements(value, sep: str | None) -> list:
    """The elements of one raw multi-valued value: a list as is, a string cut by ``sep``, None: none."""
    if value is None:
        return []
    if isinstance(value, str):
        return value.split(sep) if sep else [value]
    return list(value)


def transform_records(records: list[dict], manifest: Manifest) -> dict[str, np.ndarray]:
    """Feature IDs of a batch of raw records (``{field: int64 [N]}``; a multi-valued field: N lists), for
    serving: one vectorised ``transform_table`` over columns built from the records."""
    columns = {c: pa.array([r.get(c) for r in records]) for c in manifest.sparse}
    columns.update({m: pa.array([[hashing.token_of(e) for e in _elements(r.get(m), o.get("sep"))] for r in records],
                                pa.list_(pa.string())) for m, o in manifest.multi.items()})
    columns.update({d: pa.array([r.get(d) for r in records], pa.float64()) for d in manifest.dense})
    columns[manifest.label] = pa.array(np.zeros(len(records), np.int8))
    table = transform_table(pa.table(columns), manifest.model_copy(update={"passthrough": []}), date="serving")
    return {f: table[f].to_pylist() if f in manifest.multi else table[f].to_numpy() for f in manifest.fields}


def _dense_plan(manifest: Manifest) -> tuple[list[str], np.ndarray, list[list[float]]]:
    """(dense field names, which are log1p'd, their boundaries), built once per manifest."""
    plan = _DENSE_PLANS.get(manifest.digest)
    if plan is None:
        names = list(manifest.dense)
        plan = _DENSE_PLANS[manifest.digest] = (
            names, np.array([bool(manifest.dense[d]["log1p"]) for d in names]),
            [[float(v) for v in manifest.dense[d]["boundaries"]] for d in names])
    return plan


_DENSE_PLANS: dict[str, tuple] = {}
