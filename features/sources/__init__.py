"""Source adapters: land raw logs as Parquet days in ``raw/<dataset>/dt=YYYY-MM-DD/``.

``ingest(spec, lake)`` reads the files of ``spec.source`` with Arrow's multithreaded CSV/Parquet
readers (no Python per row), maps the label to {0, 1}, gives every row a day, and writes each day
through ``lake.staged_dir`` with a ``_COMPLETE.json`` record keyed by the fingerprints of the files
that day is read from and the ingest hash of the spec (source + label + raw columns). A day whose
record matches is neither read nor written.

Raw day columns: ``spec.label`` int8 in {0, 1}; sparse fields string or int64 (null = missing);
dense fields float64 (NaN = missing); passthrough columns as read; nothing else.

Files
-----
``source.path`` is a file, or a folder with ``options.files`` (names or globs, in order); relative
paths resolve against the repository root, ``../shared/data/<rest>`` against ``$DEA_DATA_DIR``
when it is set. The rules: :mod:`features.sources.files`.

Rows -> days
------------
With ``source.date_column`` (kinds csv, parquet, avazu_csv) a row's day is its date
(``options.date_format``: a strptime format such as ``%y%m%d%H``, or ``unix`` for epoch seconds;
default: the column's date/timestamp type or ISO text). A day's record covers only the files that
hold rows of that day, so a new file re-lands only the days it touches.

Otherwise the source is cut into ``source.days`` pseudo-days ``start_date + i``:

* layout ``split`` (criteo_tsv, libfm, movielens, avazu_csv): the first file is cut into
  ``days - (n_files - 1)`` days and each later file is exactly one day, in order. A shipped
  train/valid/test split thus lands on the last days in order, and n k-fold files with
  ``days: n`` become fold i -> day i.
* layout ``concat`` (csv, parquet): all files, in order, form one table cut into ``days`` days.
* the cut of n rows into K days (``options.cut``) is balanced, day sizes differ by at most one:
  row r goes to day ``floor(rank(r) * K / n)`` with rank(r) its 0-based position in
    - ``contiguous``: file order (rank(r) = r);
    - ``seeded``: the order of ``combo_hash(r, 0, options.seed)`` (MurmurHash3, ties by r): a
      fixed permutation that no library version can change;
    - ``time``: the order of ``options.time_column`` (ties by file order): later days are later.
  Inside a day rows keep their file order.

Side tables and label rules
---------------------------
``source.join`` lists lookup tables (users, items) left-joined on a key, and ``label_rule``
(``rating >= 4``) computes the label, both before the cut (:mod:`.joins`); a side table's
fingerprint keys the raw days like the log files', so an edited users table re-lands every day.

Per kind, one module each, whose docstring gives its format, default cut and label mapping:
``criteo_tsv`` (:mod:`.criteo`), ``libfm`` (:mod:`.libfm`), ``movielens`` (:mod:`.movielens`),
``avazu_csv`` (:mod:`.avazu`), ``csv`` (:mod:`.csv`), ``parquet`` (:mod:`.parquet`) and
``synthetic`` (:mod:`.synthetic`: ``features.synthetic.write_day`` per day).

Scale: a piece (the files one cut or one group of dated files covers) is read whole into Arrow
memory; a large log should arrive as dated files. ``options.rows_per_part`` (1_000_000) bounds the
rows per written Parquet part.
"""

from __future__ import annotations

import functools
import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from features.lake import (Lake, date_range, fingerprint, make_record, parse_date, staged_dir, up_to_date,
                           write_record)
from features.spec import DatasetSpec

from . import avazu, criteo, csv, libfm, movielens, parquet
from .common import COMMON_OPTIONS, Kind, ReadContext, SourceError
from .criteo import CRITEO_DENSE, CRITEO_SPARSE
from .files import REPO_ROOT, SHARED_DATA, data_root, resolve_path, source_files
from .joins import read_side_tables, side_files
from .pieces import CUTS, Piece, read, read_piece, row_dates
from .synthetic import synthetic_pieces, write_synthetic_day

__all__ = ["CRITEO_DENSE", "CRITEO_SPARSE", "CUTS", "INGEST_VERSION", "KINDS", "REPO_ROOT", "SHARED_DATA",
           "IngestResult", "Kind", "Piece", "SourceError", "data_root", "ingest", "ingest_hash", "resolve_path",
           "source_dates", "source_files"]

INGEST_VERSION = 1          # bump when an adapter's output changes for the same inputs
KINDS: dict[str, Kind] = {"criteo_tsv": criteo.KIND, "libfm": libfm.KIND, "movielens": movielens.KIND,
                          "avazu_csv": avazu.KIND, "csv": csv.KIND, "parquet": parquet.KIND}


# --- plan: which files each day is read from ---------------------------------------------------------

def _context(spec: DatasetSpec) -> ReadContext:
    src = spec.source
    kind = KINDS[src.kind]
    unknown = sorted(set(src.options) - COMMON_OPTIONS - kind.options)
    if unknown:
        raise SourceError(f"dataset {spec.name!r}: unknown source.options {unknown} for kind {src.kind} "
                          f"(known: {sorted(COMMON_OPTIONS | kind.options)})")
    options = {**kind.defaults, "seed": 0, **src.options}
    if options["cut"] not in CUTS:
        raise SourceError(f"dataset {spec.name!r}: options.cut {options['cut']!r} is not one of {CUTS}")
    if options["cut"] == "time" and not options.get("time_column"):
        raise SourceError(f"dataset {spec.name!r}: options.cut 'time' needs options.time_column")
    if src.date_column and not kind.dated:
        raise SourceError(f"dataset {spec.name!r}: source.date_column is not supported by kind {src.kind}")
    return ReadContext(spec, kind, tuple(source_files(spec)), options)


def _plan(ctx: ReadContext) -> list[Piece]:
    src, files = ctx.spec.source, ctx.files
    if src.date_column:
        return _dated_plan(ctx)
    dates = date_range(src.start_date, src.days)
    if ctx.kind.layout == "concat":
        return [Piece(files, tuple(dates), ctx.options["cut"])]
    first = src.days - (len(files) - 1)
    if first < 1:
        raise SourceError(f"dataset {ctx.name!r}: {len(files)} source files need source.days >= {len(files)} "
                          f"(the first file is cut into days - (files - 1) days, each later file is one day); "
                          f"source.days is {src.days}")
    pieces = [Piece(files[:1], tuple(dates[:first]), ctx.options["cut"])]
    return pieces + [Piece((f,), (d,), "contiguous") for f, d in zip(files[1:], dates[first:])]


def _dated_plan(ctx: ReadContext) -> list[Piece]:
    """One piece per group of files that hold the same days (read from the date column)."""
    by_date: dict[str, list[Path]] = {}
    for path in ctx.files:
        table = read(ctx, path, include=[ctx.spec.source.date_column])
        for d in pc.unique(row_dates(ctx, table, path)).to_pylist():
            by_date.setdefault(d, []).append(path)
    by_files: dict[tuple[Path, ...], list[str]] = {}
    for d in sorted(by_date):
        by_files.setdefault(tuple(by_date[d]), []).append(d)
    return sorted((Piece(f, tuple(ds), "date") for f, ds in by_files.items()), key=lambda p: p.dates[0])


def pseudo_days(spec: DatasetSpec) -> list[str] | None:
    """The pseudo-days ``start_date + i`` an undated source is cut into; None for a dated source
    (``date_column``) and for synthetic logs, which exist for any date."""
    if spec.source.kind == "synthetic" or spec.source.date_column:
        return None
    return date_range(spec.source.start_date, spec.source.days)


def source_dates(spec: DatasetSpec) -> list[str]:
    """The days a source lands (dated sources read their date column to find them)."""
    if spec.source.kind == "synthetic":
        return date_range(spec.source.start_date, spec.source.days)
    return [d for p in _plan(_context(spec)) for d in p.dates]


# --- ingest ------------------------------------------------------------------------------------------

@dataclass
class IngestResult:
    """What ``ingest`` did: rows written per day, days already up to date, and where they are."""

    dataset: str
    written: dict[str, int] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0
    paths: dict[str, Path] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return sum(self.written.values())

    def summary(self) -> str:
        return (f"{self.dataset}: {len(self.written)} day(s) written ({self.rows:,} rows), "
                f"{len(self.skipped)} up to date, in {self.seconds:.1f} s")


def ingest_hash(spec: DatasetSpec) -> str:
    """Hash of what changes the raw days for the same input files: the source and the raw columns."""
    key = {"source": spec.source.model_dump(), "label": spec.label, "sparse": spec.sparse,
           "label_rule": spec.label_rule.model_dump() if spec.label_rule else None,
           "dense": spec.dense_names, "passthrough": spec.passthrough, "ingest_version": INGEST_VERSION}
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _write_day(lake: Lake, spec: DatasetSpec, date: str, table: pa.Table, record: dict, rows_per_part: int) -> Path:
    final = lake.raw(spec.name, date)
    with staged_dir(final) as tmp:      # local files, published to the lake
        for i, start in enumerate(range(0, table.num_rows, rows_per_part)):
            pq.write_table(table.slice(start, rows_per_part), tmp / f"part-{i:05d}.parquet")
        write_record(tmp, {**record, "dataset": spec.name, "date": date, "rows": table.num_rows})
    return final


def _wanted(spec: DatasetSpec, pieces: list[Piece], dates: list[str] | None) -> list[str]:
    """The days to land: all the source's, or ``dates``, each of which the source must have."""
    known = [d for p in pieces for d in p.dates]
    if not known:
        raise SourceError(f"dataset {spec.name!r}: the source has no rows ({spec.source.path})")
    wanted = known if dates is None else [parse_date(d).isoformat() for d in dates]
    unknown = sorted(set(wanted) - set(known))
    if unknown:
        raise SourceError(f"dataset {spec.name!r}: the source has no day(s) {unknown}; it has {known[0]}..{known[-1]} "
                          f"({len(known)} days)")
    return wanted


def ingest(spec: DatasetSpec, lake: Lake, *, dates: list[str] | None = None, force: bool = False) -> IngestResult:
    """Land the source's days (all, or ``dates``) in ``raw/<dataset>/``; up-to-date days are skipped.

    A day is up to date when its ``_COMPLETE.json`` digest equals that of
    ``make_record("ingest", {file: fingerprint(file)}, ingest_hash(spec))`` over the files the day is
    read from; ``force`` rewrites anyway. Raises ``FileNotFoundError`` for a missing source and
    ``SourceError`` for an unreadable file, a missing column or a label outside {0, 1}.
    """
    start = time.perf_counter()
    if spec.source.kind == "synthetic" and (spec.source.join or spec.label_rule):
        raise SourceError(f"dataset {spec.name!r}: source.join and label_rule need a file source, not synthetic")
    result = IngestResult(spec.name)
    config = ingest_hash(spec)
    ctx = None if spec.source.kind == "synthetic" else _context(spec)
    sides = side_files(spec)
    side_tables = functools.cache(lambda: read_side_tables(ctx))     # once, and only when a day is stale
    pieces = synthetic_pieces(spec) if ctx is None else _plan(ctx)
    wanted = _wanted(spec, pieces, dates)
    for piece in pieces:
        todo = [d for d in piece.dates if d in wanted]
        if not todo:
            continue
        record = make_record("ingest", {str(f): fingerprint(f) for f in (*piece.files, *sides)}, config,
                             kind=spec.source.kind)
        stale = [d for d in todo if force or not up_to_date(lake.raw(spec.name, d), record)]
        result.skipped += [d for d in todo if d not in stale]
        result.paths |= {d: lake.raw(spec.name, d) for d in todo}
        if ctx is None:
            result.written |= {date: write_synthetic_day(lake, spec, date, record) for date in stale}
        elif stale:
            for date, table in read_piece(ctx, piece, stale, side_tables()):
                _write_day(lake, spec, date, table, record, int(ctx.options.get("rows_per_part", 1_000_000)))
                result.written[date] = table.num_rows
    result.skipped.sort()
    result.seconds = time.perf_counter() - start
    return result
