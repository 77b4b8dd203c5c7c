"""Feature-stage throughput on a Criteo-shaped day: fit + transform (without and with the day's
statistics) with 1 and 2 Dask workers, against a naive baseline (pandas ``Series.map`` calling mmh3
per value), and the serving path (``transform_one``, ``transform_records``).

    .venv/bin/python benchmarks/features_throughput.py --rows 2000000 --out benchmarks/results/features_throughput.json

The table has 13 log-normal dense columns (I1..I13, 5 % NaN) and 26 Zipf string columns (C1..C26),
written as Parquet parts of ``--part-rows`` rows; peak worker memory is reported per run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import mmh3
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features import pipeline
from features.cluster import dask_client
from features.hashing import HASH_SEED
from features.lake import Lake, atomic_dir, make_record, write_record
from features.sources import ingest, source_dates
from features.spec import DatasetSpec, load_spec

DATE = "2026-01-01"
DENSE = [f"I{i}" for i in range(1, 14)]
SPARSE = [f"C{i}" for i in range(1, 27)]


def criteo_spec() -> DatasetSpec:
    return DatasetSpec.model_validate(dict(
        name="criteo_shape", label="label", sparse=SPARSE,
        dense=[{"name": d, "buckets": 64, "log1p": True} for d in DENSE], source={"kind": "parquet"}))


def write_criteo_shaped_day(lake: Lake, rows: int, part_rows: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    vocab = rng.integers(1_000, 1_000_000, size=len(SPARSE))  # per-column vocabulary sizes
    with atomic_dir(lake.raw("criteo_shape", DATE)) as tmp:
        for k, start in enumerate(range(0, rows, part_rows)):
            n = min(part_rows, rows - start)
            cols = {"label": rng.integers(0, 2, n).astype(np.int8)}
            for d in DENSE:
                x = rng.lognormal(1.0, 1.5, n)
                x[rng.random(n) < 0.05] = np.nan
                cols[d] = x
            for c, v in zip(SPARSE, vocab):
                ids = (rng.zipf(1.2, n) % v).astype(np.int64)
                cols[c] = pa.array(ids).cast(pa.string())  # strings, like Criteo's hex tokens
            pq.write_table(pa.table(cols), tmp / f"part-{k:05d}.parquet")
        write_record(tmp, make_record("ingest", {"bench": f"{rows}:{seed}"}, "bench"))


def _warm() -> None:
    """Load the compiled kernels in a worker (numba's on-disk cache), as its first task would."""
    from features import kernels

    kernels.bucket_index(np.zeros(1), np.zeros(1), np.zeros(1, np.int64))
    kernels.murmur3_x64_64(np.zeros(0, np.uint8), np.zeros(0, np.uint8), np.zeros(1, np.int64), 0, np.zeros(0, np.uint64))


def _best(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def run_pipeline(lake: Lake, spec: DatasetSpec, workers: int, rows: int, repeats: int) -> dict:
    """Fit, then the best of ``repeats`` forced transforms without and with the day's statistics."""
    with dask_client(n_workers=workers, threads_per_worker=1) as client:
        client.run(_warm)  # workers up, kernels loaded, before timing
        t0 = time.perf_counter()
        manifest = pipeline.fit(spec, lake, [DATE], force=True)
        fit = time.perf_counter() - t0
        bare = _best(lambda: pipeline.transform(spec, lake, DATE, manifest, force=True, statistics=False), repeats)
        full = _best(lambda: pipeline.transform(spec, lake, DATE, manifest, force=True), repeats)
        memory = client.run(lambda dask_worker: dask_worker.monitor.range_query(start=0)["memory"])
    peak = max((max(m) for m in memory.values() if m), default=0)
    return {"workers": workers, "fit_seconds": fit, "transform_seconds": bare, "transform_with_statistics_seconds": full,
            "transform_rows_per_second": rows / bare, "fit_plus_transform_plus_statistics_rows_per_second": rows / (fit + full),
            "statistics_extra": full / bare - 1, "peak_worker_memory_mb": peak / 2**20}


def serving(lake: Lake, spec: DatasetSpec, date: str, records: int = 1000) -> dict:
    """``transform_one`` per record, and ``transform_records`` per record in a batch of ``records``."""
    manifest = pipeline.fit(spec, lake, [date])
    raw = pq.read_table(lake.day_files("raw", spec.name, date)[0]).slice(0, records).to_pylist()
    pipeline.transform_one(raw[0], manifest)
    one = _best(lambda: [pipeline.transform_one(r, manifest) for r in raw], 5) / len(raw)
    batch = _best(lambda: pipeline.transform_records(raw, manifest), 20) / len(raw)
    return {"fields": len(manifest.fields), "transform_one_us_per_record": one * 1e6,
            "transform_records_us_per_record_in_1000": batch * 1e6}


def naive_baseline(lake: Lake, sample_rows: int) -> dict:
    """What one writes first: ``Series.map`` with an mmh3 call per value, per sparse column."""
    frame = pd.read_parquet(lake.raw("criteo_shape", DATE), columns=SPARSE).iloc[:sample_rows]
    t0 = time.perf_counter()
    out = {c: frame[c].map(lambda v, c=c: mmh3.hash64(f"{c}\x1f{v}".encode(), seed=HASH_SEED, signed=True)[0])
           for c in SPARSE}
    seconds = time.perf_counter() - t0
    assert len(out) == len(SPARSE)
    return {"rows": sample_rows, "seconds": seconds, "rows_per_second": sample_rows / seconds,
            "note": "sparse columns only (dense bucketing excluded, which favours the baseline)"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--part-rows", type=int, default=250_000)
    parser.add_argument("--naive-rows", type=int, default=100_000)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results/features_throughput.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        lake = Lake(Path(tmp))
        t = time.perf_counter()
        write_criteo_shaped_day(lake, args.rows, args.part_rows)
        print(f"wrote {args.rows:,} Criteo-shaped rows in {time.perf_counter() - t:.1f} s")
        spec = criteo_spec()
        runs = []
        for w in [int(x) for x in args.workers.split(",")]:
            runs.append(run_pipeline(lake, spec, w, args.rows, args.repeats))
            print(json.dumps(runs[-1]))
        naive = naive_baseline(lake, args.naive_rows)
        print(json.dumps(naive))
        synthetic = load_spec("synthetic")
        day = source_dates(synthetic)[0]
        ingest(synthetic, lake, dates=[day])
        served = {"synthetic": serving(lake, synthetic, day), "criteo_shape": serving(lake, spec, DATE)}
        print(json.dumps(served))
    best = max(r["transform_rows_per_second"] for r in runs)
    by_workers = {r["workers"]: r["transform_rows_per_second"] for r in runs}
    result = {"benchmark": "features_throughput", "rows": args.rows, "part_rows": args.part_rows,
              "columns": {"dense": len(DENSE), "sparse": len(SPARSE)}, "machine": platform.machine(),
              "cpus": os.cpu_count(), "load_average_1m_at_end": os.getloadavg()[0], "runs": runs, "naive": naive,
              "speedup_vs_naive": best / naive["rows_per_second"],
              "scaling_1_to_2_workers": by_workers[2] / by_workers[1] if {1, 2} <= set(by_workers) else None,
              "serving": served}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"best transform {best:,.0f} rows/s, {result['speedup_vs_naive']:.1f}x naive -> {args.out}")


if __name__ == "__main__":
    main()
