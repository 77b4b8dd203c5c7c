"""Batch (Dask) and one-row (serving) transforms give identical IDs, on sampled rows of every dataset."""

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from features import pipeline
from features.lake import Lake
from features.sources import ingest
from features.spec import available_specs, load_spec

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.mark.parametrize("dataset", available_specs())
def test_one_row_transform_equals_batch_on_sampled_rows(dataset, tmp_path):
    spec = load_spec(dataset)
    if spec.source.kind != "synthetic" and not SHARED_DATA.exists():
        pytest.skip(f"{SHARED_DATA} is absent")
    if spec.source.kind == "synthetic":
        spec = load_spec(dataset, overrides={"source": {**spec.source.model_dump(), "days": 2,
                                                        "options": {**spec.source.options, "rows_per_day": 5000}}})
    lake = Lake(tmp_path)
    days = sorted(ingest(spec, lake).written)
    manifest = pipeline.fit(spec, lake, days[:1])
    date = days[-1]
    pipeline.transform(spec, lake, date, manifest)
    raw = pq.read_table(lake.raw(spec.name, date)).to_pylist()
    batch = pq.read_table(lake.features(spec.name, date)).to_pandas()
    assert len(raw) == len(batch)
    rows = np.random.default_rng(0).choice(len(raw), size=min(50, len(raw)), replace=False)
    for i in rows:
        served = pipeline.transform_one(raw[i], manifest)
        assert served == {f: int(batch[f].iloc[i]) for f in manifest.fields}, f"{dataset} row {i}"
