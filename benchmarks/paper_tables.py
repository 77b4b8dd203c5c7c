"""The DEA paper's tables on our data (arXiv 2503.11233, Tables 1-4) and the checks the paper leaves open.

Every run is the same training loop (``dea_model.train.train``: Adam, early stopping on the
validation day's AUC, test-day metrics) on identical splits and features; each row is mean ± std
(sample std) over seeds of the test AUC / GAUC::

    Table 1   FM, AFM, AutoInt+, FiBiNET, MemoNet, HSTU, Transformer, Transformer w/o diag, SECN, MGDIN, DEA
    Table 2   ablations on the DEA skeleton: Transformer, w/o diag, Combo-ID only, collapse-avoiding only, DEA
    Table 3   Combo-ID attention with / without the gated siamese codebook (k = 2 / k = 0)
    Table 4   fusions: weighted sum (Eq. 15), gated balance (Eq. 16), multiply (Eq. 17, = DEA)
    Check τ   collapse-avoiding threshold multiplier 0.5 / 1 / 2, with the fraction of scores masked per layer
    Check k   k ∈ {1, 2, 4} siamese codebooks: collision rates of the test day's pair keys, and GAUC
    Check IA  information abundance (IA/min(D, d)) of the embedding rows per field-frequency decile,
              with and without collapse-avoiding attention (DEA vs Combo-ID only; collapse-only vs w/o diag)
    Claims    the paper's comparisons as paired (same seed) differences, with a verdict

Datasets: ``synthetic_small`` — the planted generator (features/synthetic.py) in a world scaled to
the row counts here (``quality.SMALL_WORLD``: 20 k users, 6 k items, CTR 9-10 %, 12 k rows a day), so heads,
tails and the planted pairs all repeat within the training days; the oracle AUC/GAUC of the
planted p_true is printed beside. The real datasets of ../shared/data through their configs
(criteo 100 k pre-encoded, frappe, movielens, avazu), featurised by ``benchmarks/quality.prepare``.
``--home`` keeps the feature days and reuses them (a synthetic_small of another ``--synthetic-rows``
is an error).

All models share the embedding size, the hashed table size (``embedding_rows``, from the largest
field's vocabulary on the training days) and the codebook size; each keeps its own defaults
otherwise. CPU budget (2 cores shared by several jobs): pair models cost O(n²) per sample
(criteo: n = 39, 1482 ordered pairs), so the default
plan runs every table and check on synthetic_small, Tables 1-4 on frappe, Table 1 on movielens
and criteo, on the last 2 training days (20-24 k rows). Early stopping (patience 1) ends the
neural models after 2-4 epochs (CTR models overfit from the second epoch on small data); FM and
AFM run longer. The default run (186 trainings, 2 runs at a time on a 2-core machine) took 30-49 min
depending on the other jobs there; results in benchmarks/results/paper_tables.{json,md} (trained with
the row-sparse tables), every figure in the markdown.

    .venv/bin/python benchmarks/paper_tables.py --out benchmarks/results/paper_tables.json
    .venv/bin/python benchmarks/paper_tables.py --quick --out /tmp/pt.json       # smoke test, ~3 min
    .venv/bin/python benchmarks/paper_tables.py --plan "frappe=table1,table4" --seeds 5 --out /tmp/f.json
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import common  # first: the set-up every benchmark shares (benchmarks/common.py)
from dea_model.config import TrainConfig
from dea_model.data import load_days, split_days
from dea_model.diagnostics import codebook_collision_rate, collapse_mask_rate, information_abundance
from dea_model.layers import CollapseAvoiding, ComboIDScores, FieldAttention, ScoreFusion, collision_rate
from dea_model.models import REGISTRY
from dea_model.models.base import config_hparams
from dea_model.scoring import oracle_metrics
from dea_model.train import train
from features.lake import Lake
from quality import _ms, prepare, synthetic_spec

log = logging.getLogger("paper_tables")

SYNTHETIC = "synthetic_small"

# name -> (registered model, hparams over its defaults)
CONFIGS: dict[str, tuple[str, dict]] = {
    "fm": ("fm", {}), "afm": ("afm", {}), "autoint": ("autoint", {}), "fibinet": ("fibinet", {}),
    "memonet": ("memonet", {}), "hstu": ("hstu", {}), "transformer": ("transformer", {}),
    "transformer_wo_diag": ("transformer", {"diag": "zero"}), "secn": ("secn", {}), "mgdin": ("mgdin", {}),
    "dea": ("dea", {}), "dea_old_scores": ("dea", {"qk_norm": False}), "dea_layer_norm": ("dea", {"layer_norm": True}),
    # the DEA skeleton (AutoInt-style layers, same DNN) with its parts switched off
    "skeleton": ("dea", {"combo": False, "collapse": False, "diag": "keep"}),
    "skeleton_wo_diag": ("dea", {"combo": False, "collapse": False, "diag": "zero"}),
    "combo_only": ("dea", {"collapse": False}),
    "collapse_only": ("dea", {"combo": False}),           # −∞-filled A_c on the w/o-diag skeleton
    "combo_only_wo_gsc": ("dea", {"collapse": False, "siamese": 0}),
    "fusion_sum": ("dea", {"fusion": "sum"}), "fusion_gate": ("dea", {"fusion": "gate"}),
    "tau_0.5": ("dea", {"tau_multiplier": 0.5}), "tau_2": ("dea", {"tau_multiplier": 2.0}),
    "k_1": ("dea", {"siamese": 1}), "k_4": ("dea", {"siamese": 4}),
}

# table -> (title, [(row label, config)])
TABLES: dict[str, tuple[str, list[tuple[str, str]]]] = {
    "table1": ("Table 1: every system", [
        ("FM", "fm"), ("AFM", "afm"), ("AutoInt+", "autoint"), ("FiBiNET", "fibinet"), ("MemoNet", "memonet"),
        ("HSTU", "hstu"), ("Transformer", "transformer"), ("Transformer w/o diag", "transformer_wo_diag"),
        ("SECN", "secn"), ("MGDIN", "mgdin"), ("DEA", "dea")]),
    "order": ("The ordering: DEA against each branch alone, Transformer w/o diag and AutoInt+", [
        ("DEA", "dea"), ("Combo-ID attention only", "combo_only"), ("Collapse-avoiding attention only", "collapse_only"),
        ("Transformer w/o diag", "skeleton_wo_diag"), ("AutoInt+", "autoint"),
        ("DEA, Q·Kᵀ not normalised (before issue 21)", "dea_old_scores"), ("DEA + LayerNorm per layer", "dea_layer_norm")]),
    "table2": ("Table 2: ablations on the DEA skeleton", [
        ("Transformer", "skeleton"), ("Transformer w/o diag", "skeleton_wo_diag"),
        ("Combo-ID attention", "combo_only"), ("Collapse-avoiding attention", "collapse_only"), ("DEA", "dea")]),
    "table3": ("Table 3: Combo-ID attention and the gated siamese codebook", [
        ("Combo-ID attention w/o gsc (k = 0)", "combo_only_wo_gsc"), ("Combo-ID attention (k = 2)", "combo_only")]),
    "table4": ("Table 4: fusion of A_m and A_c", [
        ("weighted sum (Eq. 15)", "fusion_sum"), ("gated balance (Eq. 16)", "fusion_gate"),
        ("multiply (Eq. 17) = DEA", "dea")]),
    "tau": ("Check: collapse-avoiding threshold τ multiplier", [
        ("τ × 0.5", "tau_0.5"), ("τ × 1 (DEA)", "dea"), ("τ × 2", "tau_2")]),
    "k": ("Check: number of siamese codebooks k", [("k = 1", "k_1"), ("k = 2 (DEA)", "dea"), ("k = 4", "k_4")]),
    "ia": ("Check: information abundance by field-frequency decile", [
        ("DEA", "dea"), ("Combo-ID only (no A_c)", "combo_only"),
        ("Collapse-avoiding only", "collapse_only"), ("Transformer w/o diag (no A_c)", "skeleton_wo_diag")]),
}
IA_CONFIGS = {cfg for _, cfg in TABLES["ia"][1]}

# (claim, better config, worse config): the paper's comparisons
CLAIMS = [
    ("Tab. 1: DEA beats FM", "dea", "fm"), ("Tab. 1: DEA beats AFM", "dea", "afm"),
    ("Tab. 1: DEA beats AutoInt+", "dea", "autoint"), ("Tab. 1: DEA beats FiBiNET", "dea", "fibinet"),
    ("Tab. 1: DEA beats MemoNet", "dea", "memonet"), ("Tab. 1: DEA beats HSTU", "dea", "hstu"),
    ("Tab. 1: DEA beats Transformer", "dea", "transformer"),
    ("Tab. 1: DEA beats Transformer w/o diag", "dea", "transformer_wo_diag"),
    ("(ours) DEA beats SECN", "dea", "secn"), ("(ours) DEA beats MGDIN", "dea", "mgdin"),
    ("Tab. 2: removing the diagonal helps", "skeleton_wo_diag", "skeleton"),
    ("Tab. 2: Combo-ID attention beats w/o diag", "combo_only", "skeleton_wo_diag"),
    ("Tab. 2: collapse-avoiding beats w/o diag", "collapse_only", "skeleton_wo_diag"),
    ("Tab. 2: DEA beats Combo-ID only", "dea", "combo_only"),
    ("Tab. 2: DEA beats collapse-avoiding only", "dea", "collapse_only"),
    ("Tab. 2: DEA beats Transformer w/o diag (skeleton)", "dea", "skeleton_wo_diag"),
    ("(ours) normalised Q·Kᵀ helps DEA", "dea", "dea_old_scores"),
    ("(ours) a LayerNorm per layer helps DEA", "dea_layer_norm", "dea"),
    ("Tab. 3: the gated siamese codebook helps", "combo_only", "combo_only_wo_gsc"),
    ("Tab. 4: multiply beats weighted sum", "dea", "fusion_sum"),
    ("Tab. 4: multiply beats gated balance", "dea", "fusion_gate"),
]

DEFAULT_PLAN = f"{SYNTHETIC}=all;frappe=table1,table2,table3,table4;movielens=table1;criteo=table1"
QUICK_PLAN = f"{SYNTHETIC}=all"


# --- data ------------------------------------------------------------------------------------------

def prepare_dataset(lake: Lake, dataset: str, *, synthetic_rows: int, workers: int) -> list[str]:
    spec = synthetic_spec(SYNTHETIC, rows_per_day=synthetic_rows) if dataset == SYNTHETIC else None
    return prepare(lake, dataset, workers=workers, spec=spec)


def table_rows(ids: torch.Tensor, cap: int = 2**16) -> int:
    """Hashed rows per field: the power of two ≥ 2·(largest field's distinct values), in [2¹⁰, cap]."""
    largest = max(int(torch.unique(ids[:, f]).numel()) for f in range(ids.shape[1]))
    return int(min(max(2 ** math.ceil(math.log2(2 * largest)), 2**10), cap))


# --- diagnostics -----------------------------------------------------------------------------------

@torch.no_grad()
def ia_by_frequency_decile(model, ids: torch.Tensor, deciles: int = 10) -> dict:
    """Normalised information abundance of the embedding rows, per field-frequency decile.

    For every field with at least ``deciles``·d distinct values in ``ids`` (N, n): its values are
    ranked by their count in ``ids`` (decile 1 = the most frequent tenth of the values, decile 10
    the rarest), and each decile's table rows E_q give IA(E_q)/min(|E_q|, d) ∈ (0, 1]. Returns
    {"fields": [...], "deciles": [mean over fields per decile], "random": the same statistic for
    a Gaussian matrix of the head decile's shape}.
    """
    table = model.embedding
    d = table.dim
    per_field, fields = [], []
    for f in range(ids.shape[1]):
        values, counts = torch.unique(ids[:, f], return_counts=True)
        if values.numel() < deciles * d:
            continue
        order = torch.argsort(counts, descending=True, stable=True)
        row = []
        for chunk in order.tensor_split(deciles):
            rows = torch.unique(values[chunk].remainder(table.rows) + f * table.rows)
            row.append(information_abundance(table.weight[rows]) / min(rows.numel(), d))
        per_field.append(row)
        fields.append(f)
    if not per_field:
        return {"fields": [], "deciles": [], "random": None}
    size = max(int(ids[:, fields[0]].unique().numel()) // deciles, d)
    gauss = torch.randn(size, d, generator=torch.Generator().manual_seed(0))
    return {"fields": fields, "deciles": np.mean(per_field, 0).tolist(),
            "random": information_abundance(gauss) / d}


@torch.no_grad()
def logit_spread(model, ids: torch.Tensor) -> dict[str, list[float]]:
    """How far from uniform the attention can be: per layer, the std over keys of the pre-softmax
    logits, averaged over rows, heads and ``ids`` (N, n).

    "qk": Q Kᵀ·scale of every ``FieldAttention`` (before masks and the diagonal), "combo": the
    Combo-ID logits A_m, "fused": the output of DEA's fusion. A softmax over a row whose logits
    spread by σ ≪ 1 is nearly uniform (weights within about ±σ of 1/n relative).
    """
    spread: dict[str, list[float]] = {"qk": [], "combo": [], "fused": []}

    def record(key, logits):
        spread[key].append(float(logits.float().std(-1).mean()))

    def on_attention(module, inputs, outputs):
        q, k = outputs[0], outputs[1]
        if q is not None:
            record("qk", module.scores(q, k))

    def on_combo(module, inputs, a_m):                       # (L·H, B, n, n) → one entry per layer
        layers = len(getattr(model, "blocks", [None]))
        for part in a_m.chunk(layers, 0):
            record("combo", part)

    hooks = [m.register_forward_hook(on_attention) for m in model.modules() if isinstance(m, FieldAttention)]
    hooks += [m.register_forward_hook(on_combo) for m in model.modules() if isinstance(m, ComboIDScores)]
    hooks += [m.register_forward_hook(lambda m_, i, o: record("fused", o))
              for m in model.modules() if isinstance(m, ScoreFusion)]
    try:
        model.eval()
        model(ids)
    finally:
        for h in hooks:
            h.remove()
    return {k: v for k, v in spread.items() if v}


def diagnostics(model, name: str, test_ids: torch.Tensor, train_ids: torch.Tensor) -> dict:
    out: dict = {"logit_spread": logit_spread(model, test_ids)}
    if any(isinstance(m, ComboIDScores) for m in model.modules()):
        out["collisions"] = codebook_collision_rate(model, test_ids)
    if any(isinstance(m, CollapseAvoiding) for m in model.modules()):
        out["mask_rate"] = collapse_mask_rate(model, test_ids)
    if name in IA_CONFIGS:
        out["ia"] = ia_by_frequency_decile(model, train_ids)
    return out


# --- runs ------------------------------------------------------------------------------------------

def resolved_hparams(model: str, hparams: dict) -> dict:
    """Every hyperparameter of ``model``: ``hparams`` over today's defaults, as a row keeps them."""
    return config_hparams(REGISTRY[model].Config(**hparams))


def run_one(task: dict) -> dict:
    """Train one (dataset, config, seed) and return its row: test metrics, speed, diagnostics.

    ``task``: home (lake root), dataset, config, seed, split, train (TrainConfig dump), hparams (shared),
    out (run folder), diag_rows, threads. Top-level and plain-data so a process pool can run it.
    """
    common.torch_threads(task["threads"])
    lake = Lake(Path(task["home"]))
    ds, name, seed = task["dataset"], task["config"], task["seed"]
    model, hparams = CONFIGS[name]
    train_dates, valid_date, test_date = task["split"]
    cfg = TrainConfig.model_validate({**task["train"], "model": model, "seed": seed,
                                      "hparams": {**task["hparams"], **hparams}})
    t = time.perf_counter()
    r = train(cfg, lake, ds, train_dates, valid_date, task["out"], test_date=test_date)
    m, test = r.metrics, r.metrics["test"]
    row = {"dataset": ds, "config": name, "model": model, "hparams": r.model.hparams, "seed": seed,
           "auc": test["auc"], "gauc": test["gauc"], "logloss": test["logloss"], "valid_auc": m["valid"]["auc"],
           "best_epoch": m["best_epoch"], "epochs_run": m["epochs_run"], "train_rows": m["train_rows"],
           "train_seconds": m["train_seconds"], "samples_per_second": m["samples_per_second"],
           "params": sum(p.numel() for p in r.model.parameters())}
    test_ids = load_days(lake, ds, [test_date]).ids[: task["diag_rows"]]
    train_ids = load_days(lake, ds, train_dates).ids if name in IA_CONFIGS else None
    row.update(diagnostics(r.model, name, test_ids, train_ids))
    row["seconds"] = time.perf_counter() - t
    return row


def run_all(tasks: list[dict], jobs: int, on_row) -> None:
    """Run the tasks, ``jobs`` at a time in spawned processes (in this process when jobs = 1)."""
    if jobs <= 1:
        for task in tasks:
            on_row(run_one(task))
        return
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    with ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn")) as pool:
        for future in as_completed([pool.submit(run_one, task) for task in tasks]):
            on_row(future.result())


def parse_plan(text: str) -> dict[str, list[str]]:
    """"ds=all;ds2=table1,k" → {dataset: [tables]}."""
    plan = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        ds, sep, tables = part.partition("=")
        names = list(TABLES) if tables.strip() in ("", "all") else [t.strip() for t in tables.split(",")]
        unknown = [t for t in names if t not in TABLES]
        if not sep or unknown:
            raise ValueError(f"--plan {part!r}: expected dataset=all or dataset=table,...; tables: {', '.join(TABLES)}")
        plan[ds.strip()] = names
    return plan


def configs_for(tables: list[str]) -> list[str]:
    return list(dict.fromkeys(cfg for t in tables for _, cfg in TABLES[t][1]))


# --- reporting -------------------------------------------------------------------------------------

def _select(rows, ds, cfg):
    return sorted((r for r in rows if r["dataset"] == ds and r["config"] == cfg), key=lambda r: r["seed"])


def _has_gauc(rows, ds) -> bool:
    return any(r["dataset"] == ds and not math.isnan(r["gauc"]) for r in rows)


def metric_table(title: str, entries, rows, plan, oracles) -> list[str]:
    datasets = [ds for ds, tables in plan.items() if any(_select(rows, ds, c) for _, c in entries)]
    if not datasets:
        return []
    head = ["system"] + [f"{ds} {m}" for ds in datasets for m in ("AUC", "GAUC") if m == "AUC" or _has_gauc(rows, ds)]
    lines = [f"### {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, cfg in entries:
        cells = [label]
        for ds in datasets:
            rs = _select(rows, ds, cfg)
            cells.append(_ms([r["auc"] for r in rs]))
            if _has_gauc(rows, ds):
                cells.append(_ms([r["gauc"] for r in rs]))
        lines.append("| " + " | ".join(cells) + " |")
    if any(oracles.get(ds) for ds in datasets):
        cells = ["oracle (planted p_true)"]
        for ds in datasets:
            o = oracles.get(ds)
            cells.append(f"{o['auc']:.4f}" if o else "–")
            if _has_gauc(rows, ds):
                cells.append(f"{o['gauc']:.4f}" if o else "–")
        lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]


def check_tables(rows, plan) -> list[str]:
    lines = []
    for ds in plan:
        k_rows = [(label, _select(rows, ds, cfg)) for label, cfg in TABLES["k"][1]]
        if "k" in plan[ds] and any(rs and "collisions" in rs[0] for _, rs in k_rows):
            lines += [f"### Check k on {ds}: pair-key collisions on the test day's diagnostic sample", "",
                      "| k | distinct pair keys | main address shared | all k+1 addresses shared | expected (main / all) | GAUC | AUC |",
                      "|---|---|---|---|---|---|---|"]
            for label, rs in k_rows:
                if rs and "collisions" in rs[0]:
                    c = rs[0]["collisions"]
                    lines.append(f"| {label} | {c['pair_keys']:,} | {c['main_shared']:.4f} | {c['all_shared']:.6f} | "
                                 f"{c['expected_main']:.4f} / {c['expected_all']:.6f} | {_ms([r['gauc'] for r in rs])} | "
                                 f"{_ms([r['auc'] for r in rs])} |")
            lines.append("")
        tau_rows = [(label, _select(rows, ds, cfg)) for label, cfg in TABLES["tau"][1]]
        if "tau" in plan[ds] and any(rs and "mask_rate" in rs[0] for _, rs in tau_rows):
            lines += [f"### Check τ on {ds}: share of off-diagonal scores masked per layer (eval, running τ̄)", "",
                      "| τ | masked per layer (mean over seeds) | AUC | GAUC |", "|---|---|---|---|"]
            for label, rs in tau_rows:
                if rs and "mask_rate" in rs[0]:
                    rate = np.mean([r["mask_rate"] for r in rs], 0)
                    lines.append(f"| {label} | {', '.join(f'{x:.3f}' for x in rate)} | {_ms([r['auc'] for r in rs])} | "
                                 f"{_ms([r['gauc'] for r in rs])} |")
            lines.append("")
        spread = [(cfg, _select(rows, ds, cfg)) for cfg in CONFIGS]
        spread = [(cfg, rs) for cfg, rs in spread if rs and rs[0].get("logit_spread")]
        if spread and "table2" in plan[ds]:
            lines += [f"### Attention logits on {ds}: std over keys of the pre-softmax logits per layer "
                      f"(test sample, mean over rows and seeds; uniform attention ⇔ 0)", "",
                      "| config | Q Kᵀ | Combo-ID A_m | fused (DEA) |", "|---|---|---|---|"]
            for cfg, rs in spread:
                cells = []
                for key in ("qk", "combo", "fused"):
                    vals = [r["logit_spread"].get(key) for r in rs if r["logit_spread"].get(key)]
                    cells.append(", ".join(f"{x:.3g}" for x in np.mean(vals, 0)) if vals else "–")
                lines.append(f"| {cfg} | " + " | ".join(cells) + " |")
            lines.append("")
        ia_rows = [(label, _select(rows, ds, cfg)) for label, cfg in TABLES["ia"][1]]
        ia_rows = [(label, rs) for label, rs in ia_rows if rs and rs[0].get("ia", {}).get("deciles")]
        if "ia" in plan[ds] and ia_rows:
            n_dec = len(ia_rows[0][1][0]["ia"]["deciles"])
            lines += [f"### Check IA on {ds}: IA/min(D, d) of embedding rows by frequency decile "
                      f"(1 = head, {n_dec} = tail; fields {ia_rows[0][1][0]['ia']['fields']}; mean over seeds)", "",
                      "| model | " + " | ".join(str(q + 1) for q in range(n_dec)) + " | mean |",
                      "|---|" + "---|" * (n_dec + 1)]
            for label, rs in ia_rows:
                dec = np.mean([r["ia"]["deciles"] for r in rs], 0)
                lines.append(f"| {label} | " + " | ".join(f"{x:.3f}" for x in dec) + f" | {dec.mean():.3f} |")
            lines += ["", f"A random N(0, 1) matrix of a head decile's shape scores "
                          f"{ia_rows[0][1][0]['ia']['random']:.3f}.", ""]
    return lines


def claim_rows(rows, plan) -> list[dict]:
    """Paired (same dataset and seed) differences better − worse in AUC, GAUC and IA, each with
    ``common.paired_difference``'s verdict (a few seeds: a coarse screen, not a test)."""
    out = []
    for ds in plan:
        for claim, better, worse in CLAIMS:
            a, b = {r["seed"]: r for r in _select(rows, ds, better)}, {r["seed"]: r for r in _select(rows, ds, worse)}
            seeds = sorted(set(a) & set(b))
            if not seeds:
                continue
            item = {"dataset": ds, "claim": claim, "better": better, "worse": worse, "seeds": len(seeds)}
            for metric in ("auc", "gauc", "ia"):
                if metric == "ia" and not all("ia" in a[s] and "ia" in b[s] for s in seeds):
                    continue
                value = (lambda r: float(np.mean(r["ia"]["deciles"]))) if metric == "ia" else (lambda r: r[metric])
                diff = np.array([value(a[s]) - value(b[s]) for s in seeds])
                if np.isnan(diff).any():
                    continue
                item[metric] = common.paired_difference(diff)
            out.append(item)
    return out


def claims_table(claims) -> list[str]:
    if not claims:
        return []
    lines = ["### Claims: paired differences (better − worse, same seed); verdict at |t| > 2", "",
             "Δ IA: mean over the frequency deciles of IA/min(D, d) (where both runs have the IA check).", "",
             "| dataset | claim | Δ AUC (mean ± sd) | verdict | Δ GAUC (mean ± sd) | verdict | Δ IA (mean ± sd) | verdict |",
             "|---|---|---|---|---|---|---|---|"]
    for c in claims:
        cells = [c["dataset"], c["claim"]]
        for metric in ("auc", "gauc", "ia"):
            v = c.get(metric)
            cells += [f"{v['mean']:+.4f} ± {v['sd']:.4f}", v["verdict"]] if v else ["–", "–"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]


def markdown(results: dict) -> str:
    rows, plan, oracles, meta = results["runs"], results["plan"], results["oracles"], results["meta"]
    lines = ["# DEA paper tables on our data", "",
             f"Test-day metrics, mean ± sample std over {meta['seeds']} seed(s). Command: `{meta['command']}`; "
             f"{meta['seconds'] / 60:.1f} min, {meta['args']['jobs']} run(s) at a time on {meta['threads']} torch "
             f"thread(s) each, load average {meta['load'][0]:.1f} at the start and {meta['load'][1]:.1f} at the end. "
             f"Embedding d = {meta['args']['embedding_dim']}, codebook rows s = {meta['args']['codebook_size']:,} "
             f"(DEA, MemoNet); Adam lr {meta['train']['lr']}, batch {meta['train']['batch_size']}, at most "
             f"{meta['train']['epochs']} epochs, early stop after {meta['train']['patience']} without a better "
             f"valid AUC.", "",
             "| dataset | fields | train rows | valid / test day | embedding rows per field | largest-field collision rate | tables |",
             "|---|---|---|---|---|---|---|"]
    for ds, d in meta["datasets"].items():
        lines.append(f"| {ds} | {d['fields']} | {d['train_rows']:,} | {d['valid_date']} / {d['test_date']} | "
                     f"{d['embedding_rows']:,} | {d['largest_field_collision']:.3f} | {', '.join(plan[ds])} |")
    lines.append("")
    for key in ("order", "table1", "table2", "table3", "table4", "tau", "k"):
        title, entries = TABLES[key]
        lines += metric_table(title, entries, rows, {ds: t for ds, t in plan.items() if key in t}, oracles)
    lines += check_tables(rows, plan)
    lines += claims_table(results["claims"])
    datasets = [ds for ds in plan if any(r["dataset"] == ds for r in rows)]
    speed = ["### Training speed: samples/s (best epoch), mean over seeds", "",
             "| config | params (" + datasets[0] + ") | " + " | ".join(datasets) + " |",
             "|---|---|" + "---|" * len(datasets)] if datasets else []
    for cfg in dict.fromkeys(r["config"] for r in rows):
        cells = []
        for ds in datasets:
            rs = _select(rows, ds, cfg)
            cells.append(f"{np.mean([r['samples_per_second'] for r in rs]):,.0f} "
                         f"({np.mean([r['best_epoch'] for r in rs]):.1f})" if rs else "–")
        first = _select(rows, datasets[0], cfg)
        speed.append(f"| {cfg} | {first[0]['params']:,} | " if first else f"| {cfg} | – | ")
        speed[-1] += " | ".join(cells) + " |"
    return "\n".join(lines + speed) + "\n"


# --- main ------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="JSON results; the markdown report goes next to it (.md)")
    ap.add_argument("--plan", help=f"dataset=tables;... (default {DEFAULT_PLAN!r}; tables: {', '.join(TABLES)})")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="smoke test: synthetic only, small days and tables, 1 seed, 1 epoch")
    ap.add_argument("--home", help="lake with (or to keep) the datasets' feature days (default: a temporary one)")
    ap.add_argument("--epochs", type=int, default=10, help="at most; early stopping ends most runs at 2")
    ap.add_argument("--patience", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=1024)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--train-days", type=int, default=2, help="train on the last N days before the valid day")
    ap.add_argument("--synthetic-rows", type=int, default=12_000, help="rows per synthetic_small day")
    ap.add_argument("--embedding-dim", type=int, default=16)
    ap.add_argument("--max-embedding-rows", type=int, default=2**15)
    ap.add_argument("--codebook-size", type=int, default=2**16, help="rows per codebook (DEA, MemoNet)")
    ap.add_argument("--diag-rows", type=int, default=4096, help="test-day rows for the collision / mask diagnostics")
    ap.add_argument("--jobs", type=int, default=2, help="runs in parallel (spawned processes, one per core)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per run (1 is fastest on a busy 2-core machine)")
    ap.add_argument("--workers", type=int, default=1, help="Dask workers for the feature stage")
    ap.add_argument("--resume", action="store_true", help="keep the runs already in --out and do the rest")
    args = ap.parse_args(argv)
    common.log_progress("dea_model.train")
    common.torch_threads(args.threads)
    if args.quick:
        args.seeds, args.epochs, args.synthetic_rows, args.diag_rows = 1, 1, 4000, 1024
        args.max_embedding_rows, args.codebook_size = 2**12, 2**12
    plan = parse_plan(args.plan or (QUICK_PLAN if args.quick else DEFAULT_PLAN))
    base = TrainConfig(epochs=args.epochs, patience=args.patience, batch_size=args.batch_size, lr=args.lr,
                       eval_batch_size=4096, device="cpu", progress=False, plot=False)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = json.loads(out.read_text()) if args.resume and out.exists() else {"runs": [], "plan": {}}
    for ds, tables in done["plan"].items():            # a resumed run reports the union of both plans
        plan[ds] = list(dict.fromkeys(tables + plan.get(ds, [])))
    results = {"meta": {"command": " ".join(["benchmarks/paper_tables.py", *(argv if argv is not None else sys.argv[1:])]),
                        "seeds": args.seeds, "threads": args.threads, "train": base.model_dump(),
                        "args": vars(args), "datasets": {}, "seconds": 0.0, "load": [os.getloadavg()[0], 0.0]},
               "plan": plan, "oracles": {}, "runs": done["runs"], "claims": []}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="dea-paper-") as tmp:
        lake = Lake(Path(args.home).resolve()) if args.home else Lake(Path(tmp) / "lake")
        tasks = []
        for ds, tables in plan.items():
            try:
                days = prepare_dataset(lake, ds, synthetic_rows=args.synthetic_rows, workers=args.workers)
            except FileNotFoundError as e:
                log.warning("skipping dataset %s: %s", ds, e)
                continue
            split = split_days(days, train_days=min(args.train_days, len(days) - 2))
            train_ids = load_days(lake, ds, split[0]).ids
            rows_per_field = table_rows(train_ids, args.max_embedding_rows)
            largest = max(int(torch.unique(train_ids[:, f]).numel()) for f in range(train_ids.shape[1]))
            oracle = oracle_metrics(lake, ds, split[2])
            results["oracles"][ds] = oracle and {k: oracle[k] for k in ("auc", "gauc", "logloss")}
            results["meta"]["datasets"][ds] = {
                "fields": train_ids.shape[1], "train_rows": len(train_ids), "train_dates": split[0],
                "valid_date": split[1], "test_date": split[2], "embedding_rows": rows_per_field,
                "largest_field_values": largest, "largest_field_collision": collision_rate(largest, rows_per_field)}
            log.info("%s: train %s..%s (%d rows), valid %s, test %s; %d rows per field table; configs %s",
                     ds, split[0][0], split[0][-1], len(train_ids), split[1], split[2], rows_per_field,
                     ", ".join(configs_for(tables)))
            for name in configs_for(tables):
                model, extra = CONFIGS[name]
                hp = {"embedding_dim": args.embedding_dim, "embedding_rows": rows_per_field}
                if model in ("dea", "memonet"):
                    hp["codebook_size"] = args.codebook_size
                resolved = resolved_hparams(model, {**hp, **extra})
                kept = [r for r in results["runs"]             # a changed default makes older rows stale
                        if not (r["dataset"] == ds and r["config"] == name and r["hparams"] != resolved)]
                if len(kept) < len(results["runs"]):
                    log.info("%s %s: %d resumed runs had other hyperparameters; redoing them", ds, name,
                             len(results["runs"]) - len(kept))
                results["runs"] = kept
                for seed in range(args.seeds):
                    if not any(r["dataset"] == ds and r["config"] == name and r["seed"] == seed for r in results["runs"]):
                        tasks.append({"home": str(lake.root), "dataset": ds, "config": name, "seed": seed,
                                      "split": split, "train": base.model_dump(), "hparams": hp,
                                      "out": str(Path(tmp) / "runs" / f"{ds}-{name}-{seed}"),
                                      "diag_rows": args.diag_rows, "threads": args.threads})
        log.info("%d runs to do, %d at a time", len(tasks), args.jobs)

        def on_row(row: dict) -> None:
            results["runs"].append(row)
            log.info("%s %s seed %d: AUC %.4f GAUC %.4f (%d epochs, %.0f samples/s, %.0f s)", row["dataset"],
                     row["config"], row["seed"], row["auc"], row["gauc"], row["epochs_run"],
                     row["samples_per_second"], row["seconds"])
            out.write_text(json.dumps(results, indent=1, default=float))   # partial results survive a crash

        run_all(tasks, args.jobs, on_row)
    results["meta"]["seconds"] = done.get("meta", {}).get("seconds", 0.0) + time.perf_counter() - t0
    results["meta"]["load"][1] = os.getloadavg()[0]
    order = {name: i for i, name in enumerate(CONFIGS)}
    results["runs"].sort(key=lambda r: (list(plan).index(r["dataset"]) if r["dataset"] in plan else len(plan),
                                        order[r["config"]], r["seed"]))
    results["claims"] = claim_rows(results["runs"], plan)
    out.write_text(json.dumps(results, indent=1, default=float))
    report = markdown(results)
    out.with_suffix(".md").write_text(report)
    print(report)
    print(f"-> {out} and {out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
