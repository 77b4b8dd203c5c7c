"""Data-parallel training throughput: samples/s of ``train`` on 1 process and on N (``nproc``).

The default synthetic dataset (``--rows`` per day, 3 days: train, valid, test), each model at its
default hyperparameters, the trainer's defaults otherwise (row-sparse tables and SparseAdam),
``--epochs`` epochs of global batches of ``--batch-size`` rows. Each configuration is a whole
``dea_model.train.train`` call; its figure is the trainer's own ``samples_per_second`` (training
rows × epochs over the seconds of the epochs' training passes: no validation, no start-up), and
``wall_seconds`` is the whole call, starting the ranks included. One process is measured with
torch's default threads and with 1 thread; N processes get cores/N threads each (the launcher's
rule), so on this 2-core machine 2 processes × 1 thread compete with 1 process × 2 threads and
1 process × 1 thread. One untimed warm-up run comes first. The validation AUC of each run is recorded beside it (N processes train the
one-process model: equal up to float sums).

    .venv/bin/python benchmarks/train_scaling.py [--models fm,autoint,dea] [--nproc 1,2] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from pathlib import Path

import common  # first: the set-up every benchmark shares (benchmarks/common.py)
import quality
import torch
from train_throughput import environment

from dea_model.config import TrainConfig
from dea_model.train import train
from features.lake import Lake

log = logging.getLogger("train_scaling")


def run(lake: Lake, days: list[str], model: str, nproc: int, threads: int | None, args) -> dict:
    """One ``train`` call; its throughput, wall time and validation AUC."""
    cfg = TrainConfig(model=model, epochs=args.epochs, batch_size=args.batch_size, device=args.device,
                      nproc=nproc, progress=False, plot=False, calibrate=False, patience=args.epochs)
    if threads:
        torch.set_num_threads(threads)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="train-scaling-") as out:
        r = train(cfg, lake, "synthetic", days[:1], days[1], Path(out) / "run")
    wall = time.perf_counter() - t0
    row = {"model": model, "nproc": nproc, "threads_per_process": threads or max(1, os.cpu_count() // nproc),
           "samples_per_second": round(r.metrics["samples_per_second"], 1),
           "last_epoch_samples_per_second": round(r.curve[-1]["samples_per_second"], 1),
           "train_seconds": round(r.metrics["train_seconds"], 2), "wall_seconds": round(wall, 2),
           "valid_auc": r.metrics["valid"]["auc"]}
    log.info("%s", row)
    return row


def configurations(nprocs: list[int], device: str) -> list[tuple[int, int | None]]:
    """(nproc, threads of this process): one process with the default threads and with 1 (CPU), then N."""
    default = torch.get_num_threads()
    single = [(1, default)] + ([(1, 1)] if device == "cpu" and default > 1 else [])
    return single + [(n, None) for n in nprocs if n > 1]


def speedups(rows: list[dict]) -> dict:
    """Per model: N processes' samples/s over the best one-process figure."""
    out = {}
    for model in sorted({r["model"] for r in rows}):
        mine = [r for r in rows if r["model"] == model]
        best = max(r["samples_per_second"] for r in mine if r["nproc"] == 1)
        out[model] = {f"nproc_{r['nproc']}": round(r["samples_per_second"] / best, 2) for r in mine if r["nproc"] > 1}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="fm,autoint,dea")
    p.add_argument("--nproc", default="1,2", help="comma list of process counts")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--rows", type=int, default=20_000, help="synthetic rows per day (3 days)")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=4096, help="global batch (TrainConfig's default)")
    p.add_argument("--home", help="keep the synthetic lake here (default: a temporary folder)")
    p.add_argument("--note", help="what else ran on the machine (recorded in the JSON)")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "train_scaling.json")
    args = p.parse_args(argv)
    common.log_progress("distributed", "torch.distributed")
    logging.getLogger("torch.distributed.elastic").setLevel(logging.ERROR)
    start, load_before = time.perf_counter(), os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="train-scaling-lake-") as tmp:
        lake = Lake(Path(args.home or tmp))
        days = quality.prepare(lake, "synthetic", workers=1,
                               spec=quality.synthetic_spec("synthetic", rows_per_day=args.rows, days=3))
        configs = configurations([int(n) for n in args.nproc.split(",")], args.device)
        run(lake, days, args.models.split(",")[0], *configs[0], args)       # warm-up: first-call costs, not kept
        rows = [run(lake, days, m, n, t, args) for m in args.models.split(",") for n, t in configs]
    result = {"benchmark": "train_scaling",
              "settings": {"dataset": f"synthetic, {args.rows} rows a day; train 1 day, valid the next",
                           "epochs": args.epochs, "batch_size": args.batch_size, "device": args.device,
                           "hparams": "each model's defaults", "sparse_embeddings": True},
              **({"note": args.note} if args.note else {}), "runs": rows, "speedup_over_best_single_process": speedups(rows),
              "seconds": round(time.perf_counter() - start, 1), "environment": environment(),
              "loadavg_before": load_before, "loadavg_after": os.getloadavg()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["speedup_over_best_single_process"], indent=2))
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
