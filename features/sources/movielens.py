"""``movielens``: ``u.data``: ``user_id, item_id, rating, timestamp`` (tab-separated, int).

label = rating >= ``options.threshold`` (4). Layout split, cut time (by ``timestamp``).
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from .common import Kind, ReadContext, read_csv


def read_movielens(ctx: ReadContext, path: Path, include: list[str] | None) -> pa.Table:
    names = list(ctx.options.get("columns", ["user_id", "item_id", "rating", "timestamp"]))
    table = read_csv(ctx, path, sep="\t", header=False, names=names,
                     types={n: pa.float64() if i == 2 else pa.int64() for i, n in enumerate(names)})
    label = pc.greater_equal(table[names[2]], float(ctx.options.get("threshold", 4))).cast(pa.int8())
    return table.append_column(ctx.spec.label, label) if ctx.spec.label not in names else table


KIND = Kind(read_movielens, "split", frozenset({"columns", "threshold"}), {"cut": "time", "time_column": "timestamp"})
