"""Speed of the data-quality gate on a 1 M-row synthetic day, statistics included.

    .venv/bin/python benchmarks/gate_speed.py --rows 1000000 --out benchmarks/results/gate_speed.json

Lands ``--reference-days`` clean synthetic days plus the day under test, fits the manifest and
writes the feature tables with their statistics (not timed: the feature stage writes them), then
times:

- ``dea_validate_cold_s``: ``dea validate`` in a fresh process — Python and library imports (GX
  alone takes 2–4 s), reading the stored statistics and ID counts, the suites, Data Docs and
  plots: what a user waits;
- ``gate_no_reports_s``: ``run_gate(..., reports=False)`` in this process (imports warm);
- ``stats_s``: ``compute_day_stats`` alone (a separate Dask pass over the stored feature table,
  what a feature day written before the transform wrote statistics costs once).

The machine is shared: ``load_average_before`` and the CPU seconds of ``dea validate``
(``dea_validate_cpu_s``, user + system, all its threads) say how much of the wall time was waiting.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from features import pipeline, synthetic
from features.lake import Lake, atomic_dir, date_range, make_record, write_record
from features.spec import load_spec
from features.stats import compute_day_stats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--reference-days", type=int, default=3)
    ap.add_argument("--out", default="benchmarks/results/gate_speed.json")
    ap.add_argument("--lake", help="lake folder to use (default: a temporary one)")
    args = ap.parse_args()

    spec = load_spec("synthetic")
    with tempfile.TemporaryDirectory() as tmp:
        lake = Lake(Path(args.lake or tmp).resolve())
        days = date_range("2026-01-01", args.reference_days + 1)
        t0 = time.perf_counter()
        for d in days:
            if not (lake.raw(spec.name, d) / "_COMPLETE.json").exists():
                with atomic_dir(lake.raw(spec.name, d)) as out:
                    n = synthetic.write_day(spec, d, out, rows=args.rows, seed=7)
                    write_record(out, make_record("ingest", {"synthetic": f"{d}:{n}"}, spec.config_hash(), rows=n))
        manifest = pipeline.fit(spec, lake, days[:-1])
        for d in days:
            pipeline.transform(spec, lake, d, manifest)      # writes each day's statistics too
        setup = time.perf_counter() - t0

        from validation import run_gate

        target = days[-1]
        load_before = os.getloadavg()[0]
        cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        cli = subprocess.run([sys.executable, "-m", "flows.cli", "--home", str(lake.root), "validate",
                              "--dataset", spec.name, "--date", target, "--force"],
                             capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
        dea_validate = time.perf_counter() - t
        cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        dea_validate_cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
        if cli.returncode not in (0, 1):
            raise SystemExit(f"dea validate failed ({cli.returncode}):\n{cli.stderr}")
        cold = json.loads((lake.validation(spec.name, target) / "verdict.json").read_text())
        t = time.perf_counter()
        warm = run_gate(spec, lake, target, force=True, reports=False)
        gate_no_reports = time.perf_counter() - t
        t = time.perf_counter()
        compute_day_stats(manifest, lake, target)
        stats_s = time.perf_counter() - t

    result = {
        "benchmark": "gate_speed", "rows": args.rows, "reference_days": args.reference_days,
        "fields": len(spec.fields), "checks": len(cold["checks"]), "verdict": cold["verdict"],
        "dea_validate_cold_s": round(dea_validate, 2), "dea_validate_cpu_s": round(dea_validate_cpu, 2),
        "load_average_before": round(load_before, 2), "dea_validate_gate_timings_s": cold["timings"],
        "gate_no_reports_s": round(gate_no_reports, 2), "gate_no_reports_timings_s": warm.doc["timings"],
        "stats_s": round(stats_s, 2), "stats_rows_per_s": round(args.rows / stats_s),
        "target_s": 30, "setup_s": round(setup, 1),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "command": f"python benchmarks/gate_speed.py --rows {args.rows} --reference-days {args.reference_days}",
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
