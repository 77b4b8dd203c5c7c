"""Reading a piece (files read together): the rows of each of its days, conformed to the raw-day contract.

A row's day is its date (dated sources) or ``floor(rank(r) * K / n)`` for a piece of n rows cut into
K pseudo-days, rank by the piece's cut (package docstring). Conformed: ``spec.label`` int8 in
{0, 1}; sparse fields string or int64; dense fields float64 (NaN = missing); passthrough columns as
read; nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from features.hashing import combo_hash

from .common import ReadContext, SourceError, reading
from .joins import apply_label_rule, join_side_tables, joined_columns

CUTS = ("contiguous", "seeded", "time")


@dataclass(frozen=True)
class Piece:
    """Files read together and the days their rows are cut into (``cut``: a CUTS entry or ``date``)."""

    files: tuple[Path, ...]
    dates: tuple[str, ...]
    cut: str


def read(ctx: ReadContext, path: Path, include: list[str] | None = None) -> pa.Table:
    """One file by its kind's reader, checked for the columns ``include`` (default: those a day needs)."""
    table = ctx.kind.read(ctx, path, include)
    needed = include or needed_columns(ctx)
    missing = [c for c in needed if c not in table.column_names]
    if missing:
        raise SourceError(f"dataset {ctx.name!r}: {path} has no column(s) {missing} "
                          f"(kind {ctx.spec.source.kind}; it has {table.column_names})")
    return table


def needed_columns(ctx: ReadContext) -> list[str]:
    """Columns the log files must have: the raw columns less what side tables and the label rule
    supply, plus join keys, the rule's column and the date or time column."""
    spec = ctx.spec
    extra = [t.key for t in spec.source.join]
    if spec.label_rule:
        extra.append(spec.label_rule.column)
    if spec.source.date_column:
        extra.append(spec.source.date_column)
    if ctx.options["cut"] == "time" and not spec.source.date_column:
        extra.append(ctx.options["time_column"])
    supplied = joined_columns(spec) | ({spec.label} if spec.label_rule else set())
    return [c for c in dict.fromkeys(spec.raw_columns + extra) if c not in supplied]


def row_dates(ctx: ReadContext, table: pa.Table, path: Path) -> pa.Array:
    """``YYYY-MM-DD`` strings of the date column."""
    col, fmt = ctx.spec.source.date_column, ctx.options.get("date_format")
    arr = table[col]
    with reading(ctx, path):
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


def _cut(ctx: ReadContext, piece: Piece, table: pa.Table) -> np.ndarray:
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


def _date_index(ctx: ReadContext, piece: Piece, tables: list[pa.Table]) -> np.ndarray:
    """Day index (into ``piece.dates``) of every row of a dated piece; -1 for rows of other days."""
    dates = np.array(piece.dates)
    dated = np.concatenate([row_dates(ctx, t, f).to_numpy(zero_copy_only=False) for t, f in zip(tables, piece.files)])
    pos = np.searchsorted(dates, dated).clip(0, len(dates) - 1)
    return np.where(dates[pos] == dated, pos, -1)


def _check_label(ctx: ReadContext, piece: Piece, label: pa.ChunkedArray, day: np.ndarray,
                 file_of_row: np.ndarray) -> None:
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


def _conform(ctx: ReadContext, piece: Piece, table: pa.Table) -> pa.Table:
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
        elif name in spec.multi_names:
            out[name] = _as_list(ctx, piece, name, col)
        elif name in spec.passthrough:
            out[name] = col
        else:
            role = "dense (needs numbers)" if name in spec.dense_names else "sparse (needs integers or strings)"
            raise SourceError(f"dataset {ctx.name!r}: column {name!r} is {role} but has type {col.type} in "
                              f"{[str(f) for f in piece.files]}")
    return pa.table(out)


def _as_list(ctx: ReadContext, piece: Piece, name: str, col: pa.ChunkedArray) -> pa.ChunkedArray:
    """A multi-valued column as ``list<string>`` or ``list<int64>``: a string column cut by its ``sep``."""
    sep = next(m.sep for m in ctx.spec.multi if m.name == name)
    kind = col.type.value_type if pa.types.is_dictionary(col.type) else col.type
    if (pa.types.is_string(kind) or pa.types.is_large_string(kind)) and sep:
        return pc.split_pattern(col.cast(pa.string()), sep)
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        inner = kind.value_type
        return col.cast(pa.list_(pa.int64() if pa.types.is_integer(inner) else pa.string()))
    raise SourceError(f"dataset {ctx.name!r}: multi-valued column {name!r} has type {col.type} in "
                      f"{[str(f) for f in piece.files]}; give a list column, or strings with multi[].sep")


def read_piece(ctx: ReadContext, piece: Piece, dates: list[str],
               side_tables: list[pa.Table]) -> Iterator[tuple[str, pa.Table]]:
    """The rows of each of ``dates`` (a subset of ``piece.dates``), joined with the ``side_tables``
    (``joins.read_side_tables``), labelled and conformed, in file order."""
    tables = [read(ctx, f) for f in piece.files]
    file_of_row = np.repeat(np.arange(len(tables)), [t.num_rows for t in tables])
    columns = needed_columns(ctx)
    table = pa.concat_tables([t.select(columns) for t in tables], promote_options="permissive")
    day = _date_index(ctx, piece, tables) if piece.cut == "date" else _cut(ctx, piece, table)
    table = apply_label_rule(ctx, join_side_tables(ctx, table, side_tables), [str(f) for f in piece.files])
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
