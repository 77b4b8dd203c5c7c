"""The feature stage: fit a manifest on a window of raw days, transform a day into feature IDs.

``fit``        raw days (Dask)  -> ``features/<dataset>/manifest.json`` (fitted bucket boundaries)
``transform``  raw day  (Dask)  -> ``features/<dataset>/dt=<date>/part-*.parquet``
``transform_one``  one record   -> the same IDs, for serving

The work runs on whatever Dask scheduler is active: open ``features.cluster.dask_client()`` (a
``LocalCluster`` by default, or an existing scheduler's address) around the calls.
Both stages write atomically with a completion record and do nothing when it matches their inputs.

Feature table of a day: one int64 column per field of ``manifest.fields`` (sparse, dense, crosses),
``label`` int8, ``group`` int64 (the group field's ID, 0 without one), ``dt`` string, then the
passthrough columns. A cross ``a_x_b`` has the ID ``feature_id("a_x_b", f"{id_a}:{id_b}")``.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict

from features import hashing
from features.bucketing import QuantileBucketizer
from features.lake import (Lake, atomic_dir, fingerprint, make_record, read_record, up_to_date,
                           write_json_atomic, write_record, code_version)
from features.spec import DatasetSpec

log = logging.getLogger(__name__)


class Manifest(BaseModel):
    """Everything needed to turn a raw record into feature IDs, as JSON."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: str
    fields: list[str]
    sparse: list[str]
    dense: dict[str, dict]            # name -> {"boundaries": [...], "log1p": bool, "buckets": int}
    cross: list[tuple[str, str]]
    label: str
    group: str | None
    passthrough: list[str]
    missing: str
    hash_spec_version: int
    hash_seed: int
    config_hash: str
    fit_dates: list[str]
    spec: dict
    record: dict

    @property
    def digest(self) -> str:
        return self.record["digest"]

    @classmethod
    def load(cls, path: Path) -> "Manifest":
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"no feature manifest at {path}: run `dea features` (fit) first")
        return cls.model_validate_json(path.read_text())


@dataclass
class TransformResult:
    dataset: str
    date: str
    path: Path
    rows: int
    seconds: float
    skipped: bool


# --- raw-day checks: fail before any work, naming dataset, date, file and column --------------

def raw_day_files(spec: DatasetSpec, lake: Lake, date: str) -> list[Path]:
    """Parquet files of a complete raw day, their schemas checked against the spec."""
    folder = lake.raw(spec.name, date)
    where = f"dataset {spec.name!r}, date {date}"
    if read_record(folder) is None:
        raise FileNotFoundError(f"{where}: no complete raw day at {folder} (run `dea ingest` first)")
    files = sorted(folder.glob("*.parquet"))
    if not files:
        raise ValueError(f"{where}: raw day {folder} holds no Parquet files")
    rows = 0
    for f in files:
        try:
            meta = pq.read_metadata(f)
            schema = meta.schema.to_arrow_schema()
        except (pa.ArrowInvalid, OSError) as e:
            raise ValueError(f"{where}: cannot read Parquet file {f}: {e}") from None
        rows += meta.num_rows
        _check_schema(spec, schema, f"{where}, file {f}")
    if rows == 0:
        raise ValueError(f"{where}: raw day {folder} is empty (0 rows)")
    return files


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


def _read_raw(spec: DatasetSpec, files: list[Path], columns: list[str]) -> dd.DataFrame:
    return dd.read_parquet([str(f) for f in files], columns=columns)


# --- fit ----------------------------------------------------------------------------------------

def fit(spec: DatasetSpec, lake: Lake, dates: list[str], *, force: bool = False) -> Manifest:
    """Fit the dense-field buckets on the raw days ``dates`` and write the manifest (skip when current)."""
    if not dates:
        raise ValueError(f"dataset {spec.name!r}: fit needs at least one raw day")
    files = {d: raw_day_files(spec, lake, d) for d in dates}
    record = make_record("fit", {d: fingerprint(lake.raw(spec.name, d)) for d in dates}, spec.config_hash())
    path = lake.manifest(spec.name)
    if not force and path.exists():
        old = Manifest.load(path)
        if old.record.get("digest") == record["digest"]:
            log.info("manifest of %s is up to date (fit on %s): nothing to do", spec.name, ", ".join(dates))
            return old
    bucketizer = QuantileBucketizer(spec.dense)
    if spec.dense:
        frame = _read_raw(spec, [f for d in dates for f in files[d]], spec.dense_names)
        try:
            bucketizer.fit(frame)
        except ValueError as e:
            raise ValueError(f"dataset {spec.name!r}, fit window {dates[0]}..{dates[-1]}: {e}") from None
    else:
        bucketizer.boundaries_ = {}
    manifest = Manifest(
        dataset=spec.name, fields=spec.fields, sparse=spec.sparse, dense=bucketizer.to_dict(),
        cross=spec.cross, label=spec.label, group=spec.group, passthrough=spec.passthrough,
        missing=spec.missing, hash_spec_version=hashing.HASH_SPEC_VERSION, hash_seed=hashing.HASH_SEED,
        config_hash=spec.config_hash(), fit_dates=list(dates), spec=spec.model_dump(mode="json"),
        record=record,
    )
    write_json_atomic(path, manifest.model_dump(mode="json"))
    return manifest


# --- transform ----------------------------------------------------------------------------------

def transform_frame(frame: pd.DataFrame, manifest: Manifest, date: str) -> pd.DataFrame:
    """Raw rows -> feature table rows (the one implementation batch and serving share)."""
    where = f"dataset {manifest.dataset!r}, date {date}"
    out: dict[str, np.ndarray] = {}
    for field in manifest.sparse:
        values = pa.array(frame[field], from_pandas=True)
        if manifest.missing == "error" and (values.null_count or _has_empty(values)):
            raise ValueError(f"{where}: sparse field {field!r} has missing values and the spec says missing: error")
        out[field] = hashing.feature_ids(field, values)
    bucketizer = QuantileBucketizer.from_dict(manifest.dense)
    for field in manifest.dense:
        buckets, missing = bucketizer.transform(field, frame[field].to_numpy(dtype="float64", na_value=np.nan))
        if manifest.missing == "error" and missing.any():
            raise ValueError(f"{where}: dense field {field!r} has missing values and the spec says missing: error")
        out[field] = hashing.bucket_ids(field, buckets, missing, n_buckets=bucketizer.n_buckets(field))
    for a, b in manifest.cross:
        out[f"{a}_x_{b}"] = cross_ids(f"{a}_x_{b}", out[a], out[b])
    label = frame[manifest.label].to_numpy(dtype="float64", na_value=np.nan)
    bad = ~np.isin(label, (0.0, 1.0))
    if bad.any():
        examples = sorted({str(v) for v in label[bad][:5]})
        raise ValueError(f"{where}: label column {manifest.label!r} has {int(bad.sum())} value(s) outside "
                         f"{{0, 1}} (e.g. {examples})")
    table = pd.DataFrame({f: out[f] for f in manifest.fields}, index=frame.index)
    table["label"] = label.astype(np.int8)
    table["group"] = out[manifest.group] if manifest.group else np.zeros(len(frame), dtype=np.int64)
    table["dt"] = pd.Series(date, index=frame.index, dtype="string")
    for col in manifest.passthrough:
        table[col] = frame[col].to_numpy()
    return table


def _has_empty(values: pa.Array) -> bool:
    return pa.types.is_string(values.type) and bool(pa.compute.any(pa.compute.equal(values, "")).as_py())


def cross_ids(name: str, ids_a: np.ndarray, ids_b: np.ndarray) -> np.ndarray:
    """ID of the cross ``name`` for each row: ``feature_id(name, f"{id_a}:{id_b}")``, hashing distinct pairs only."""
    pairs, inverse = np.unique(np.stack([ids_a, ids_b], axis=1), axis=0, return_inverse=True)
    tokens = [f"{a}:{b}" for a, b in pairs.tolist()]  # one string per distinct pair, not per row
    return hashing.feature_ids(name, pa.array(tokens, pa.string()))[inverse.ravel()]


def _empty_feature_frame(manifest: Manifest, raw_meta: pd.DataFrame) -> pd.DataFrame:
    meta = pd.DataFrame({f: pd.Series(dtype="int64") for f in manifest.fields})
    meta["label"] = pd.Series(dtype="int8")
    meta["group"] = pd.Series(dtype="int64")
    meta["dt"] = pd.Series(dtype="string")
    for col in manifest.passthrough:
        meta[col] = pd.Series(dtype=raw_meta[col].dtype)
    return meta


def _partition_checks(frame: pd.DataFrame, dense: list[str]) -> pd.DataFrame:
    """Per-partition counts for day-level checks: rows and NaN per dense field."""
    row = {"rows": len(frame)}
    row.update({f"nan:{d}": int(frame[d].isna().sum()) for d in dense})
    return pd.DataFrame([row])


def transform(spec: DatasetSpec, lake: Lake, date: str, manifest: Manifest, *,
              force: bool = False) -> TransformResult:
    """Write the feature table of one raw day (skip when its record matches the inputs)."""
    start = time.perf_counter()
    if manifest.config_hash != spec.config_hash():
        raise ValueError(f"dataset {spec.name!r}: the manifest was fitted for another version of the spec "
                         f"(config hash {manifest.config_hash} != {spec.config_hash()}); refit with `dea features --refit`")
    files = raw_day_files(spec, lake, date)
    out = lake.features(spec.name, date)
    record = make_record("transform", {"raw": fingerprint(lake.raw(spec.name, date)), "manifest": manifest.digest},
                         spec.config_hash())
    if not force and up_to_date(out, record):
        rows = read_record(out).get("rows", 0)
        log.info("features of %s %s are up to date (%d rows): nothing to do", spec.name, date, rows)
        return TransformResult(spec.name, date, out, rows, time.perf_counter() - start, skipped=True)

    raw = _read_raw(spec, files, spec.raw_columns)
    features = raw.map_partitions(transform_frame, manifest, date,
                                  meta=_empty_feature_frame(manifest, raw._meta))
    checks = raw.map_partitions(_partition_checks, spec.dense_names,
                                meta=_partition_checks(raw._meta, spec.dense_names))
    with atomic_dir(out) as tmp:
        write = features.to_parquet(str(tmp), write_index=False, compute=False, write_metadata_file=False,
                                    name_function=lambda i: f"part-{i:05d}.parquet")
        _, counts = dask.compute(write, checks)
        rows = int(counts["rows"].sum())
        for d in spec.dense_names:
            if int(counts[f"nan:{d}"].sum()) == rows:
                raise ValueError(f"dataset {spec.name!r}, date {date}: dense field {d!r} is all missing (NaN) "
                                 f"in {lake.raw(spec.name, date)}")
        write_record(tmp, {**record, "rows": rows, "files": len(list(tmp.glob('*.parquet')))})
    seconds = time.perf_counter() - start
    log.info("features of %s %s: %d rows in %.1f s -> %s", spec.name, date, rows, seconds, out)
    return TransformResult(spec.name, date, out, rows, seconds, skipped=False)


def transform_one(record: dict, manifest: Manifest) -> dict[str, int]:
    """Feature IDs of one raw record, for serving: identical to the batch transform of the same row."""
    row = {c: record.get(c) for c in manifest.sparse + list(manifest.dense)}
    row[manifest.label] = 0
    frame = pd.DataFrame([row])
    for d in manifest.dense:
        frame[d] = pd.to_numeric(frame[d], errors="coerce").astype("float64")
    table = transform_frame(frame, manifest.model_copy(update={"passthrough": []}), date="serving")
    return {f: int(table[f].iloc[0]) for f in manifest.fields}
