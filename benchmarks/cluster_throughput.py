"""Feature throughput per worker: a LocalCluster on a local lake against a Dask cluster of separate
processes (``dask scheduler`` + ``dask worker``, started in another folder) on an S3 lake.

    .venv/bin/python benchmarks/cluster_throughput.py --rows 1000000 --out benchmarks/results/cluster_throughput.json

The S3 store is a local ``moto_server`` (tests/object_store.py), so the figure measures what the
object-store path costs in this code (fsspec reads and writes, server-side copies at publish,
checksums read back), not a network. The same Criteo-shaped day (features_throughput.py) is
transformed on each (best of 3); every run uses 2 workers of 1 thread.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from features import pipeline  # noqa: E402  (after the path: tests.object_store is not installed)
from features.cluster import dask_client  # noqa: E402
from features.lake import Lake  # noqa: E402
from features_throughput import DATE, criteo_spec, write_criteo_shaped_day  # noqa: E402
from tests.object_store import DaskCluster, S3Server  # noqa: E402


def transform_seconds(lake: Lake, address: str | None, workers: int, repeats: int = 3) -> float:
    """Fit once, then the best of ``repeats`` forced transforms of the day (statistics included)."""
    spec = criteo_spec()
    with dask_client(address, n_workers=workers, threads_per_worker=1) as client:
        client.run(lambda: None)
        manifest = pipeline.fit(spec, lake, [DATE], force=True)
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            pipeline.transform(spec, lake, DATE, manifest, force=True)
            best = min(best, time.perf_counter() - start)
        return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--part-rows", type=int, default=250_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results/cluster_throughput.json")
    args = parser.parse_args()
    runs = {}
    with tempfile.TemporaryDirectory() as tmp, S3Server(Path(tmp)) as s3:
        os.environ.update(s3.env)
        local = Lake.default(Path(tmp) / "lake")
        write_criteo_shaped_day(local, args.rows, args.part_rows)
        remote = Lake.default(s3.bucket("bench") + "/lake")
        remote.root.fs.put(f"{local.raw('criteo_shape', DATE)}/", remote.raw("criteo_shape", DATE).path, recursive=True)
        runs["local_lake_localcluster"] = transform_seconds(local, None, args.workers)
        with DaskCluster(args.workers, cwd=Path(tmp) / "elsewhere", env=s3.env) as cluster:
            runs["local_lake_process_cluster"] = transform_seconds(local, cluster.address, args.workers)
            runs["s3_lake_process_cluster"] = transform_seconds(remote, cluster.address, args.workers)
    per_worker = {k: args.rows / s / args.workers for k, s in runs.items()}
    result = {"benchmark": "cluster_throughput", "rows": args.rows, "part_rows": args.part_rows,
              "workers": args.workers, "cpus": os.cpu_count(), "machine": platform.machine(),
              "load_average_1m_after": os.getloadavg()[0], "transform_seconds": runs,
              "rows_per_second_per_worker": per_worker,
              "s3_cluster_vs_localcluster": per_worker["s3_lake_process_cluster"] / per_worker["local_lake_localcluster"]}
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
