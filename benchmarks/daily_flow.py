"""Wall time of ``dea-daily`` per stage on synthetic days of ``--rows`` rows (default 1 M), window 3.

A fresh lake (temporary unless ``--home``), ephemeral Prefect, a LocalCluster, CPU unless a GPU
is visible. Three runs of the flow: day D (everything computed: four raw and feature days, the
gate, training, evaluation, the first champion), D again (every stage skips), and D+1 (one new
raw/feature day, a refitted manifest, the champion re-scored with its own manifest beside the new
candidate). Writes JSON with the seconds of every stage of every run.

    .venv/bin/python benchmarks/daily_flow.py --out benchmarks/results/daily_flow.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=1_000_000, help="synthetic rows per day")
    p.add_argument("--window", type=int, default=3)
    p.add_argument("--date", default="2026-01-05")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="TrainConfig overrides on top of the daily default (e.g. model=fm, epochs=1)")
    p.add_argument("--workers", type=int, help="LocalCluster workers (default: cores, at most 4)")
    p.add_argument("--home", help="lake root (default: a temporary folder, removed afterwards)")
    p.add_argument("--out", default="benchmarks/results/daily_flow.json")
    args = p.parse_args(argv)

    home = Path(args.home or tempfile.mkdtemp(prefix="dea-bench-"))
    from flows import settings

    settings.apply(home)
    import torch

    from features.spec import load_spec
    from flows.dea_daily import dea_daily
    from flows.params import DAILY_TRAIN, DaskParams

    train = DAILY_TRAIN.with_overrides(args.set + ["progress=false", "plot=false"])
    source = load_spec("synthetic").source.model_dump()
    source["options"] = {**source["options"], "rows_per_day": args.rows}
    next_day = (dt.date.fromisoformat(args.date) + dt.timedelta(days=1)).isoformat()
    runs = []
    try:
        for label, date in (("first", args.date), ("again", args.date), ("next_day", next_day)):
            start = time.perf_counter()
            result = dea_daily(date=date, window=args.window, train=train, home=str(home),
                               spec_overrides={"source": source}, cluster=DaskParams(n_workers=args.workers))
            wall = time.perf_counter() - start
            ev = result["evaluate"]
            runs.append({"run": label, "date": date, "wall_s": round(wall, 1), "stages_s": result["seconds"],
                         "stages_total_s": round(sum(result["seconds"].values()), 1),
                         "skipped": {k: bool(result[k].get("skipped")) for k in ("validate", "train", "evaluate", "register")},
                         "gate": result["validate"]["verdict"],
                         "candidate": {k: ev["candidate"][k] for k in ("auc", "gauc", "logloss")},
                         "champion": ({k: ev["champion"][k] for k in ("version", "auc", "gauc", "logloss")}
                                      if ev["champion"] else None),
                         "oracle_auc": ev["baselines"].get("oracle", {}).get("auc"),
                         "registered": result["register"]["version"], "promoted": result["register"]["promoted"],
                         "train_rows": result["train"]["metrics"]["train_rows"],
                         "train_samples_per_s": result["train"]["metrics"]["samples_per_second"]})
            print(json.dumps(runs[-1]), flush=True)
    finally:
        if not args.home:
            shutil.rmtree(home, ignore_errors=True)
    doc = {"benchmark": "daily_flow", "rows_per_day": args.rows, "window": args.window,
           "train": train.model_dump(mode="json"), "runs": runs, "target_s": 300,
           "first_run_within_target": runs[0]["wall_s"] < 300,
           "machine": {"cpus": os.cpu_count(), "cuda": torch.cuda.is_available(), "python": platform.python_version(),
                       "torch": torch.__version__, "platform": platform.platform(), "load_avg_1m": os.getloadavg()[0]},
           "command": " ".join([Path(sys.executable).name, *sys.argv])}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(doc, indent=2) + "\n")
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
