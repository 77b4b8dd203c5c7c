"""``dea train`` and ``dea evaluate``: fit a model on the feature days, score a day with it."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model on a dataset's feature days (valid + test on the last two)")
    p.add_argument("--dataset", required=True)
    p.add_argument("--model", help="model name (default: dea; see dea_model.models.available())")
    days = p.add_mutually_exclusive_group()
    days.add_argument("--train-days", type=int, metavar="N", help="train on the last N days before the valid day")
    days.add_argument("--dates", help="comma-separated training days")
    p.add_argument("--valid-date", help="validation day (default: the second-to-last feature day)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--device", choices=["auto", "cpu", "cuda"])
    p.add_argument("--nproc", type=int, metavar="N",
                   help="data-parallel training on N processes of this host (gloo on CPU, one GPU each on CUDA); "
                        "the global batch and lr stay those of one process. Under torchrun leave it out")
    p.add_argument("--config", help="YAML/JSON file of TrainConfig fields (flags and --set win)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any TrainConfig field, e.g. --set compile=true --set hparams.k=2 (repeatable)")
    p.add_argument("--out", help="output folder (default: <lake>/runs/<dataset>/adhoc/<model>-<UTC time>-<random>)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="metrics of a trained model on one feature day")
    p.add_argument("--model-dir", required=True, help="a folder written by `dea train` (or a registry version)")
    p.add_argument("--dataset", help="dataset (default: the one the model was trained on)")
    p.add_argument("--date", help="day to score (default: the last complete feature day)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"])
    p.add_argument("--json", action="store_true", help="print the metrics as JSON only")
    p.set_defaults(func=cmd_evaluate)


def _config(args):
    import yaml

    from dea_model.config import TrainConfig

    base = yaml.safe_load(open(args.config).read()) if args.config else {}
    cfg = TrainConfig.model_validate(base or {})
    flags = {"model": args.model, "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
             "seed": args.seed, "device": args.device, "nproc": args.nproc}
    sets = [f"{k}={v}" for k, v in flags.items() if v is not None]
    if args.no_progress:
        sets.append("progress=false")
    return cfg.with_overrides(sets + args.set)


def _line(name: str, m: dict) -> str:
    return (f"  {name:<6} {m['rows']:>10,} rows  AUC {m['auc']:.4f}  GAUC {m['gauc']:.4f}  "
            f"logloss {m['logloss']:.4f}  calibration {m['calibration']:.3f}")


def cmd_train(args) -> int:
    import contextlib

    from dea_model import distributed
    from dea_model.data import split_days
    from dea_model.runs import new_run_dir
    from dea_model.train import train
    from features.lake import Lake
    from flows.guard import dataset_lock

    cfg = _config(args)
    lake = Lake.default(args.home)
    days = lake.dates("features", args.dataset)
    dates = [d.strip() for d in args.dates.split(",") if d.strip()] if args.dates else None
    train_dates, valid_date, test_date = split_days(days, train_days=args.train_days, dates=dates,
                                                    valid_date=args.valid_date)
    out = args.out or new_run_dir(lake, args.dataset, cfg.model)
    main = distributed.env_rank() == 0                 # under torchrun: rank 0 locks, prints and writes
    if main:
        print(f"dea train: {cfg.model} on {args.dataset}: train {train_dates[0]}..{train_dates[-1]} "
              f"({len(train_dates)} day(s)), valid {valid_date}, test {test_date or '(none)'}"
              + (f", {cfg.nproc} processes" if cfg.nproc > 1 else ""))
    with dataset_lock(lake, args.dataset) if main else contextlib.nullcontext():
        r = train(cfg, lake, args.dataset, train_dates, valid_date, out, test_date=test_date)
    if r is None:
        return 0
    m = r.metrics
    for c in r.curve:
        print(f"  epoch {c['epoch']:>3}  train loss {c['train_loss']:.4f}  valid AUC {c['valid_auc']:.4f}  "
              f"GAUC {c['valid_gauc']:.4f}  logloss {c['valid_logloss']:.4f}  {c['seconds']:6.1f} s  "
              f"{c['samples_per_second']:,.0f} samples/s")
    print(f"  best epoch {m['best_epoch']} of {m['epochs_run']}, {m['train_rows']:,} training rows, "
          f"{m['train_seconds']:.1f} s, {m['samples_per_second']:,.0f} samples/s")
    print(_line("valid", m["valid"]))
    if "test" in m:
        print(_line("test", m["test"]))
    print(f"-> {r.out_dir}")
    return 0


def cmd_evaluate(args) -> int:
    from dea_model.runs import CONFIG
    from dea_model.scoring import evaluate
    from features.lake import Lake
    from features.storage import lake_path

    lake = Lake.default(args.home)
    config_path = lake_path(args.model_dir) / CONFIG
    if not config_path.is_file():
        raise FileNotFoundError(f"{args.model_dir} is not a trained model folder: {CONFIG} is missing")
    dataset = args.dataset or json.loads(config_path.read_text())["dataset"]
    date = args.date or (lake.dates("features", dataset) or [None])[-1]
    if date is None:
        raise FileNotFoundError(f"dataset {dataset!r} has no complete feature days in {lake.features(dataset)}")
    m = evaluate(args.model_dir, lake, dataset, date, device=args.device)
    if args.json:
        print(json.dumps(m, indent=2))
    else:
        print(f"dea evaluate: {args.model_dir} on {dataset} {date}")
        print(_line("eval", m))
        print(f"  {m['groups']:,} groups, GAUC over {m['gauc_coverage']:.1%} of rows")
    return 0
