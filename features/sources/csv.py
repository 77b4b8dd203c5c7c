"""``csv``: columns by name (``options.columns`` when the file has no header); label as is.

Sparse fields are read as strings, dense ones as float64. Layout concat, cut contiguous; or dated by
``source.date_column``.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from .common import Kind, ReadContext, read_csv


def read_plain_csv(ctx: ReadContext, path: Path, include: list[str] | None) -> pa.Table:
    spec = ctx.spec
    types = {spec.label: pa.int64(), **{c: pa.string() for c in spec.sparse + spec.multi_names},
             **{c: pa.float64() for c in spec.dense_names}}
    names = ctx.options.get("columns")
    return read_csv(ctx, path, sep=ctx.options.get("sep", ","), header=ctx.options.get("header", names is None),
                    names=names, types=types, include=include)


KIND = Kind(read_plain_csv, "concat", frozenset({"sep", "header", "columns", "date_format"}), {"cut": "contiguous"},
            dated=True)
