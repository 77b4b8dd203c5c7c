"""Quality benchmark: test AUC / GAUC / logloss of each model on each dataset, over seeds.

Every model sees the identical split and features (the features stage's int64 IDs), beside the
logistic-regression baseline on the same IDs (``dea_model.logistic``, one row per dataset), and is trained
by the same loop (``dea_model.train.train``: Adam, early stopping on the validation day's AUC);
metrics are on the test day, never used for any choice. Splits (the dataset configs'
pseudo-days): train d1..d(N-2), valid d(N-1), test dN; i.e. criteo folds 0-7 / 8 / 9, frappe's
validation file cut 4/1 + its test file, movielens by time, synthetic's 4 days 2/1/1 (its size, and
that of ``synthetic_small``, a smaller world where the planted pairs repeat, set by
``--synthetic-rows`` / ``--synthetic-days``).

The external peers are DeepCTR-Torch's AutoInt and FiBiNET (``deepctr_autoint``,
``deepctr_fibinet``): each field's hashed IDs are mapped to dense vocabulary indices fitted on the
training days (unseen -> index 0), and their networks run inside the same training loop — with
the same optimizer, so their ``nn.Embedding`` tables get the row-sparse lazy Adam too
(``--set sparse_embeddings=false`` gives every model dense Adam).

    .venv/bin/python benchmarks/quality.py --datasets synthetic,criteo,frappe,movielens \\
        --models dea,autoint,fm,transformer,deepctr_autoint,deepctr_fibinet --seeds 3 \\
        --out results/quality.json            # also writes results/quality.md
    .venv/bin/python benchmarks/quality.py --datasets frappe --models dea,dea:symmetric=true --out /tmp/q.json
    .venv/bin/python benchmarks/quality.py --quick --datasets synthetic --models fm --out /tmp/q.json
    .venv/bin/python benchmarks/quality.py --datasets synthetic_small --synthetic-rows 200000 \\
        --synthetic-days 5 --models dea,autoint --out /tmp/small.json
    .venv/bin/python benchmarks/quality.py --datasets criteo --models dea --seeds 1 --first-seed 4 --out /tmp/s4.json
    .venv/bin/python benchmarks/quality.py --report /tmp/s0-3.json /tmp/s4.json --paired-against dea --out /tmp/q.json

Datasets are ingested and featurised into a temporary lake unless ``--home`` names a lake that
already has (or should keep) them.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch
from torch import nn

import common  # first: the set-up every benchmark shares (benchmarks/common.py)
from dea_model import metrics as M
from dea_model.config import TrainConfig
from dea_model.data import load_days, split_days
from dea_model.device import resolve_device
from dea_model.scoring import baselines, oracle_metrics
from dea_model.train import train
from features.lake import Lake

log = logging.getLogger("quality")
PEERS = {"deepctr_autoint": "AutoInt", "deepctr_fibinet": "FiBiNET"}


# --- the external peers -------------------------------------------------------------------------

class DeepCTRPeer(nn.Module):
    """A DeepCTR-Torch model behind our interface: ids [B, n] int64 -> logits [B].

    Field j's vocabulary is the sorted distinct IDs of the training days; an ID maps to its
    position + 1 (``torch.searchsorted``), unseen IDs to 0. DeepCTR's output layer is built with
    ``task="regression"``, so it returns the logit (bias included, no sigmoid).
    """

    def __init__(self, kind: str, vocabs: list[np.ndarray], embedding_dim: int = 16, seed: int = 1024,
                 device: str = "cpu", **kwargs):
        super().__init__()
        import deepctr_torch.models as dm
        from deepctr_torch.inputs import SparseFeat

        self.hparams = {"kind": kind, "embedding_dim": embedding_dim, **kwargs}
        for j, v in enumerate(vocabs):
            self.register_buffer(f"vocab{j}", torch.as_tensor(np.sort(v), dtype=torch.int64))
        self.n = len(vocabs)
        columns = [SparseFeat(f"f{j}", vocabulary_size=len(v) + 1, embedding_dim=embedding_dim)
                   for j, v in enumerate(vocabs)]
        self.net = getattr(dm, PEERS[kind])(columns, columns, task="regression", seed=seed, device=device,
                                            **kwargs)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        cols = []
        for j in range(self.n):                    # a loop over fields, vectorised over the batch
            vocab = getattr(self, f"vocab{j}")
            pos = torch.searchsorted(vocab, ids[:, j].contiguous()).clamp_(max=vocab.numel() - 1)
            cols.append(torch.where(vocab[pos] == ids[:, j], pos + 1, 0))
        return self.net(torch.stack(cols, 1).float()).squeeze(-1)      # [B]


def peer_model(kind: str, lake: Lake, dataset: str, train_dates: list[str], cfg: TrainConfig,
               embedding_dim: int) -> DeepCTRPeer:
    table = load_days(lake, dataset, train_dates)
    vocabs = [np.unique(table.ids[:, j].numpy()) for j in range(table.ids.shape[1])]
    extra = {"dnn_hidden_units": (400, 400)} if kind == "deepctr_autoint" else {"dnn_hidden_units": (400, 400, 400)}
    torch.manual_seed(cfg.seed)
    return DeepCTRPeer(kind, vocabs, embedding_dim, seed=cfg.seed, device=str(resolve_device(cfg.device)), **extra)


# --- datasets -----------------------------------------------------------------------------------

# The synthetic worlds: ``synthetic`` is the spec's default world (deployments/configs/synthetic.yaml);
# ``synthetic_small`` scales the hard world (300 k users, 100 k items) down so that heads, tails and
# the planted pairs repeat within a few hundred thousand rows (CTR 9-10 %, oracle AUC about 0.81, 0.75
# without the planted pairs).
SMALL_WORLD = {"users": 20_000, "items": 6_000, "merchants": 600, "brands": 400, "categories": 100, "sites": 500,
               "cities": 200, "new_users_per_day": 200, "new_items_per_day": 60, "intercept": -2.6}
# name -> (the spec it starts from, generator overrides): ``synthetic`` is the platform's default world,
# ``synthetic_hard`` the scale test's, ``synthetic_small`` the hard world's generator in a world of 20 k users
SYNTHETIC_WORLDS: dict[str, tuple[str, dict]] = {"synthetic": ("synthetic", {}),
                                                  "synthetic_hard": ("synthetic_hard", {}),
                                                  "synthetic_small": ("synthetic_hard", SMALL_WORLD)}


def synthetic_spec(dataset: str, *, rows_per_day: int | None = None, days: int | None = None):
    """The spec of a synthetic world of ``SYNTHETIC_WORLDS``, named ``dataset``, optionally resized."""
    from features.spec import load_spec

    base, world = SYNTHETIC_WORLDS[dataset]
    source = load_spec(base).source.model_dump()
    options = dict(source["options"])
    if world:
        options["generator"] = {**options.get("generator", {}), **world}
    if rows_per_day:
        options["rows_per_day"] = rows_per_day
    source.update(options=options, days=days or source["days"])
    return load_spec(base, overrides={"name": dataset, "source": source})


def prepare(lake: Lake, dataset: str, *, workers: int, spec=None) -> list[str]:
    """Complete feature days of ``dataset`` in ``lake``: reused when present, else ingest + fit + transform.

    The manifest (bucket boundaries) is fitted on the training days only. ``spec`` (a
    ``DatasetSpec`` named ``dataset``, e.g. ``synthetic_spec("synthetic_small", rows_per_day=…)``)
    replaces ``load_spec(dataset)`` and is used as given. Feature days already in the lake are
    reused only when they were made from the same source (a lake kept by ``--home`` with another
    world, row count or day count is an error, not a silent mix).
    """
    from features.spec import load_spec

    if spec is None:
        spec = synthetic_spec(dataset) if dataset in SYNTHETIC_WORLDS else load_spec(dataset)
    if spec.name != dataset:
        raise ValueError(f"prepare({dataset!r}): the spec given is named {spec.name!r}")
    days = lake.dates("features", dataset)
    if len(days) >= 3:
        kept = json.loads(lake.manifest(dataset).read_text())["spec"]["source"]
        wanted = spec.source.model_dump(mode="json")
        if kept != wanted:
            raise ValueError(f"lake {lake.root}: dataset {dataset!r} was made from the source {kept}, "
                             f"not the one asked for {wanted}; use another --home")
        return days
    from features import pipeline
    from features.cluster import dask_client
    from features.sources import ingest

    t = time.perf_counter()
    ingest(spec, lake)
    raw = lake.dates("raw", dataset)
    fit_days, _, _ = split_days(raw)
    with dask_client(n_workers=workers):
        manifest = pipeline.fit(spec, lake, fit_days)
        for d in raw:
            pipeline.transform(spec, lake, d, manifest)
    log.info("%s: %d feature days ready in %.1f s", dataset, len(raw), time.perf_counter() - t)
    return lake.dates("features", dataset)


# --- the run ------------------------------------------------------------------------------------

def model_variant(model: str) -> tuple[str, list[str]]:
    """``"dea:symmetric=true:min_id_count=1"`` → ("dea", ["hparams.symmetric=true", "min_id_count=1"]):
    overrides for :meth:`TrainConfig.with_overrides` (which parses the values as YAML); a key that
    is a ``TrainConfig`` field sets it, any other key a model hyperparameter."""
    name, *options = model.split(":")
    for option in options:
        if option.partition("=")[0] in ("model", "seed", "hparams"):
            raise ValueError(f"model variant {model!r}: {option!r} is set by the benchmark itself")
    return name, [option if option.partition("=")[0] in TrainConfig.model_fields else f"hparams.{option}"
                  for option in options]


def run_one(lake: Lake, dataset: str, model: str, seed: int, split, cfg: TrainConfig, out: Path,
            embedding_dim: int) -> dict:
    train_dates, valid_date, test_date = split
    name, overrides = model_variant(model)
    cfg = cfg.model_copy(update={"model": name, "seed": seed}).with_overrides(overrides)
    peer = peer_model(name, lake, dataset, train_dates, cfg, embedding_dim) if name in PEERS else None
    r = train(cfg, lake, dataset, train_dates, valid_date, out, test_date=test_date, model=peer)
    m, test = r.metrics, r.metrics["test"]
    return {"dataset": dataset, "model": model, "seed": seed, "auc": test["auc"], "gauc": test["gauc"],
            "logloss": test["logloss"], "calibration": test["calibration"], "valid_auc": m["valid"]["auc"],
            "best_epoch": m["best_epoch"], "epochs_run": m["epochs_run"], "train_rows": m["train_rows"],
            "test_rows": test["rows"], "train_seconds": m["train_seconds"],
            "samples_per_second": m["samples_per_second"],
            "params": sum(p.numel() for p in r.model.parameters()),
            **seen_group_metrics(r.test_scores, lake, dataset, train_dates)}


def logistic_row(lake: Lake, dataset: str, split) -> dict:
    """The logistic-regression baseline (``dea_model.logistic``) as a result row: no seed (liblinear
    is deterministic), C picked on the validation day."""
    train_dates, valid_date, test_date = split
    m = baselines(lake, dataset, train_dates, valid_date, test_date)["logistic"]
    return {"dataset": dataset, "model": "logistic", "seed": 0, "auc": m["auc"], "gauc": m["gauc"],
            "logloss": m["logloss"], "calibration": m["calibration"], "valid_auc": m["valid_auc"], "C": m["C"],
            "best_epoch": 0, "epochs_run": 0, "test_rows": m["rows"], "train_seconds": m["fit_seconds"],
            "samples_per_second": 0.0}


def seen_group_metrics(scores: tuple[np.ndarray, np.ndarray, np.ndarray], lake: Lake, dataset: str,
                       train_dates: list[str]) -> dict:
    """Test metrics split by whether the row's group (user) appears on the training days.

    ``scores`` is the test day's (p, y, group), as ``train`` returns them. ``unseen_group_share``
    is the share of test rows whose group never occurs in training (cold start); ``auc_seen`` /
    ``gauc_seen`` and ``auc_unseen`` / ``gauc_unseen`` score each part alone.
    """
    p, y, g = scores
    trained = np.unique(np.concatenate([pq.read_table(f, columns=["group"]).column("group").to_numpy()
                                        for d in train_dates for f in lake.day_files("features", dataset, d)]))
    unseen = ~np.isin(g, trained)
    out = {"unseen_group_share": float(unseen.mean())}
    for part, rows in (("seen", ~unseen), ("unseen", unseen)):
        both = rows.any() and 0 < y[rows].mean() < 1
        out[f"auc_{part}"] = M.auc(y[rows], p[rows]) if both else None
        out[f"gauc_{part}"] = M.gauc(y[rows], p[rows], g[rows]) if both else None
    return out


def _ms(values: list[float], digits: int = 4) -> str:
    v = np.array([x for x in values if x is not None and not math.isnan(x)], dtype=float)
    if v.size == 0:
        return "–"
    return f"{v.mean():.{digits}f} ± {v.std(ddof=1):.{digits}f}" if v.size > 1 else f"{v.mean():.{digits}f}"


def markdown(rows: list[dict]) -> str:
    """One line per (dataset, model): mean ± std (sample std over seeds) of the test metrics, and of
    the validation AUC that chose the epoch (compare variants there, never on the test day)."""
    lines = ["| dataset | model | seeds | valid AUC | test AUC | test GAUC | test logloss | samples/s | best epoch "
             "| oracle AUC |", "|---|---|---|---|---|---|---|---|---|---|"]
    for ds in dict.fromkeys(r["dataset"] for r in rows):
        for model in dict.fromkeys(r["model"] for r in rows if r["dataset"] == ds):
            rs = [r for r in rows if r["dataset"] == ds and r["model"] == model]
            oracle = rs[0].get("oracle_auc")
            lines.append(f"| {ds} | {model} | {len(rs)} | {_ms([r['valid_auc'] for r in rs])} | "
                         f"{_ms([r['auc'] for r in rs])} | {_ms([r['gauc'] for r in rs])} | "
                         f"{_ms([r['logloss'] for r in rs])} | "
                         f"{np.mean([r['samples_per_second'] for r in rs]):,.0f} | "
                         f"{np.mean([r['best_epoch'] for r in rs]):.1f} | "
                         f"{'–' if oracle is None else f'{oracle:.4f}'} |")
    cold = [r for r in rows if r.get("unseen_group_share")]
    if cold:
        lines += ["", "Test rows whose group (user) is seen / unseen on the training days:", "",
                  "| dataset | model | unseen rows | AUC seen | AUC unseen | GAUC seen | GAUC unseen |",
                  "|---|---|---|---|---|---|---|"]
        for ds, model in dict.fromkeys((r["dataset"], r["model"]) for r in cold):
            rs = [r for r in cold if r["dataset"] == ds and r["model"] == model]
            lines.append(f"| {ds} | {model} | {np.mean([r['unseen_group_share'] for r in rs]):.1%} | "
                         + " | ".join(_ms([r[k] for r in rs]) for k in ("auc_seen", "auc_unseen",
                                                                        "gauc_seen", "gauc_unseen")) + " |")
    return "\n".join(lines)


def paired_table(rows: list[dict], reference: str) -> list[str]:
    """``reference`` − each other model, test AUC paired by seed (``common.paired_difference``); the
    logistic regression has no seed, so its one row is paired with every seed of the other model."""
    lines = [f"Paired by seed: {reference} − model, test AUC; verdict at |t| > 2", "",
             "| dataset | model | seeds | Δ test AUC (mean ± sd) | t | verdict |", "|---|---|---|---|---|---|"]
    words = {"holds": f"{reference} better", "fails": f"{reference} worse", "inconclusive": "within noise",
             "one seed": "one seed"}
    for ds in dict.fromkeys(r["dataset"] for r in rows):
        reference_rows = _by_seed(rows, ds, reference)
        for model in dict.fromkeys(r["model"] for r in rows if r["dataset"] == ds and r["model"] != reference):
            ref, other = reference_rows, _by_seed(rows, ds, model)
            if reference == "logistic" and ref:
                ref = dict.fromkeys(other, ref[0])
            if model == "logistic":
                other = dict.fromkeys(ref, other[0])
            seeds = sorted(set(ref) & set(other))
            if not seeds:
                continue
            d = common.paired_difference([ref[s]["auc"] - other[s]["auc"] for s in seeds])
            lines.append(f"| {ds} | {model} | {len(seeds)} | {d['mean']:+.4f} ± {d['sd']:.4f} | {d['t']:+.2f} | "
                         f"{words[d['verdict']]} |")
    return lines


def _by_seed(rows: list[dict], dataset: str, model: str) -> dict[int, dict]:
    return {r["seed"]: r for r in rows if r["dataset"] == dataset and r["model"] == model}


def merged_rows(paths: list[str]) -> list[dict]:
    """The rows of earlier runs' JSON files, one per (dataset, model, seed): a later file's wins."""
    rows = {}
    for path in paths:
        for r in json.loads(Path(path).read_text()):
            rows[(r["dataset"], r["model"], r["seed"])] = r
    return list(rows.values())


def write_report(rows: list[dict], out: Path, paired_against: str | None) -> None:
    out.write_text(json.dumps(rows, indent=2))
    table = markdown(rows) + ("\n\n" + "\n".join(paired_table(rows, paired_against)) if paired_against else "")
    out.with_suffix(".md").write_text(table + "\n")
    print(table)
    print(f"-> {out} and {out.with_suffix('.md')}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", default="synthetic,criteo,frappe,movielens",
                    help="comma list: synthetic, synthetic_small (a world of 20 k users: see SMALL_WORLD), "
                         "or a spec of deployments/configs")
    ap.add_argument("--models", default="dea,autoint,fm,transformer,deepctr_autoint,deepctr_fibinet",
                    help="comma list; a variant is name:key=value[:key=value] (hparams or TrainConfig fields), "
                         "e.g. dea:symmetric=true, autoint:min_id_count=1")
    ap.add_argument("--seeds", type=int, default=3, help="seeds per (dataset, model): FIRST..FIRST+N-1")
    ap.add_argument("--first-seed", type=int, default=0, help="the first seed (adds seeds to an earlier run)")
    ap.add_argument("--out", required=True, help="JSON results; the markdown table goes next to it (.md)")
    ap.add_argument("--home", help="lake with (or to keep) the datasets' feature days (default: a temporary one)")
    ap.add_argument("--quick", action="store_true", help="smoke test: 1 epoch, 1 seed, small synthetic days")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--train-days", type=int, help="train on the last N days before the valid day (default: all)")
    ap.add_argument("--batch-size", type=int, default=1024)
    ap.add_argument("--embedding-dim", type=int, default=16, help="embedding size of every model")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="TrainConfig override for our models (e.g. hparams.k=2, lr=3e-4)")
    ap.add_argument("--workers", type=int, default=2, help="Dask workers for the feature stage")
    ap.add_argument("--synthetic-rows", type=int, help="rows per day of the synthetic datasets (default: the spec's 100 k)")
    ap.add_argument("--synthetic-days", type=int, help="days of the synthetic datasets (default: the spec's 4; "
                                                       "train on all but the last two)")
    ap.add_argument("--paired-against", metavar="MODEL",
                    help="add a table of MODEL − each other model's test AUC, paired by seed, with its t")
    ap.add_argument("--report", nargs="+", metavar="JSON",
                    help="train nothing: write the tables of earlier runs' rows (same protocol), merged")
    args = ap.parse_args(argv)
    common.log_progress()
    if args.report:
        write_report(merged_rows(args.report), Path(args.out), args.paired_against)
        return 0
    seeds = 1 if args.quick else args.seeds
    base = TrainConfig(epochs=1 if args.quick else args.epochs, batch_size=args.batch_size, progress=False,
                       plot=False).with_overrides(args.set)
    ours = base.model_copy(update={"hparams": {"embedding_dim": args.embedding_dim, **base.hparams}})

    rows: list[dict] = []
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="dea-quality-") as tmp:
        lake = Lake(Path(args.home).resolve()) if args.home else Lake(Path(tmp) / "lake")
        for ds in [d.strip() for d in args.datasets.split(",") if d.strip()]:
            try:
                spec = (synthetic_spec(ds, rows_per_day=args.synthetic_rows or (20_000 if args.quick else None),
                                       days=args.synthetic_days) if ds in SYNTHETIC_WORLDS else None)
                days = prepare(lake, ds, workers=args.workers, spec=spec)
            except FileNotFoundError as e:
                log.warning("skipping dataset %s: %s", ds, e)
                continue
            split = split_days(days, train_days=args.train_days)
            oracle = (oracle_metrics(lake, ds, split[2]) or {}).get("auc")
            log.info("%s: train %s..%s, valid %s, test %s", ds, split[0][0], split[0][-1], split[1], split[2])
            rows.append({**logistic_row(lake, ds, split), "oracle_auc": oracle})
            log.info("%s logistic (C=%g on the valid day): test AUC %.4f", ds, rows[-1]["C"], rows[-1]["auc"])
            for model in [m.strip() for m in args.models.split(",") if m.strip()]:
                for seed in range(args.first_seed, args.first_seed + seeds):
                    row = run_one(lake, ds, model, seed, split, base if model_variant(model)[0] in PEERS else ours,
                                  Path(tmp) / "runs" / f"{ds}-{model}-{seed}", args.embedding_dim)
                    rows.append({**row, "oracle_auc": oracle})
                    log.info("%s %s seed %d: test AUC %.4f GAUC %.4f logloss %.4f (%.0f samples/s)", ds, model,
                             seed, row["auc"], row["gauc"], row["logloss"], row["samples_per_second"])
                    out.write_text(json.dumps(rows, indent=2))        # partial results survive a crash
    write_report(rows, out, args.paired_against)
    return 0


if __name__ == "__main__":
    sys.exit(main())
