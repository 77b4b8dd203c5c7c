"""``parquet``: columns by name, types as stored; label as is. Layout concat, cut contiguous; or
dated by ``source.date_column``."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from .common import Kind, ReadContext, reading


def read_parquet(ctx: ReadContext, path: Path, include: list[str] | None) -> pa.Table:
    with reading(ctx, path):
        return pq.read_table(path, columns=include)


KIND = Kind(read_parquet, "concat", frozenset({"date_format"}), {"cut": "contiguous"}, dated=True)
