"""``avazu_csv``: Kaggle's CSV; files without the first file's header line (dev/test) are read with
its column names. Every column a string except the label.

Layout split, cut contiguous (Kaggle's train file is in time order; the 9k sample is one hour
sorted by ad id, so any cut of it is random); or dated by ``source.date_column``.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from .common import Kind, ReadContext, read_csv, reading


def _first_line(ctx: ReadContext, path: Path) -> str:
    with reading(ctx, path), open(path, "rb") as f:
        return f.readline().decode("utf-8").rstrip("\r\n")


def read_avazu(ctx: ReadContext, path: Path, include: list[str] | None) -> pa.Table:
    header_line = _first_line(ctx, ctx.files[0])
    names = header_line.split(",")
    types = {n: pa.string() for n in names} | {ctx.spec.label: pa.int64()}
    return read_csv(ctx, path, sep=",", header=_first_line(ctx, path) == header_line, names=names,
                    types=types, include=include)


KIND = Kind(read_avazu, "split", frozenset({"date_format"}), {"cut": "contiguous"}, dated=True)
