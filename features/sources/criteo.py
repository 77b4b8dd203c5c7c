"""``criteo_tsv``: ``label, I1..I13, C1..C26``, tab-separated, no header, empty = missing.

Layout split, cut contiguous (Kaggle rows are chronological); label as is. Raw: dense float64,
sparse string. ``options.encoded: true`` reads the pre-encoded k-fold set (dense float64, sparse
int64); with ``files: [part*/train.txt]`` and ``days: 10`` fold i is day i: MemoNet's train 0-7 /
valid 8 / test 9. ``sep`` and ``header`` read comma-separated variants (DeepCTR's sample).
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from .common import Kind, ReadContext, read_csv

CRITEO_DENSE = [f"I{i}" for i in range(1, 14)]
CRITEO_SPARSE = [f"C{i}" for i in range(1, 27)]


def read_criteo(ctx: ReadContext, path: Path, include: list[str] | None) -> pa.Table:
    sparse = pa.int64() if ctx.options.get("encoded", False) else pa.string()
    types = {ctx.spec.label: pa.int64(), **{c: pa.float64() for c in CRITEO_DENSE},
             **{c: sparse for c in CRITEO_SPARSE}}
    return read_csv(ctx, path, sep=ctx.options.get("sep", "\t"), header=ctx.options.get("header", False),
                    names=list(types), types=types, include=include)


KIND = Kind(read_criteo, "split", frozenset({"encoded", "sep", "header"}), {"cut": "contiguous"})
