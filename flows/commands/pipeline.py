"""``dea run`` (the ``dea-daily`` flow end to end) and ``dea backfill`` (it, or one stage, over dates).

Both run Prefect flows in-process: against ``PREFECT_API_URL`` when it is set (the runs then show
in that server's UI), else against a private server for the command (``flows.server``: it dies
with the command, even on ``kill -9``) whose database lives in ``PREFECT_HOME`` (default
``<lake>/prefect``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time
from typing import Iterator


def _common(p: argparse.ArgumentParser) -> None:
    from flows.defaults import DAILY_MODEL, DAILY_TRAIN_FIELDS as DAILY

    p.add_argument("--dataset", default="synthetic", help="dataset spec name (default: synthetic)")
    p.add_argument("--window", type=int, default=3,
                   help="days before the date to train on; the last one is the validation day (default: 3)")
    p.add_argument("--model", help=f"model to train (default: {DAILY_MODEL})")
    p.add_argument("--epochs", type=int, help=f"training epochs (default: {DAILY['epochs']}; the daily retrain trains "
                                              f"in batches of {DAILY['batch_size']} at lr {DAILY['lr']:g}, "
                                              f"early-stopping after {DAILY['patience']} epoch without a better "
                                              f"validation AUC, with a training vocabulary: min_id_count="
                                              f"{DAILY['min_id_count']}, an ID seen fewer times in training is its "
                                              f"field's out-of-vocabulary ID)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any TrainConfig field, e.g. --set lr=3e-4 --set hparams.k=2 (repeatable)")
    p.add_argument("--rows", type=int, help="synthetic rows per day (default: the synthetic config's)")
    p.add_argument("--dask", metavar="ADDRESS", help="existing Dask scheduler (default: a LocalCluster)")
    p.add_argument("--workers", type=int, help="LocalCluster workers (default: cores, at most 4)")
    p.add_argument("--force", action="store_true", help="recompute every stage even when up to date")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="the dea-daily flow end to end: ingest, features, gate, train, evaluate, register")
    p.add_argument("--date", help="day to gate and evaluate on, YYYY-MM-DD (default: yesterday, UTC; a dataset "
                                         "cut into pseudo-days: its last)")
    p.add_argument("--gate-override", metavar="REASON",
                   help="accept the day although its gate failed (after reading the report); logged in the verdict")
    _common(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("backfill", help="run dea-daily (or one stage) for every date of a range, in order")
    p.add_argument("--start", required=True, help="first date, YYYY-MM-DD")
    p.add_argument("--end", required=True, help="last date, YYYY-MM-DD (included)")
    p.add_argument("--stage", default="dea-daily",
                   choices=["dea-daily", "ingest", "features", "validate", "train", "evaluate", "register"])
    _common(p)
    p.set_defaults(func=cmd_backfill)


def _params(args) -> dict:
    """Flow parameters from the command line (what the Prefect UI form would hold)."""
    from features.spec import load_spec
    from flows.params import DAILY_TRAIN, DaskParams

    sets = [f"{k}={v}" for k, v in {"model": args.model, "epochs": args.epochs}.items() if v is not None]
    params = {"dataset": args.dataset, "window": args.window, "force": args.force, "home": args.home,
              "train": DAILY_TRAIN.with_overrides(sets + args.set),
              "cluster": DaskParams(address=args.dask, n_workers=args.workers)}
    if args.rows:
        source = load_spec(args.dataset).source.model_dump()
        source["options"] = {**source["options"], "rows_per_day": args.rows}
        params["spec_overrides"] = {"source": source}
    return params


def _stage_line(name: str, seconds: float, r: dict) -> str:
    from flows.summary import stage_detail

    where = {"validate": r.get("summary"), "train": r.get("model_dir")}.get(name)
    return f"  {name:9} {seconds:7.1f} s  {stage_detail(name, r)}" + (f" -> {where}" if where else "")


def _report(result: dict) -> None:
    """Per-stage lines, the champion's metrics on the date, the baselines and where the reports are."""
    from flows.summary import metric as _num
    from flows.summary import standing

    for name, seconds in result["seconds"].items():
        print(_stage_line(name, seconds, result[name]))
    reg, ev, gate = result["register"], result["evaluate"], result["validate"]
    judged = ev["champion"] if ev["champion"] and ev["champion"]["version"] == reg["champion"] else ev["candidate"]
    print(f"champion {reg['champion']} on {result['date']}: AUC {_num(judged['auc'])}  GAUC {_num(judged['gauc'])}  "
          f"logloss {_num(judged['logloss'])}  calibration {_num(judged['calibration'])}  ({judged['rows']:,} rows)")
    where = standing(judged["auc"], ev["baselines"])
    if where:
        print(f"  {where}")
    for name, m in ev["baselines"].items():
        print(f"  baseline {name:8} AUC {_num(m['auc'])}  GAUC {_num(m['gauc'])}  logloss {_num(m['logloss'])}")
    print("reports:")
    print(f"  gate summary   {gate['summary']}")
    if gate.get("data_docs"):
        print(f"  Data Docs      {gate['data_docs']}")
    print(f"  evaluation     {ev['path']}")
    print(f"  model          {reg['path']}  (`dea registry --model {result['dataset']} show`)")


@contextlib.contextmanager
def _prefect() -> Iterator[None]:
    """A Prefect server for this command (``PREFECT_API_URL``'s, or a private one that dies with
    this process, see ``flows.server``), before Prefect is imported."""
    from flows import server

    with server.private_server(os.environ["PREFECT_HOME"]):
        yield


def cmd_run(args) -> int:
    with _prefect():
        return _run(args)


def _run(args) -> int:
    from features.lake import Lake
    from flows.dea_daily import dea_daily

    params = _params(args)
    start = time.perf_counter()
    try:
        result = dea_daily(date=args.date, gate_override=args.gate_override, **params)
    except Exception as e:  # the flow run is Failed; say where and why, without a traceback
        print(f"dea-daily {args.dataset} {args.date or '(default date)'}: Failed after "
              f"{time.perf_counter() - start:.1f} s: {e}")
        return 1
    print(f"dea-daily {result['dataset']} {result['date']}: Completed in {time.perf_counter() - start:.1f} s "
          f"(lake {Lake.default(args.home).root})")
    _report(result)
    return 0


def cmd_backfill(args) -> int:
    with _prefect():
        return _backfill(args)


def _backfill(args) -> int:
    from flows.backfill import backfill, dates_between

    start = time.perf_counter()
    try:
        results = backfill(start=args.start, end=args.end, stage=args.stage, **_params(args))
    except Exception as e:
        print(f"backfill {args.dataset} {args.start}..{args.end} ({args.stage}): Failed after "
              f"{time.perf_counter() - start:.1f} s: {e}")
        return 1
    for date, r in zip(dates_between(args.start, args.end), results):
        if args.stage == "dea-daily":
            reg = r["register"]
            print(f"  {date}  {sum(r['seconds'].values()):7.1f} s  gate {r['validate']['verdict']}, {reg['version']} "
                  f"{'promoted' if reg['promoted'] else 'not promoted'}, champion {reg['champion']}")
        else:
            print(f"  {date}  {args.stage}: {'up to date, skipped' if r.get('skipped') else 'done'}")
    print(f"backfill {args.dataset} {args.start}..{args.end} ({args.stage}): {len(results)} date(s) Completed "
          f"in {time.perf_counter() - start:.1f} s")
    return 0
