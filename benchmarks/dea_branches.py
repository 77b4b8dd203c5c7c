"""DEA's two attention branches, measured: are both alive after training?

For each dataset and DEA variant: train (``dea_model.train.train``, the quality benchmark's split and
loop), then read the instruments of ``dea_model.diagnostics`` at initialisation and after training —
per layer the spread of Q·Kᵀ and of the Combo-ID logits, the share of the fused logits the
collapse-avoiding branch moves, the attention entropy, the mask rate — the gradient norm reaching
each branch on one training batch, and the test AUC / logloss of the trained model with the τ
multiplier changed at evaluation time only (0.5, 1, 2: does the mask matter to the trained model?).

    .venv/bin/python benchmarks/dea_branches.py --datasets frappe,synthetic_small \\
        --variants "dea,dea:init=legacy" --epochs 3 --out benchmarks/results/dea_branches.json
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

import common  # noqa: F401  (first: the set-up every benchmark shares)
from dea_model import metrics as M
from dea_model.config import TrainConfig
from dea_model.data import load_days, split_days
from dea_model.diagnostics import branch_gradients, branch_instruments
from dea_model.layers import CollapseAvoiding, ScoreFusion
from dea_model.models import build_model
from dea_model.scoring import predict_batches
from dea_model.train import train
from features.lake import Lake
from quality import SYNTHETIC_WORLDS, model_variant, prepare, synthetic_spec

SAMPLE = 4096


def instruments(model, sample, batch) -> dict:
    both = any(isinstance(m, ScoreFusion) for m in model.modules())     # the ablations have one branch
    return {"layers": branch_instruments(model, sample) if both else [], "gradients": branch_gradients(model, *batch)}


def tau_sensitivity(model, test, multipliers=(0.5, 1.0, 2.0)) -> dict:
    """Test AUC / logloss of the trained model with every layer's τ multiplier set to each value."""
    out = {}
    for c in multipliers:
        m = copy.deepcopy(model)
        for layer in m.modules():
            if isinstance(layer, CollapseAvoiding):
                layer.multiplier = c
        p = predict_batches(m, test, torch.device("cpu"), 8192, False)[0]
        out[str(c)] = {"auc": M.auc(test.label.numpy(), p), "logloss": M.logloss(test.label.numpy(), p)}
    return out


def run(lake: Lake, dataset: str, variant: str, cfg: TrainConfig, out: Path) -> dict:
    train_dates, valid_date, test_date = split_days(lake.dates("features", dataset))
    name, overrides = model_variant(variant)
    cfg = cfg.model_copy(update={"model": name}).with_overrides(overrides)
    data, test = load_days(lake, dataset, train_dates), load_days(lake, dataset, [test_date])
    g = torch.Generator().manual_seed(0)
    rows = torch.randperm(len(data), generator=g)[:SAMPLE]
    batch = (data.ids[rows[:cfg.batch_size]], data.label[rows[:cfg.batch_size]])
    sample = test.ids[:SAMPLE]
    torch.manual_seed(cfg.seed)
    before = instruments(build_model(name, data.ids.shape[1], **cfg.hparams), sample, batch)
    r = train(cfg, lake, dataset, train_dates, valid_date, out, test_date=test_date)
    after = instruments(r.model, sample, batch)
    test_metrics = r.metrics["test"]
    return {"dataset": dataset, "variant": variant, "epochs_run": r.metrics["epochs_run"],
            "best_epoch": r.metrics["best_epoch"], "test_auc": test_metrics["auc"],
            "test_logloss": test_metrics["logloss"], "before": before, "after": after,
            "tau_at_eval": tau_sensitivity(r.model, test)}


def markdown(rows: list[dict]) -> str:
    lines = ["| dataset | variant | test AUC | when | layer | std S | std A_m | collapse share | entropy | mask rate "
             "| ‖∇‖ attention | ‖∇‖ fusion | ‖∇‖ combo | AUC τ×0.5 / ×2 (eval only) |", "|" + "---|" * 14]
    for r in rows:
        if not r["after"]["layers"]:
            lines.append(f"| {r['dataset']} | {r['variant']} | {r['test_auc']:.4f} | one branch |" + " |" * 10)
        for when in ("before", "after"):
            g = r[when]["gradients"]
            for i, layer in enumerate(r[when]["layers"]):
                tau = r["tau_at_eval"]
                lines.append(f"| {r['dataset']} | {r['variant']} | {r['test_auc']:.4f} | {when} | {i} | "
                             f"{layer['s_std']:.2e} | {layer['a_m_std']:.2e} | {layer['collapse_share']:.3f} | "
                             f"{layer['entropy']:.3f} | {layer['mask_rate']:.2f} | {g['attention_proj']:.1e} | "
                             f"{g['fusion']:.1e} | {g['combo_mlp'] + g['combo_codebooks']:.1e} | "
                             f"{tau['0.5']['auc']:.4f} / {tau['2.0']['auc']:.4f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", default="frappe,synthetic_small")
    ap.add_argument("--variants", default="dea,dea:init=legacy")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--home", help="lake with (or to keep) the datasets' feature days (default: a temporary one)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    common.log_progress()
    cfg = TrainConfig(epochs=args.epochs, progress=False, plot=False)
    rows = []
    with tempfile.TemporaryDirectory(prefix="dea-branches-") as tmp:
        lake = Lake(Path(args.home).resolve()) if args.home else Lake(Path(tmp) / "lake")
        for ds in args.datasets.split(","):
            prepare(lake, ds, workers=2, spec=synthetic_spec(ds) if ds in SYNTHETIC_WORLDS else None)
            for variant in args.variants.split(","):
                rows.append(run(lake, ds, variant, cfg, Path(tmp) / "runs" / f"{ds}-{variant}"))
                print(json.dumps({k: rows[-1][k] for k in ("dataset", "variant", "test_auc", "tau_at_eval")}),
                      flush=True)
    out = Path(args.out)
    out.write_text(json.dumps(rows, indent=2, default=float))
    out.with_suffix(".md").write_text(markdown(rows) + "\n")
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
