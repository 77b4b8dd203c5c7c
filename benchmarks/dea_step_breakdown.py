"""Where DEA's train step goes: the step time and FLOPs of DEA with each part switched off, beside AutoInt.

Criteo shape (39 fields, d = 16, B = 1024, the real Criteo rows' IDs as in train_throughput.py),
CPU, 1 thread. Every variant is an ablation flag of the one DEA model (``combo``, ``collapse``,
``fusion``, ``siamese``), so the differences between rows are the parts' costs:

    dea − dea:fusion=sum        the multiply fusion (Eq. 17) over a plain sum of the two maps
    dea − dea:siamese=0         the gated siamese codebooks (2 more hashes, the gate)
    dea:collapse=false − base   Combo-ID attention alone over the shared skeleton
    dea:combo=false − base      collapse-avoiding attention alone

The models take turns step by step (round robin), so load from other processes hits them alike;
the figure is the median step. FLOPs are the matrix products of forward + backward (torch's FLOP
counter), so a part's time over its FLOPs says how efficiently it runs.

    .venv/bin/python benchmarks/dea_step_breakdown.py --out benchmarks/results/dea_step_breakdown.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import common  # first: the set-up every benchmark shares (benchmarks/common.py)
from dea_model.config import TrainConfig
from dea_model.models import build_model
from dea_model.optim import make_optimizer
from train_throughput import DIM, N_FIELDS, criteo_ids, train_flops

VARIANTS = {
    "autoint": ("autoint", {}),
    "dea": ("dea", {}),
    "dea:fusion=sum": ("dea", {"fusion": "sum"}),
    "dea:siamese=0": ("dea", {"siamese": 0}),
    "dea:collapse=false": ("dea", {"collapse": False}),
    "dea:combo=false": ("dea", {"combo": False}),
    "dea:combo=false,collapse=false": ("dea", {"combo": False, "collapse": False}),
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=2**16, help="rows per field table")
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--steps", type=int, default=8, help="timed steps per variant")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--out", type=Path, help="write the results as JSON here")
    args = p.parse_args(argv)
    common.torch_threads(1)
    B, n_batches = args.batch_size, args.steps + args.warmup
    ids = criteo_ids(n_batches * B)
    if ids is None:
        ids = torch.randint(-(2**63), 2**63 - 1, (n_batches * B, N_FIELDS), generator=torch.Generator().manual_seed(1))
    labels = torch.randint(0, 2, (len(ids),), generator=torch.Generator().manual_seed(2)).float()
    batches = [(ids[k * B:(k + 1) * B], labels[k * B:(k + 1) * B]) for k in range(n_batches)]

    runs = {}
    for name, (model_name, hp) in VARIANTS.items():
        torch.manual_seed(0)
        model = build_model(model_name, N_FIELDS, embedding_dim=DIM, embedding_rows=args.rows, **hp)
        runs[name] = (model, make_optimizer(model, TrainConfig(lr=1e-3, batch_size=B)), [])

    def step(model, opt, x, y):
        opt.zero_grad(set_to_none=True)
        F.binary_cross_entropy_with_logits(model(x), y).backward()
        opt.step()

    load_before = os.getloadavg()
    for k, (x, y) in enumerate(batches):
        for model, opt, times in runs.values():    # round robin
            start = time.perf_counter()
            step(model, opt, x, y)
            if k >= args.warmup:
                times.append(time.perf_counter() - start)
    results = []
    for name, (model, opt, times) in runs.items():
        flops = train_flops(lambda: F.binary_cross_entropy_with_logits(model(batches[0][0]), batches[0][1]))
        ms = 1000 * statistics.median(times)
        results.append({"variant": name, "step_ms": ms, "step_ms_min": 1000 * min(times),
                        "gflop_per_step": flops / 1e9,
                        "step_ms_all": [round(1000 * t, 1) for t in times]})
        print(f"{name:32s} {ms:7.1f} ms/step (min {1000 * min(times):6.1f})  "
              f"{results[-1]['gflop_per_step']:6.2f} GFLOP/step  {results[-1]['gflop_per_step'] / ms * 1000:5.1f} GFLOP/s",
              flush=True)
    report = {"benchmark": "dea_step_breakdown", "rows_per_field": args.rows, "batch_size": B,
              "threads": 1, "torch": torch.__version__, "loadavg_before": load_before,
              "loadavg_after": os.getloadavg(), "results": results}
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2))
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
