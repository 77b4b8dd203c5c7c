"""Per-day long-tail and distribution statistics of a feature day, written by the feature stage.

Every feature table comes with the exact value counts ``c_f(x)`` of the feature IDs of each field
``f`` of the manifest and a 64-bit hash of each whole row (``table_counts``): the
transform task that writes a Parquet file counts the IDs it just computed, and the day's counts
are the merge of its files' (``merge_counts``). Everything else is arithmetic on those counts
(R rows, ``m_f`` the ID of ``MISSING_TOKEN`` in field f, ``P_f`` its present IDs)::

    null_rate      = c(m_f) / R
    unique_ids     = |P_f|
    top1_share     = max_{x∈P_f} c(x) / R               (missing is not a "value" that dominates)
    top100_share   = Σ of the 100 largest c(x), x∈P_f, / R
    tail_share     = Σ_{x∈P_f, c(x) < min_count} c(x) / R
    entropy_bits   = −Σ_x p(x) log2 p(x),   p(x) = c(x)/R (missing included)
    rank_frequency = log2 bins of the rank r (1 = most frequent): bin k holds ranks [2^k, 2^(k+1)),
                     with the count at rank 2^k, the number of IDs and of rows in the bin
    duplicate_rate = (R − #distinct rows) / R
    label_rate     = Σ label / R

A sparse or multi-valued field lists ``top_values``: its ``TOP_LISTED`` heaviest present IDs with their
share of rows and raw value (``brand=nike``, not a bare ID; each transform task keeps the raw values of
its ``TOP_VALUES`` heaviest IDs, so memory stays bounded; statistics recomputed from a stored table,
which holds IDs only, have none), and ``top1_value``. A multi-valued field counts its elements (its
null_rate is the share of rows with an empty list, its shares are per row: a row holds an element at
most once in practice) and keeps the histogram of its list lengths ``lengths[f]`` (rows of length
0..max_len, shaped like a dense histogram); and per dense field the bucket histogram ``counts[k]``
(k = 0..n_buckets−1, mapped back from the bucket IDs ``feature_id(field, f"b{k}")`` of the
manifest's boundaries) plus ``missing``.

Day-over-day statistics compare two days' count tables (``new_ids``); which day is "yesterday"
is the gate's decision (the last day its verdict accepted), so they are not stored here::

    new_id_rate    = Σ_{x∈P_f, x unseen on the previous day} c(x) / R      (row share)
    new_id_share   = |{x∈P_f unseen on the previous day}| / |P_f|           (share of distinct IDs)

A day's folder ``stats/<dataset>/dt=<date>/`` holds ``stats.json`` (the statistics above) and
``counts.parquet`` (field, id, count: the exact value counts), written atomically with a
completion record keyed by the feature day's fingerprint (which includes the digest of its bytes),
the manifest, ``min_count`` and ``STATS_VERSION``. ``features.pipeline.transform`` writes it with
the feature day; ``write_day_stats`` computes it from a stored feature day (days written before
the statistics moved into the transform) and does nothing when the record is current.
"""

from __future__ import annotations

import hashlib
import json
import logging
import dataclasses
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from upath import UPath

from features.hashing import MISSING_TOKEN, bag_ids, feature_id, list_offsets
from features.lake import (Lake, staged_dir, fingerprint, make_record, read_record, up_to_date,
                           write_json_atomic, write_record)
from features.manifest import Manifest
from features.storage import read_table, write_table

log = logging.getLogger(__name__)

STATS_VERSION = 2           # 2: the feature stage writes them, with counts.parquet; no new-ID rates
LENGTH_SUFFIX = "#length"  # counts of a multi-valued field's list lengths ride along as a pseudo-field
STATS_FILE = "stats.json"
COUNTS_FILE = "counts.parquet"
TOP_LISTED = 10             # heaviest IDs listed per field in stats.json, with their raw values
TOP_VALUES = 32             # heaviest IDs per field whose raw value the statistics keep
MIN_COUNT = 5               # default tail threshold (the gate's ``min_count`` default is this one)


@dataclass
class StatsResult:
    dataset: str
    date: str
    path: UPath
    stats: dict
    seconds: float
    skipped: bool


def min_count_of(spec) -> int:
    """The tail threshold of a dataset: its spec's ``gate.min_count``, else ``MIN_COUNT``."""
    return int((spec.gate or {}).get("min_count", MIN_COUNT))


# --- counting -----------------------------------------------------------------------------------

@dataclass
class Counts:
    """Exact value counts of a feature table: one file's, or a whole day's once merged."""

    fields: dict[str, tuple[np.ndarray, np.ndarray]]   # field -> (distinct IDs, their counts), int64
    rows: int
    clicks: int
    row_hashes: np.ndarray                              # the distinct 64-bit row hashes (duplicates)
    tokens: dict[str, dict[int, str]] = dataclasses.field(default_factory=dict)
    #                                     field -> {ID: raw value} of its heaviest IDs (at most TOP_VALUES)

    @property
    def distinct_rows(self) -> int:
        return int(self.row_hashes.size)


def _numpy(table: pa.Table, column: str) -> np.ndarray:
    col = table.column(column)
    return (col.cast(col.type.value_type) if pa.types.is_dictionary(col.type) else col).to_numpy()


def _field_ids(table: pa.Table, field: str) -> np.ndarray:
    """One ID per row: the field's ID, or a multi-valued field's bag ID (``hashing.bag_ids``)."""
    col = table.column(field)
    if pa.types.is_list(col.type) or pa.types.is_large_list(col.type):
        return bag_ids(field, *list_offsets(col))
    return _numpy(table, field)


def _element_ids(table: pa.Table, field: str) -> np.ndarray:
    """What a field's statistics count: its IDs; a multi-valued field's elements and one missing ID
    per empty list (its null rate is the share of empty lists)."""
    col = table.column(field)
    if not (pa.types.is_list(col.type) or pa.types.is_large_list(col.type)):
        return _numpy(table, field)
    offsets, elements = list_offsets(col)
    empty = int((np.diff(offsets) == 0).sum())
    return np.concatenate([elements, np.full(empty, feature_id(field, MISSING_TOKEN), np.int64)])


def length_key(field: str) -> str:
    """The counts entry of a multi-valued field's list lengths (value = length, count = rows)."""
    return f"{field}{LENGTH_SUFFIX}"


def _length_counts(table: pa.Table, manifest: Manifest) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {length_key(f): _value_counts(pc.list_value_length(table.column(f)).to_numpy(zero_copy_only=False)
                                         .astype(np.int64)) for f in manifest.multi}


def _value_counts(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    vc = pd.Series(values, copy=False).value_counts(sort=False)
    return vc.index.to_numpy(np.int64), vc.to_numpy(np.int64)


_MIX = np.uint64(0x9E3779B97F4A7C15)      # odd: multiplying by it is a bijection of the 64-bit words


def row_hashes(table: pa.Table, manifest: Manifest) -> np.ndarray:
    """A 64-bit hash of every row over the fields, the label and the passthrough columns (not
    ``group``/``dt``): pandas' hash of the label and passthrough columns, then each field's ID folded
    in as ``h = (h ^ id) · _MIX``. The IDs are 64-bit hashes already, so one xor-multiply per column
    does (4× faster than hashing them again); each fold is a bijection, so two rows that differ in
    one column never collide."""
    other = pd.DataFrame({c: _numpy(table, c) for c in ["label", *manifest.passthrough]}, copy=False)
    h = pd.util.hash_pandas_object(other, index=False).to_numpy()
    with np.errstate(over="ignore"):
        for f in manifest.fields:
            h = (h ^ _field_ids(table, f).view(np.uint64)) * _MIX
    return h.view(np.int64)


def table_counts(table: pa.Table, manifest: Manifest) -> Counts:
    """Counts of one feature table (a transform task's output, or a stored Parquet file)."""
    fields = {f: _value_counts(_element_ids(table, f)) for f in manifest.fields} | _length_counts(table, manifest)
    label = _numpy(table, "label")
    return Counts(fields, table.num_rows, int((label == 1).sum()), pd.unique(row_hashes(table, manifest)))


def coded_counts(features: pa.Table, coded: dict[str, tuple[np.ndarray, np.ndarray]], manifest: Manifest,
                 tokens: dict[str, pa.Array] | None = None) -> Counts:
    """``table_counts`` of a transform's output from its ``(codes, table)`` per field
    (``features.pipeline.transform_coded``): a ``bincount`` of the codes instead of hashing every
    row's ID again; IDs a table holds twice (``""`` and null are both missing) are summed. With the
    fields' ``tokens`` (raw values of the table entries) the heaviest IDs keep their raw value."""
    fields, values = {}, {}
    for f in manifest.fields:
        codes, table = coded[f]
        counts = np.bincount(codes, minlength=len(table))
        seen = counts > 0
        fields[f] = _summed(table[seen], counts[seen])
        if tokens and f in tokens:
            top = _heaviest(counts)
            names = tokens[f].take(pa.array(top)).to_pylist()
            values[f] = {int(table[c]): v for c, v in zip(top, names) if counts[c] and v is not None}
    fields |= _length_counts(features, manifest)
    label = _numpy(features, "label")
    return Counts(fields, features.num_rows, int((label == 1).sum()), pd.unique(row_hashes(features, manifest)),
                  values)


def _summed(ids: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distinct IDs, summed counts) of IDs that may repeat."""
    codes, distinct = pd.factorize(ids)
    if len(distinct) == len(ids):
        return ids.astype(np.int64, copy=False), counts.astype(np.int64, copy=False)
    return distinct.astype(np.int64, copy=False), np.bincount(codes, weights=counts, minlength=len(distinct)).astype(np.int64)


def merge_counts(parts: list[Counts]) -> Counts:
    """The counts of the union of tables: counts of the same ID summed (IDs in order of first
    appearance), the distinct row hashes of all (deduplicated at every merge, on the workers)."""
    if len(parts) == 1:
        return parts[0]
    fields = {}
    for f in parts[0].fields:
        codes, ids = pd.factorize(np.concatenate([p.fields[f][0] for p in parts]))
        summed = np.bincount(codes, weights=np.concatenate([p.fields[f][1] for p in parts]), minlength=len(ids))
        fields[f] = (ids.astype(np.int64, copy=False), summed.astype(np.int64))
    return Counts(fields, sum(p.rows for p in parts), sum(p.clicks for p in parts),
                  pd.unique(np.concatenate([p.row_hashes for p in parts])), _merged_tokens(parts, fields))


def _heaviest(counts: np.ndarray) -> np.ndarray:
    """Positions of the ``TOP_VALUES`` largest counts (any order among them): O(K), no sort."""
    if counts.size <= TOP_VALUES:
        return np.arange(counts.size)
    return np.argpartition(counts, counts.size - TOP_VALUES)[counts.size - TOP_VALUES:]


def _merged_tokens(parts: list[Counts], fields: dict) -> dict[str, dict[int, str]]:
    """The parts' raw values of the IDs now among the ``TOP_VALUES`` heaviest (bounded at every merge)."""
    out = {}
    for f in {f for p in parts for f in p.tokens}:
        known = {i: v for p in parts for i, v in p.tokens.get(f, {}).items()}
        ids, counts = fields[f]
        top = ids[_heaviest(counts)].tolist()
        out[f] = {i: known[i] for i in top if i in known}
    return out


def merge_tree(parts: list, split_every: int = 8):
    """Delayed tree reduction of delayed ``Counts``, at most ``split_every`` per merge."""
    import dask

    step = dask.delayed(merge_counts, pure=True)
    while len(parts) > 1:
        parts = [step(parts[i:i + split_every]) for i in range(0, len(parts), split_every)]
    return parts[0]


def _file_counts(path: UPath, columns: list[str], manifest: Manifest) -> Counts:
    return table_counts(read_table(path, columns=columns), manifest)


def stored_counts(manifest: Manifest, lake: Lake, date: str, client=None) -> Counts:
    """Counts of a stored feature day: one Dask task per Parquet file, merged in a tree.

    ``client``: a ``distributed.Client`` to run on; by default the active Dask scheduler.
    """
    import dask

    files = lake.day_files("features", manifest.dataset, date)
    columns = list(dict.fromkeys([*manifest.fields, "label", *manifest.passthrough]))
    merged = merge_tree([dask.delayed(_file_counts)(f, columns, manifest) for f in files])
    return client.compute(merged).result() if client is not None else merged.compute()


# --- per-field arithmetic on the counts -------------------------------------------------------

def rank_frequency(counts: np.ndarray) -> dict[str, list[int]]:
    """Log2-binned rank-frequency curve of one field's counts (any order).

    Bin k holds ranks ``[2^k, 2^(k+1))``; ``rank[k] = 2^k``, ``freq[k]`` = the count at that rank,
    ``ids[k]`` = how many IDs the bin holds, ``rows[k]`` = their total count.
    """
    c = np.sort(np.asarray(counts, dtype=np.int64))[::-1]
    if c.size == 0:
        return {"rank": [], "freq": [], "ids": [], "rows": []}
    starts = 2 ** np.arange(int(np.log2(c.size)) + 1)          # 1, 2, 4, ... <= size
    ends = np.minimum(starts * 2, c.size + 1)
    return {"rank": starts.tolist(), "freq": c[starts - 1].tolist(), "ids": (ends - starts).tolist(),
            "rows": np.add.reduceat(c, starts - 1).tolist()}


def _field_stats(ids: np.ndarray, counts: np.ndarray, rows: int, missing_id: int, min_count: int) -> dict[str, Any]:
    """Statistics of one field from its distinct IDs and their counts (see the module docstring);
    the same whatever order the IDs come in (ties go to the smaller ID, sums run over sorted counts)."""
    present = ids != missing_id
    pc = counts[present]
    top = np.sort(pc)[::-1]
    p = np.sort(counts) / rows
    return {
        "null_rate": int(counts[~present].sum()) / rows,
        "unique_ids": int(pc.size),
        "top1_share": float(top[0] / rows) if top.size else 0.0,
        "top1_id": int(ids[present][pc == top[0]].min()) if top.size else None,
        "top100_share": float(top[:100].sum() / rows),
        "tail_share": float(pc[pc < min_count].sum() / rows),
        "entropy_bits": float(-(p * np.log2(p)).sum()),
        "rank_frequency": rank_frequency(pc),
    }


def bucket_table(field: str, n_buckets: int) -> dict[int, int]:
    """``{feature ID: k}`` of the buckets k = 0..n_buckets−1 of a dense field, and ``−1`` for missing."""
    table = {feature_id(field, f"b{k}"): k for k in range(n_buckets)}
    table[feature_id(field, MISSING_TOKEN)] = -1
    return table


def _dense_histogram(field: str, n_buckets: int, ids: np.ndarray, counts: np.ndarray) -> dict[str, Any]:
    table = bucket_table(field, n_buckets)
    k = np.array([table.get(int(i), -2) for i in ids], dtype=np.int64)  # one lookup per distinct ID (<= n_buckets + 1)
    hist = np.bincount(k[k >= 0], weights=counts[k >= 0], minlength=n_buckets).astype(np.int64)
    return {"n_buckets": n_buckets, "counts": hist.tolist(), "missing": int(counts[k == -1].sum()),
            "unknown": int(counts[k == -2].sum())}


def _top_values(field: str, ids: np.ndarray, counts: np.ndarray, rows: int,
                tokens: dict[int, str] | None) -> dict[str, Any]:
    """The ``TOP_LISTED`` heaviest present IDs with their share of rows and raw value (None where the
    statistics were computed from a stored table, which keeps IDs only), and ``top1_value``."""
    if tokens is None:
        return {}
    present = ids != feature_id(field, MISSING_TOKEN)
    ids, counts = ids[present], counts[present]
    order = np.lexsort((ids, -counts))[:TOP_LISTED]         # ties: the smaller ID, like top1_id
    top = [{"id": int(ids[k]), "value": tokens.get(int(ids[k])), "share": float(counts[k] / rows)} for k in order]
    return {"top1_value": top[0]["value"] if top else None, "top_values": top}


def _length_histogram(max_len: int, lengths: np.ndarray, counts: np.ndarray) -> dict[str, Any]:
    """Rows per list length 0..max_len, shaped like a dense histogram (``missing``: the empty lists)
    so the gate's PSI compares it with the reference days the same way."""
    hist = np.bincount(lengths, weights=counts, minlength=max_len + 1).astype(np.int64)
    return {"n_buckets": max_len, "counts": hist[1:].tolist(), "missing": int(hist[0]),
            "mean_length": float((lengths * counts).sum() / max(counts.sum(), 1))}


def day_stats(counts: Counts, manifest: Manifest, date: str, *, min_count: int = MIN_COUNT) -> dict:
    """The statistics of one feature day (see the module docstring) from its counts, JSON-ready."""
    rows = counts.rows
    if rows == 0:
        raise ValueError(f"dataset {manifest.dataset!r}, date {date}: the feature day has 0 rows")
    kinds = manifest.kinds
    fields, dense, lengths = {}, {}, {}
    for f in manifest.fields:
        ids, cnt = counts.fields[f]
        fields[f] = {"kind": kinds[f], **_field_stats(ids, cnt, rows, feature_id(f, MISSING_TOKEN), min_count),
                     **_top_values(f, ids, cnt, rows, counts.tokens.get(f))}
        if kinds[f] == "dense":
            dense[f] = _dense_histogram(f, len(manifest.dense[f]["boundaries"]) + 1, ids, cnt)
        if kinds[f] == "multi":
            lengths[f] = _length_histogram(manifest.multi[f]["max_len"], *counts.fields[length_key(f)])
    duplicates = rows - counts.distinct_rows
    return {"dataset": manifest.dataset, "date": date, "stats_version": STATS_VERSION,
            "manifest_digest": manifest.digest, "rows": rows, "label_rate": counts.clicks / rows,
            "duplicate_rows": duplicates, "duplicate_rate": duplicates / rows, "min_count": min_count,
            "fields": fields, "dense": dense, "lengths": lengths}


def new_ids(today: dict[str, tuple[np.ndarray, np.ndarray]], previous: dict[str, np.ndarray],
            rows: int) -> dict[str, dict[str, float]]:
    """``{field: {"new_id_rate", "new_id_share"}}`` of a day's counts against the previous day's IDs.

    ``today``: field -> (IDs, counts); ``previous``: field -> the previous day's distinct IDs. A field
    the previous day did not have is left out (not measured).
    """
    out = {}
    for f, (ids, cnt) in today.items():
        if f not in previous:
            continue
        present = ids != feature_id(f, MISSING_TOKEN)
        new = ~pd.Index(ids[present]).isin(previous[f])
        out[f] = {"new_id_rate": float(cnt[present][new].sum() / rows),
                  "new_id_share": float(new.mean()) if new.size else 0.0}
    return out


# --- the stats folder -----------------------------------------------------------------------------

def stats_record(manifest: Manifest, lake: Lake, date: str, min_count: int) -> dict:
    """The completion record statistics of this feature day (as it is now) would carry."""
    config = json.dumps({"manifest": manifest.digest, "min_count": min_count, "stats_version": STATS_VERSION},
                        sort_keys=True)
    return make_record("stats", {"features": fingerprint(lake.features(manifest.dataset, date))},
                       hashlib.sha256(config.encode()).hexdigest()[:16])


def _counts_table(counts: Counts) -> pa.Table:
    names = list(counts.fields)
    sizes = [len(counts.fields[f][0]) for f in names]
    return pa.table({
        "field": pa.DictionaryArray.from_arrays(np.repeat(np.arange(len(names), dtype=np.int32), sizes), names),
        "id": np.concatenate([counts.fields[f][0] for f in names]) if names else np.zeros(0, np.int64),
        "count": np.concatenate([counts.fields[f][1] for f in names]) if names else np.zeros(0, np.int64),
    })


def write_stats(counts: Counts, manifest: Manifest, lake: Lake, date: str, *,
                min_count: int = MIN_COUNT) -> StatsResult:
    """Write ``stats/<dataset>/dt=<date>/`` (stats.json, counts.parquet) from the day's counts."""
    start = time.perf_counter()
    record = stats_record(manifest, lake, date, min_count)
    stats = day_stats(counts, manifest, date, min_count=min_count)
    out = lake.stats(manifest.dataset, date)
    with staged_dir(out) as tmp:
        write_json_atomic(tmp / STATS_FILE, stats)
        write_table(_counts_table(counts), tmp / COUNTS_FILE, compression="zstd", use_dictionary=["field"])
        write_record(tmp, {**record, "rows": stats["rows"]})
    return StatsResult(manifest.dataset, date, out, stats, time.perf_counter() - start, skipped=False)


def write_day_stats(manifest: Manifest, lake: Lake, date: str, *, min_count: int = MIN_COUNT, client=None,
                    force: bool = False) -> StatsResult:
    """Statistics of a stored feature day (a Dask pass over its files); nothing when they are current."""
    start = time.perf_counter()
    out = lake.stats(manifest.dataset, date)
    if not force and up_to_date(out, stats_record(manifest, lake, date, min_count)):
        log.info("stats of %s %s are up to date: nothing to do", manifest.dataset, date)
        return StatsResult(manifest.dataset, date, out, read_day_stats(lake, manifest.dataset, date),
                           time.perf_counter() - start, skipped=True)
    result = write_stats(stored_counts(manifest, lake, date, client), manifest, lake, date, min_count=min_count)
    result.seconds = time.perf_counter() - start
    log.info("stats of %s %s: %d rows in %.1f s -> %s", manifest.dataset, date, result.stats["rows"],
             result.seconds, out)
    return result


def compute_day_stats(manifest: Manifest, lake: Lake, date: str, *, min_count: int = MIN_COUNT,
                      client=None) -> dict:
    """The statistics of a stored feature day, computed (Dask) and returned, not written."""
    return day_stats(stored_counts(manifest, lake, date, client), manifest, date, min_count=min_count)


def read_day_stats(lake: Lake, dataset: str, date: str, *, features: str | None = None) -> dict | None:
    """The statistics of a complete stats day, or None; with ``features`` (the feature day's
    fingerprint) only when they were computed from exactly that table."""
    folder = lake.stats(dataset, date)
    record = read_record(folder)
    if record is None or not (folder / STATS_FILE).exists():
        return None
    if features is not None and record.get("inputs", {}).get("features") != features:
        return None
    return json.loads((folder / STATS_FILE).read_text())


def read_day_counts(lake: Lake, dataset: str, date: str, *,
                    with_counts: bool = True) -> dict[str, tuple[np.ndarray, np.ndarray] | np.ndarray] | None:
    """``{field: (IDs, counts)}`` of a stats day's ``counts.parquet`` (``{field: IDs}`` without
    ``with_counts``), or None when the day has none (statistics written before version 2)."""
    folder = lake.stats(dataset, date)
    if read_record(folder) is None or not (folder / COUNTS_FILE).exists():
        return None
    table = read_table(folder / COUNTS_FILE, columns=["field", "id", "count"] if with_counts else ["field", "id"])
    field = table.column("field").combine_chunks()
    codes, names = field.indices.to_numpy(), field.dictionary.to_pylist()
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(names) + 1))
    ids = table.column("id").to_numpy()[order]
    cnt = table.column("count").to_numpy()[order] if with_counts else None
    return {f: (ids[lo:hi], cnt[lo:hi]) if with_counts else ids[lo:hi]
            for f, lo, hi in zip(names, bounds[:-1], bounds[1:])}


# --- derived estimates ------------------------------------------------------------------------

def expected_distinct_pairs(stats: dict, fields: list[str] | None = None) -> float:
    """Expected number of distinct ordered pair keys ``(x_i, x_j)``, i ≠ j, in one day.

    Under independence of fields, with IDs of field f grouped by their log2 rank bins u (n_u IDs,
    r_u rows, so each ID has probability p_u = r_u / (n_u R)), a pair value (x, y) occurs in at
    least one of R rows with probability ``1 − exp(−R p_x p_y)`` (Poisson), so::

        D_ij = Σ_u Σ_v n_u n_v (1 − exp(−r_u r_v / (n_u n_v R)))

    and the total is Σ_{i≠j} D_ij. For independent Zipf fields it is within about 6 % of the exact
    count (slightly under: a bin averages its IDs' probabilities); correlated fields have fewer
    distinct pairs, so there it over-estimates. Shapes: per field a (B,) vector of bins (the missing
    value as one more bin); all pairs at once as (F, F, B, B).
    """
    R = float(stats["rows"])
    names = fields or list(stats["fields"])
    bins = max((len(stats["fields"][f]["rank_frequency"]["ids"]) for f in names), default=0)
    n = np.zeros((len(names), bins + 1))
    r = np.zeros((len(names), bins + 1))
    for i, f in enumerate(names):
        s = stats["fields"][f]
        rf = s["rank_frequency"]
        n[i, :len(rf["ids"])] = rf["ids"]
        r[i, :len(rf["rows"])] = rf["rows"]
        n[i, -1], r[i, -1] = (1.0, s["null_rate"] * R) if s["null_rate"] > 0 else (0.0, 0.0)  # missing: one value
    nn = n[:, None, :, None] * n[None, :, None, :]                        # (F, F, B, B)
    rr = r[:, None, :, None] * r[None, :, None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        d = np.where(nn > 0, nn * -np.expm1(-rr / np.where(nn > 0, nn, 1.0) / R), 0.0).sum(axis=(2, 3))
    np.fill_diagonal(d, 0.0)
    return float(d.sum())
