"""Side tables and label rules: what a source's rows gain at ingest, before they are cut into days.

A side table (``source.join``: users, items, ...) is a lookup keyed by a unique column. Every log
row gains the table's ``columns`` by a left join on ``key``: the row keeps its place and its day, and
a key the table lacks (or a missing key) gives missing values, never a dropped row. The join is a
vectorised lookup, ``pc.index_in(log_keys, table_keys)`` then ``take``, run by Arrow where the rows
are read; side tables are small next to the logs, so each is read once per ingest and broadcast.

A label rule (``label_rule: rating >= 4``) then computes ``spec.label`` as 0/1 from a column of the
logs or of a side table; a missing value in that column is an error that names the rows' files.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from features.spec import DatasetSpec, LabelRule, SideTable

from .common import ReadContext, SourceError, read_csv, reading
from .files import resolve_path

_COMPARE = {">=": pc.greater_equal, ">": pc.greater, "<=": pc.less_equal, "<": pc.less,
            "==": pc.equal, "!=": pc.not_equal}


def side_files(spec: DatasetSpec) -> list[Path]:
    """The side tables' files, resolved like ``source.path`` (their fingerprints key the raw days)."""
    return [resolve_path(t.path) for t in spec.source.join]


def joined_columns(spec: DatasetSpec) -> set[str]:
    """Columns that come from side tables, not from the log files."""
    return {c for t in spec.source.join for c in t.columns}


def read_side_table(ctx: ReadContext, side: SideTable) -> pa.Table:
    """The table's key and columns, checked: the file exists, has them, and its key is unique."""
    path = resolve_path(side.path)
    if not path.is_file():
        raise SourceError(f"dataset {ctx.name!r}: side table {path} (source.join, key {side.key!r}) does not exist")
    if path.suffix == ".parquet":
        with reading(ctx, path):
            table = pq.read_table(path)
    else:
        table = read_csv(ctx, path, sep="\t" if path.suffix == ".tsv" else side.sep, header=True)
    wanted = [side.key_in_table, *side.columns]
    missing = [c for c in wanted if c not in table.column_names]
    if missing:
        raise SourceError(f"dataset {ctx.name!r}: side table {path} has no column(s) {missing} "
                          f"(it has {table.column_names})")
    table = table.select(wanted)
    keys = table[side.key_in_table]
    if keys.null_count or pc.count_distinct(keys).as_py() != table.num_rows:
        counts = pc.value_counts(keys.drop_null())
        dupes = counts.filter(pc.greater(counts.field("counts"), 1)).field("values").to_pylist()[:5]
        raise SourceError(f"dataset {ctx.name!r}: side table {path} must have one row per {side.key_in_table!r}; "
                          f"{keys.null_count} missing key(s), repeated keys e.g. {dupes}")
    return table


def _lookup(ctx: ReadContext, side: SideTable, logs: pa.Table, table: pa.Table) -> pa.Table:
    """Left join ``table``'s columns onto ``logs`` by position: row i of the result is row i of the logs."""
    keys, table_keys = logs[side.key], table[side.key_in_table]
    if keys.type != table_keys.type:
        try:
            table_keys = table_keys.cast(keys.type)
        except pa.ArrowInvalid as e:
            raise SourceError(f"dataset {ctx.name!r}: join key {side.key!r} is {keys.type} in the logs but "
                              f"{table_keys.type} in {side.path}, and does not convert: {e}") from None
    index = pc.index_in(keys, value_set=table_keys)          # null where the key is missing or unknown
    for name in side.columns:
        logs = logs.append_column(name, table[name].take(index))
    return logs


def read_side_tables(ctx: ReadContext) -> list[pa.Table]:
    """Every side table of the source, in ``source.join`` order (``read_side_table``)."""
    return [read_side_table(ctx, side) for side in ctx.spec.source.join]


def join_side_tables(ctx: ReadContext, logs: pa.Table, tables: list[pa.Table]) -> pa.Table:
    """``logs`` with the columns of the side tables ``tables`` (``read_side_tables``)."""
    for side, table in zip(ctx.spec.source.join, tables):
        logs = _lookup(ctx, side, logs, table)
    return logs


def apply_label_rule(ctx: ReadContext, table: pa.Table, files: list[str]) -> pa.Table:
    """``table`` with ``spec.label`` set to the rule's 0/1 (unchanged without a rule)."""
    rule: LabelRule | None = ctx.spec.label_rule
    if rule is None:
        return table
    column = table[rule.column]
    if column.null_count:
        raise SourceError(f"dataset {ctx.name!r}: label rule `{rule}` meets {column.null_count} missing "
                          f"{rule.column!r} value(s) in {files}; fill them or drop those rows upstream")
    try:
        if rule.op == "in":
            label = pc.is_in(column, value_set=pa.array(rule.value).cast(column.type))
        else:
            label = _COMPARE[rule.op](column, pa.scalar(rule.value))
    except (pa.ArrowException, TypeError) as e:
        raise SourceError(f"dataset {ctx.name!r}: label rule `{rule}` does not apply to {rule.column!r} "
                          f"of type {column.type} in {files}: {e}") from None
    label = label.cast(pa.int8())
    if ctx.spec.label in table.column_names:
        return table.set_column(table.column_names.index(ctx.spec.label), ctx.spec.label, label)
    return table.append_column(ctx.spec.label, label)
