"""``libfm``: ``<label> <idx>:<val> ...``; the token at position i is field ``options.columns[i]``
(default ``spec.sparse``) and its index is the value (int64). Label -1 -> 0 (0 and 1 kept).

Layout split, cut seeded: Frappe's validation file is cut into train/valid days, its test file is
the last day.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from .common import Kind, ReadContext, read_csv, reading


def read_libfm(ctx: ReadContext, path: Path, include: list[str] | None) -> pa.Table:
    columns = list(ctx.options.get("columns") or ctx.spec.sparse)
    raw = [f"_tok{i}" for i in range(len(columns))]
    table = read_csv(ctx, path, sep=" ", header=False, names=["_label", *raw],
                     types={"_label": pa.int64(), **{c: pa.string() for c in raw}})
    label = table["_label"]
    out = {ctx.spec.label: pc.if_else(pc.equal(label, -1), 0, label)}
    for name, tok in zip(columns, raw):
        with reading(ctx, path):  # "idx:val" -> idx
            out[name] = pc.replace_substring_regex(table[tok], ":.*", "").cast(pa.int64())
    return pa.table(out)


KIND = Kind(read_libfm, "split", frozenset({"columns"}), {"cut": "seeded"})
