"""The digest of each shipped dataset's first feature day (``python tests/golden/feature_digests.py``
prints them as JSON): what tests/test_feature_golden.py pins, so a faster feature stage must give
bit-identical IDs, labels and groups (hash spec 1). Runs with the code of any commit (same API).
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

DATASETS = ["synthetic", "synthetic_hard", "criteo", "criteo_raw", "avazu", "frappe", "movielens"]


def first_day_digest(name: str, root: Path) -> dict:
    """Ingest the dataset's first day, fit on it, transform it; SHA-256 of every ID column, label and group."""
    import pyarrow.parquet as pq

    from features import pipeline, sources
    from features.lake import Lake
    from features.spec import load_spec

    spec = load_spec(name)
    if name.startswith("synthetic"):         # one day of 20k rows is plenty
        source = spec.source.model_dump()
        spec = load_spec(name, {"source": {**source, "options": {**source["options"], "rows_per_day": 20000}}})
    lake = Lake(root / name)
    day = sources.source_dates(spec)[0]
    sources.ingest(spec, lake, dates=[day])
    manifest = pipeline.fit(spec, lake, [day])
    pipeline.transform(spec, lake, day, manifest, statistics=False)
    files = lake.day_files("features", spec.name, day)
    table = __import__("pyarrow").concat_tables([pq.read_table(str(f)) for f in files])
    h = hashlib.sha256()
    for column in [*manifest.fields, "label", "group"]:
        h.update(column.encode())
        h.update(np.ascontiguousarray(table[column].to_numpy()).tobytes())
    return {"date": day, "rows": table.num_rows, "sha256": h.hexdigest()}


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        out = {name: first_day_digest(name, Path(tmp)) for name in (sys.argv[1:] or DATASETS)}
    print(json.dumps(out, indent=2, sort_keys=True))
