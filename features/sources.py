"""Source adapters: land raw logs as Parquet days in ``raw/<dataset>/dt=YYYY-MM-DD/``.

``ingest(spec, lake)`` reads the files of ``spec.source`` with Arrow's multithreaded CSV/Parquet
readers (no Python per row), maps the label to {0, 1}, gives every row a day, and writes each day
through ``lake.atomic_dir`` with a ``_COMPLETE.json`` record keyed by the fingerprints of the files
that day is read from and the ingest hash of the spec (source + label + raw columns). A day whose
record matches is neither read nor written.

Raw day columns: ``spec.label`` int8 in {0, 1}; sparse fields string or int64 (null = missing);
dense fields float64 (NaN = missing); passthrough columns as read; nothing else.

Files
-----
``source.path`` is a file, or a folder with ``options.files`` (names or globs relative to it, in the
order given; a glob expands in natural order, ``part2`` before ``part10``). Without ``files`` a
folder contributes every non-hidden file except ``*.md`` / ``README*``, in natural order. Relative
paths resolve against the repository root; ``../shared/data/<rest>`` resolves to
``$DEA_DATA_DIR/<rest>`` when that variable is set.

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

Per kind (default cut; label mapping):

* ``criteo_tsv`` -- ``label, I1..I13, C1..C26``, tab-separated, no header, empty = missing.
  contiguous (Kaggle rows are chronological); label as is. Raw: dense float64, sparse string.
  ``options.encoded: true`` reads the pre-encoded k-fold set (dense float64, sparse int64); with
  ``files: [part*/train.txt]`` and ``days: 10`` fold i is day i: MemoNet's train 0-7 / valid 8 /
  test 9. ``sep`` and ``header`` read comma-separated variants (DeepCTR's sample).
* ``libfm`` -- ``<label> <idx>:<val> ...``; the token at position i is field ``options.columns[i]``
  (default ``spec.sparse``) and its index is the value (int64). Label -1 -> 0 (0 and 1 kept).
  seeded: Frappe's validation file is cut into train/valid days, its test file is the last day.
* ``movielens`` -- ``u.data``: ``user_id, item_id, rating, timestamp`` (tab-separated, int).
  label = rating >= ``options.threshold`` (4). time (by ``timestamp``).
* ``avazu_csv`` -- Kaggle CSV; files without the first file's header line (dev/test) are read
  with its column names. Every column a string except the label. contiguous (Kaggle's train file
  is in time order; the 9k sample is one hour sorted by ad id, so any cut of it is random).
* ``csv`` / ``parquet`` -- columns by name; label as is. contiguous.
* ``synthetic`` -- ``features.synthetic.write_day(spec, date, out_dir, rows=, seed=)`` per day with
  ``options.rows_per_day`` (100_000) and ``options.seed`` (0).

Scale: a piece (the files one cut or one group of dated files covers) is read whole into Arrow
memory; a large log should arrive as dated files. ``options.rows_per_part`` (1_000_000) bounds the
rows per written Parquet part.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pv
import pyarrow.dataset as pds
import pyarrow.parquet as pq

from features.hashing import combo_hash
from features.lake import Lake, atomic_dir, date_range, fingerprint, make_record, parse_date, up_to_date, write_record
from features.spec import DatasetSpec

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ("..", "shared", "data")
INGEST_VERSION = 1          # bump when an adapter's output changes for the same inputs
CUTS = ("contiguous", "seeded", "time")
CRITEO_DENSE = [f"I{i}" for i in range(1, 14)]
CRITEO_SPARSE = [f"C{i}" for i in range(1, 27)]


class SourceError(ValueError):
    """A source that cannot be landed; the message names the dataset, file, date and column."""


# --- paths ---------------------------------------------------------------------------------------

def data_root() -> Path:
    """The shared data folder: ``$DEA_DATA_DIR``, else ``<repo>/../shared/data``."""
    env = os.environ.get("DEA_DATA_DIR")
    return Path(env).expanduser().resolve() if env else (REPO_ROOT.parent / "shared" / "data").resolve()


def resolve_path(path: str | Path) -> Path:
    """A ``source.path``: absolute as is; ``../shared/data/...`` under ``data_root()``; else repo-relative."""
    p = Path(path).expanduser()
    if p.is_absolute():
        return p
    if p.parts[:3] == SHARED_DATA:
        return data_root().joinpath(*p.parts[3:])
    return (REPO_ROOT / p).resolve()


def _natural(path: Path) -> list:
    return [int(s) if s.isdigit() else s for s in re.split(r"(\d+)", str(path))]


def source_files(spec: DatasetSpec) -> list[Path]:
    """The source's files in reading order (see the module docstring)."""
    src = spec.source
    if src.path is None:
        raise SourceError(f"dataset {spec.name!r}: source.path is not set (kind {src.kind})")
    root = resolve_path(src.path)
    if not root.exists():
        raise FileNotFoundError(f"dataset {spec.name!r}: source {root} does not exist (source.path {src.path!r}; "
                                f"shared data root {data_root()}, override with DEA_DATA_DIR)")
    patterns = src.options.get("files")
    if root.is_file():
        if patterns:
            raise SourceError(f"dataset {spec.name!r}: options.files needs source.path to be a folder, {root} is a file")
        return [root]
    if not patterns:
        found = [p for p in root.rglob("*") if p.is_file() and not p.name.startswith((".", "_", "README"))
                 and p.suffix != ".md"]
        if not found:
            raise FileNotFoundError(f"dataset {spec.name!r}: source folder {root} holds no data files")
        return sorted(found, key=_natural)
    files: list[Path] = []
    for pattern in patterns:
        matched = sorted(root.glob(pattern), key=_natural) if any(c in pattern for c in "*?[") else [root / pattern]
        matched = [p for p in matched if p.is_file()]
        if not matched:
            raise FileNotFoundError(f"dataset {spec.name!r}: source {root / pattern} does not exist "
                                    f"(options.files entry {pattern!r})")
        files += [p for p in matched if p not in files]
    return files


# --- readers: one file -> an Arrow table holding spec.label (mapped) and the source's columns --------

@dataclass(frozen=True)
class _Ctx:
    spec: DatasetSpec
    files: tuple[Path, ...]
    options: dict[str, Any]

    @property
    def name(self) -> str:
        return self.spec.name


@contextlib.contextmanager
def _reading(ctx: _Ctx, path: Path) -> Iterator[None]:
    """Turn a reader's failure into an error that names the dataset and the file."""
    try:
        yield
    except SourceError:
        raise
    except (pa.ArrowException, OSError, UnicodeDecodeError, ValueError) as e:
        raise SourceError(f"dataset {ctx.name!r}: cannot read {path} as {ctx.spec.source.kind}: {e}") from e


def _read_csv(ctx: _Ctx, path: Path, *, sep: str, header: bool, names: list[str] | None = None,
              types: dict[str, pa.DataType] | None = None, include: list[str] | None = None) -> pa.Table:
    """Arrow's CSV reader; only the empty string is missing (``NA`` may be a real category)."""
    with _reading(ctx, path):
        return pv.read_csv(
            path,
            read_options=pv.ReadOptions(column_names=names, skip_rows=1 if (header and names) else 0),
            parse_options=pv.ParseOptions(delimiter=sep, quote_char=False if sep in "\t " else '"'),
            convert_options=pv.ConvertOptions(column_types=types, include_columns=include, null_values=[""],
                                              strings_can_be_null=True),
        )


def _read_criteo(ctx: _Ctx, path: Path, include: list[str] | None) -> pa.Table:
    sparse = pa.int64() if ctx.options.get("encoded", False) else pa.string()
    types = {ctx.spec.label: pa.int64(), **{c: pa.float64() for c in CRITEO_DENSE}, **{c: sparse for c in CRITEO_SPARSE}}
    return _read_csv(ctx, path, sep=ctx.options.get("sep", "\t"), header=ctx.options.get("header", False),
                     names=list(types), types=types, include=include)


def _read_libfm(ctx: _Ctx, path: Path, include: list[str] | None) -> pa.Table:
    columns = list(ctx.options.get("columns") or ctx.spec.sparse)
    raw = [f"_tok{i}" for i in range(len(columns))]
    table = _read_csv(ctx, path, sep=" ", header=False, names=["_label", *raw],
                      types={"_label": pa.int64(), **{c: pa.string() for c in raw}})
    label = table["_label"]
    out = {ctx.spec.label: pc.if_else(pc.equal(label, -1), 0, label)}
    for name, tok in zip(columns, raw):
        with _reading(ctx, path):  # "idx:val" -> idx
            out[name] = pc.replace_substring_regex(table[tok], ":.*", "").cast(pa.int64())
    return pa.table(out)


def _read_movielens(ctx: _Ctx, path: Path, include: list[str] | None) -> pa.Table:
    names = list(ctx.options.get("columns", ["user_id", "item_id", "rating", "timestamp"]))
    table = _read_csv(ctx, path, sep="\t", header=False, names=names,
                      types={n: pa.float64() if i == 2 else pa.int64() for i, n in enumerate(names)})
    label = pc.greater_equal(table[names[2]], float(ctx.options.get("threshold", 4))).cast(pa.int8())
    return table.append_column(ctx.spec.label, label) if ctx.spec.label not in names else table


def _first_line(ctx: _Ctx, path: Path) -> str:
    with _reading(ctx, path), open(path, "rb") as f:
        return f.readline().decode("utf-8").rstrip("\r\n")


def _read_avazu(ctx: _Ctx, path: Path, include: list[str] | None) -> pa.Table:
    header_line = _first_line(ctx, ctx.files[0])
    names = header_line.split(",")
    types = {n: pa.string() for n in names} | {ctx.spec.label: pa.int64()}
    return _read_csv(ctx, path, sep=",", header=_first_line(ctx, path) == header_line, names=names,
                     types=types, include=include)


def _read_plain_csv(ctx: _Ctx, path: Path, include: list[str] | None) -> pa.Table:
    spec = ctx.spec
    types = {spec.label: pa.int64(), **{c: pa.string() for c in spec.sparse}, **{c: pa.float64() for c in spec.dense_names}}
    names = ctx.options.get("columns")
    return _read_csv(ctx, path, sep=ctx.options.get("sep", ","), header=ctx.options.get("header", names is None),
                     names=names, types=types, include=include)


def _read_parquet(ctx: _Ctx, path: Path, include: list[str] | None) -> pa.Table:
    with _reading(ctx, path):
        return pq.read_table(path, columns=include)


@dataclass(frozen=True)
class _Kind:
    read: Callable[[_Ctx, Path, list[str] | None], pa.Table]
    layout: str                                   # "split" or "concat"
    options: frozenset[str]                       # adapter-specific option keys
    defaults: dict[str, Any] = field(default_factory=dict)
    dated: bool = False                           # supports source.date_column


_COMMON = frozenset({"files", "cut", "seed", "time_column", "rows_per_part"})
_KINDS: dict[str, _Kind] = {
    "criteo_tsv": _Kind(_read_criteo, "split", frozenset({"encoded", "sep", "header"}), {"cut": "contiguous"}),
    "libfm": _Kind(_read_libfm, "split", frozenset({"columns"}), {"cut": "seeded"}),
    "movielens": _Kind(_read_movielens, "split", frozenset({"columns", "threshold"}),
                       {"cut": "time", "time_column": "timestamp"}),
    "avazu_csv": _Kind(_read_avazu, "split", frozenset({"date_format"}), {"cut": "contiguous"}, dated=True),
    "csv": _Kind(_read_plain_csv, "concat", frozenset({"sep", "header", "columns", "date_format"}),
                 {"cut": "contiguous"}, dated=True),
    "parquet": _Kind(_read_parquet, "concat", frozenset({"date_format"}), {"cut": "contiguous"}, dated=True),
}


def _context(spec: DatasetSpec) -> _Ctx:
    src = spec.source
    kind = _KINDS[src.kind]
    unknown = sorted(set(src.options) - _COMMON - kind.options)
    if unknown:
        raise SourceError(f"dataset {spec.name!r}: unknown source.options {unknown} for kind {src.kind} "
                          f"(known: {sorted(_COMMON | kind.options)})")
    options = {**kind.defaults, "seed": 0, **src.options}
    if options["cut"] not in CUTS:
        raise SourceError(f"dataset {spec.name!r}: options.cut {options['cut']!r} is not one of {CUTS}")
    if options["cut"] == "time" and not options.get("time_column"):
        raise SourceError(f"dataset {spec.name!r}: options.cut 'time' needs options.time_column")
    if src.date_column and not kind.dated:
        raise SourceError(f"dataset {spec.name!r}: source.date_column is not supported by kind {src.kind}")
    return _Ctx(spec, tuple(source_files(spec)), options)


# --- plan: which files each day is read from ---------------------------------------------------------

@dataclass(frozen=True)
class Piece:
    """Files read together and the days their rows are cut into (``cut``: a CUTS entry or ``date``)."""

    files: tuple[Path, ...]
    dates: tuple[str, ...]
    cut: str


def _row_dates(ctx: _Ctx, table: pa.Table, path: Path) -> pa.Array:
    """``YYYY-MM-DD`` strings of the date column."""
    col, fmt = ctx.spec.source.date_column, ctx.options.get("date_format")
    arr = table[col]
    with _reading(ctx, path):
        if fmt == "unix":
            arr = arr.cast(pa.int64()).cast(pa.timestamp("s"))
        elif fmt:
            arr = pc.strptime(arr.cast(pa.string()), format=fmt, unit="s")
        elif pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
            arr = arr.cast(pa.timestamp("s"))
        elif not (pa.types.is_timestamp(arr.type) or pa.types.is_date(arr.type)):
            raise SourceError(f"dataset {ctx.name!r}: date column {col!r} in {path} has type {arr.type}; "
                              f"set source.options.date_format (a strptime format or 'unix')")
        arr = arr.cast(pa.date32()).cast(pa.string())
    if arr.null_count:
        raise SourceError(f"dataset {ctx.name!r}: date column {col!r} in {path} has {arr.null_count} missing value(s)")
    return arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr


def _plan(ctx: _Ctx) -> list[Piece]:
    src, files = ctx.spec.source, ctx.files
    if src.date_column:
        by_date: dict[str, list[Path]] = {}
        for path in files:
            table = _read(ctx, path, include=[src.date_column])
            for d in pc.unique(_row_dates(ctx, table, path)).to_pylist():
                by_date.setdefault(d, []).append(path)
        by_files: dict[tuple[Path, ...], list[str]] = {}
        for d in sorted(by_date):
            by_files.setdefault(tuple(by_date[d]), []).append(d)
        return sorted((Piece(f, tuple(ds), "date") for f, ds in by_files.items()), key=lambda p: p.dates[0])
    dates = date_range(src.start_date, src.days)
    if _KINDS[src.kind].layout == "concat":
        return [Piece(files, tuple(dates), ctx.options["cut"])]
    first = src.days - (len(files) - 1)
    if first < 1:
        raise SourceError(f"dataset {ctx.name!r}: {len(files)} source files need source.days >= {len(files)} "
                          f"(the first file is cut into days - (files - 1) days, each later file is one day); "
                          f"source.days is {src.days}")
    pieces = [Piece(files[:1], tuple(dates[:first]), ctx.options["cut"])]
    return pieces + [Piece((f,), (d,), "contiguous") for f, d in zip(files[1:], dates[first:])]


def source_dates(spec: DatasetSpec) -> list[str]:
    """The days a source lands (dated sources read their date column to find them)."""
    if spec.source.kind == "synthetic":
        return date_range(spec.source.start_date, spec.source.days)
    return [d for p in _plan(_context(spec)) for d in p.dates]


# --- reading a piece ---------------------------------------------------------------------------------

def _read(ctx: _Ctx, path: Path, include: list[str] | None = None) -> pa.Table:
    table = _KINDS[ctx.spec.source.kind].read(ctx, path, include)
    needed = include or _needed_columns(ctx)
    missing = [c for c in needed if c not in table.column_names]
    if missing:
        raise SourceError(f"dataset {ctx.name!r}: {path} has no column(s) {missing} "
                          f"(kind {ctx.spec.source.kind}; it has {table.column_names})")
    return table


def _needed_columns(ctx: _Ctx) -> list[str]:
    extra = [ctx.spec.source.date_column] if ctx.spec.source.date_column else []
    if ctx.options["cut"] == "time" and not ctx.spec.source.date_column:
        extra.append(ctx.options["time_column"])
    return list(dict.fromkeys(ctx.spec.raw_columns + extra))


def _cut(ctx: _Ctx, piece: Piece, table: pa.Table) -> np.ndarray:
    """Day index (into ``piece.dates``) of every row of a pseudo-day piece: ``rank * K // n``."""
    n, k = table.num_rows, len(piece.dates)
    if n < k:
        raise SourceError(f"dataset {ctx.name!r}: {n} rows in {[str(f) for f in piece.files]} cannot fill {k} days")
    if piece.cut == "contiguous":
        rank = np.arange(n, dtype=np.int64)
    else:
        if piece.cut == "seeded":
            key = pa.array(combo_hash(np.arange(n), 0, int(ctx.options["seed"])))
        else:
            key = table[ctx.options["time_column"]]
            if key.null_count:
                raise SourceError(f"dataset {ctx.name!r}: time column {ctx.options['time_column']!r} has "
                                  f"{key.null_count} missing value(s) in {[str(f) for f in piece.files]}")
        rank = pc.rank(key, sort_keys="ascending", tiebreaker="first").to_numpy().astype(np.int64) - 1
    return rank * k // n


def _date_index(ctx: _Ctx, piece: Piece, tables: list[pa.Table]) -> np.ndarray:
    """Day index (into ``piece.dates``) of every row of a dated piece; -1 for rows of other days."""
    dates = np.array(piece.dates)
    row_dates = np.concatenate([_row_dates(ctx, t, f).to_numpy(zero_copy_only=False)
                                for t, f in zip(tables, piece.files)])
    pos = np.searchsorted(dates, row_dates).clip(0, len(dates) - 1)
    return np.where(dates[pos] == row_dates, pos, -1)


def _check_label(ctx: _Ctx, piece: Piece, label: pa.ChunkedArray, day: np.ndarray, file_of_row: np.ndarray) -> None:
    if not (pa.types.is_integer(label.type) or pa.types.is_floating(label.type) or pa.types.is_boolean(label.type)):
        raise SourceError(f"dataset {ctx.name!r}: label {ctx.spec.label!r} has type {label.type} in "
                          f"{[str(f) for f in piece.files]}; expected 0/1 integers")
    if pa.types.is_boolean(label.type):
        label = label.cast(pa.int8())
    ok = pc.is_in(label, value_set=pa.array([0, 1]).cast(label.type)).to_numpy(zero_copy_only=False)
    bad = np.flatnonzero(~ok & (day >= 0))
    if bad.size:
        values = pc.unique(label.take(pa.array(bad[:1000]))).to_pylist()[:5]
        dates = [piece.dates[d] for d in np.unique(day[bad])]
        files = [str(piece.files[i]) for i in np.unique(file_of_row[bad])]
        raise SourceError(f"dataset {ctx.name!r}: label {ctx.spec.label!r} has {bad.size} value(s) outside {{0, 1}} "
                          f"after the {ctx.spec.source.kind} mapping (e.g. {values}) on {dates} in {files}")


def _conform(ctx: _Ctx, piece: Piece, table: pa.Table) -> pa.Table:
    """Select the raw columns with the contract's types."""
    spec, out = ctx.spec, {}
    for name in spec.raw_columns:
        col = table[name]
        kind = col.type.value_type if pa.types.is_dictionary(col.type) else col.type
        if name == spec.label:
            out[name] = col.cast(pa.int8())
        elif name in spec.dense_names and (pa.types.is_integer(kind) or pa.types.is_floating(kind)
                                           or pa.types.is_null(kind)):
            out[name] = pc.fill_null(col.cast(pa.float64()), np.nan)
        elif name in spec.sparse and pa.types.is_integer(kind):
            out[name] = col.cast(pa.int64())
        elif name in spec.sparse and (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
            out[name] = col.cast(pa.string())
        elif name in spec.passthrough:
            out[name] = col
        else:
            role = "dense (needs numbers)" if name in spec.dense_names else "sparse (needs integers or strings)"
            raise SourceError(f"dataset {ctx.name!r}: column {name!r} is {role} but has type {col.type} in "
                              f"{[str(f) for f in piece.files]}")
    return pa.table(out)


def _read_piece(ctx: _Ctx, piece: Piece, dates: list[str]) -> Iterator[tuple[str, pa.Table]]:
    """The rows of each of ``dates`` (a subset of ``piece.dates``), conformed, in file order."""
    tables = [_read(ctx, f) for f in piece.files]
    file_of_row = np.repeat(np.arange(len(tables)), [t.num_rows for t in tables])
    columns = _needed_columns(ctx)
    table = pa.concat_tables([t.select(columns) for t in tables], promote_options="permissive")
    day = _date_index(ctx, piece, tables) if piece.cut == "date" else _cut(ctx, piece, table)
    _check_label(ctx, piece, table[ctx.spec.label], day, file_of_row)
    table = _conform(ctx, piece, table)
    order = np.argsort(day, kind="stable")
    bounds = np.searchsorted(day[order], np.arange(-1, len(piece.dates) + 1))
    for date in dates:
        k = piece.dates.index(date) + 1          # +1: bounds start at the "other days" group (-1)
        rows = order[bounds[k]:bounds[k + 1]]
        if rows.size == 0:
            raise SourceError(f"dataset {ctx.name!r}: day {date} has no rows in {[str(f) for f in piece.files]}")
        yield date, table.take(pa.array(rows))


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
           "dense": spec.dense_names, "passthrough": spec.passthrough, "ingest_version": INGEST_VERSION}
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _write_day(lake: Lake, spec: DatasetSpec, date: str, table: pa.Table, record: dict, rows_per_part: int) -> Path:
    final = lake.raw(spec.name, date)
    with atomic_dir(final) as tmp:
        for i, start in enumerate(range(0, table.num_rows, rows_per_part)):
            pq.write_table(table.slice(start, rows_per_part), tmp / f"part-{i:05d}.parquet")
        write_record(tmp, {**record, "dataset": spec.name, "date": date, "rows": table.num_rows})
    return final


def _synthetic_day(spec: DatasetSpec, date: str, out: Path) -> int:
    """One synthetic day written by ``features.synthetic.write_day``, checked against the contract."""
    synthetic = importlib.import_module("features.synthetic")
    opts = spec.source.options
    rows = synthetic.write_day(spec, date, out, rows=int(opts.get("rows_per_day", 100_000)), seed=int(opts.get("seed", 0)))
    data = pds.dataset(sorted(out.glob("part-*.parquet")), format="parquet")
    missing = [c for c in spec.raw_columns if c not in data.schema.names]
    if missing:
        raise SourceError(f"dataset {spec.name!r}: synthetic day {date} lacks column(s) {missing}")
    label = data.to_table(columns=[spec.label])[spec.label]
    bad = label.length() - pc.sum(pc.is_in(label, value_set=pa.array([0, 1]).cast(label.type))).as_py()
    if bad:
        raise SourceError(f"dataset {spec.name!r}: synthetic day {date} has {bad} label value(s) outside {{0, 1}} in {out}")
    return int(rows)


def ingest(spec: DatasetSpec, lake: Lake, *, dates: list[str] | None = None, force: bool = False) -> IngestResult:
    """Land the source's days (all, or ``dates``) in ``raw/<dataset>/``; up-to-date days are skipped.

    A day is up to date when its ``_COMPLETE.json`` digest equals that of
    ``make_record("ingest", {file: fingerprint(file)}, ingest_hash(spec))`` over the files the day is
    read from; ``force`` rewrites anyway. Raises ``FileNotFoundError`` for a missing source and
    ``SourceError`` for an unreadable file, a missing column or a label outside {0, 1}.
    """
    start = time.perf_counter()
    result = IngestResult(spec.name)
    config = ingest_hash(spec)
    if spec.source.kind == "synthetic":
        synthetic = importlib.import_module("features.synthetic")
        pieces = [Piece((Path(synthetic.__file__),), (d,), "synthetic")
                  for d in date_range(spec.source.start_date, spec.source.days)]
        ctx = None
    else:
        ctx = _context(spec)
        pieces = _plan(ctx)
    known = [d for p in pieces for d in p.dates]
    if not known:
        raise SourceError(f"dataset {spec.name!r}: the source has no rows ({spec.source.path})")
    wanted = known if dates is None else [parse_date(d).isoformat() for d in dates]
    unknown = sorted(set(wanted) - set(known))
    if unknown:
        raise SourceError(f"dataset {spec.name!r}: the source has no day(s) {unknown}; it has {known[0]}..{known[-1]} "
                          f"({len(known)} days)")
    for piece in pieces:
        todo = [d for d in piece.dates if d in wanted]
        if not todo:
            continue
        record = make_record("ingest", {str(f): fingerprint(f) for f in piece.files}, config,
                             kind=spec.source.kind)
        stale = [d for d in todo if force or not up_to_date(lake.raw(spec.name, d), record)]
        result.skipped += [d for d in todo if d not in stale]
        result.paths |= {d: lake.raw(spec.name, d) for d in todo}
        if ctx is None:
            for date in stale:
                with atomic_dir(lake.raw(spec.name, date)) as tmp:
                    rows = _synthetic_day(spec, date, tmp)
                    write_record(tmp, {**record, "dataset": spec.name, "date": date, "rows": rows})
                result.written[date] = rows
        elif stale:
            for date, table in _read_piece(ctx, piece, stale):
                _write_day(lake, spec, date, table, record, int(ctx.options.get("rows_per_part", 1_000_000)))
                result.written[date] = table.num_rows
    result.skipped.sort()
    result.seconds = time.perf_counter() - start
    return result
