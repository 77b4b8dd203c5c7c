"""``dea registry list|show|promote|rollback|verify|repair`` and ``dea predict``: the model registry,
and scoring a day with the champion."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
from typing import Iterator


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("registry", help="list, show, promote, roll back, verify or repair registered model versions")
    p.add_argument("--model", default="synthetic",
                   help="registered model name: the dataset's name unless the flows were given another "
                        "(default: synthetic)")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("list", help="every version with its aliases and evaluation metrics").set_defaults(func=cmd_list)
    a = actions.add_parser("show", help="one version: metrics, lineage, files")
    a.add_argument("version", nargs="?", default="champion", help="v0003, 3 or an alias (default: champion)")
    a.add_argument("--json", action="store_true", help="print the version as JSON only")
    a.set_defaults(func=cmd_show)
    a = actions.add_parser("promote", help="make a version the champion")
    a.add_argument("version")
    a.add_argument("--reason", default="manual promotion")
    a.set_defaults(func=cmd_promote, writes=True)
    a = actions.add_parser("rollback", help="give the champion alias back to the previous champion")
    a.add_argument("--reason", default="manual rollback")
    a.set_defaults(func=cmd_rollback, writes=True)
    a = actions.add_parser("verify", help="check every version's files against the SHA-256 in its record, and "
                                          "the aliases file; one line per problem, exit 1 when any")
    a.add_argument("version", nargs="?", help="only this version (v0003, 3 or an alias; default: all)")
    a.set_defaults(func=cmd_verify)
    a = actions.add_parser("repair", help="repair an unreadable aliases.json, or one naming a missing version: "
                                          "restore its last-good copy, else rebuild it from the versions' lineage")
    a.add_argument("--dry-run", action="store_true", help="print what it would change, change nothing")
    a.add_argument("--reason", default="manual repair")
    a.set_defaults(func=cmd_repair, writes=True)

    p = sub.add_parser("predict", help="score a day with the champion and write predictions as Parquet")
    p.add_argument("--dataset", required=True)
    p.add_argument("--date", required=True, help="day to score, YYYY-MM-DD (its raw day must be in the lake)")
    p.add_argument("--model", help="registered model name (default: the dataset's name)")
    p.add_argument("--version", default="champion", help="version or alias to score with (default: champion)")
    p.set_defaults(func=cmd_predict)


def _registry(args):
    from dea_model.registry import Registry
    from features.lake import Lake

    return Registry(Lake.default(args.home), args.model or args.dataset)


@contextlib.contextmanager
def _editing(args) -> Iterator:
    """The registry, under the lock of the dataset of its name: a run of that dataset (which removes
    stale temporaries when it takes the lock) never sees an alias write half-done."""
    from flows.guard import dataset_lock

    reg = _registry(args)
    with dataset_lock(reg.lake, reg.name):
        yield reg


def _num(x) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.4f}"


def cmd_list(args) -> int:
    reg = _registry(args)
    versions = reg.list_versions()
    if not versions:
        print(f"model {reg.name!r}: no versions registered under {reg.root}")
        return 0
    print(f"{'version':8} {'aliases':20} {'eval date':10} {'AUC':>7} {'GAUC':>7} {'logloss':>8}  created")
    for v in versions:
        m = v.metrics
        print(f"{v.version:8} {','.join(v.aliases) or '-':20} {v.lineage.get('eval_date', '-'):10} "
              f"{_num(m.get('auc')):>7} {_num(m.get('gauc')):>7} {_num(m.get('logloss')):>8}  {v.created_at}")
    print(f"{len(versions)} version(s) of {reg.name!r} in {reg.root}")
    return 0


def cmd_show(args) -> int:
    v = _registry(args).show(args.version)
    if args.json:
        print(json.dumps(v.as_dict(), indent=2, default=str))
        return 0
    print(f"{v.name} {v.version}  aliases: {', '.join(v.aliases) or '-'}  created {v.created_at}")
    print(f"  path     {v.path}")
    print("  metrics  " + "  ".join(f"{k} {_num(v.metrics.get(k))}" for k in ("auc", "gauc", "logloss", "calibration")))
    for key, value in v.lineage.items():
        print(f"  {key:18} {json.dumps(value, default=str) if isinstance(value, (dict, list)) else value}")
    return 0


def cmd_promote(args) -> int:
    with _editing(args) as reg:
        before = reg.champion()
        v = reg.promote(args.version, args.reason)
    print(f"{reg.name}: champion {before.version if before else 'none'} -> {v.version} ({args.reason}); "
          f"aliases in {reg.root / 'aliases.json'}")
    return 0


def cmd_rollback(args) -> int:
    with _editing(args) as reg:
        before = reg.champion()
        v = reg.rollback(args.reason)
    print(f"{reg.name}: champion {before.version} -> {v.version} (rolled back); aliases in {reg.root / 'aliases.json'}")
    return 0


def cmd_verify(args) -> int:
    reg = _registry(args)
    result = reg.verify(args.version)
    for line in result.problems:
        print(line)
    if result.unchecked:
        print(f"{len(result.unchecked)} version(s) registered before records carried checksums, not checked: "
              f"{', '.join(result.unchecked)}")
    print(f"{reg.name}: {len(result.checked)} version(s) checked in {reg.root}: "
          f"{len(result.problems) or 'no'} problem(s)")
    return 1 if result.problems else 0


def cmd_repair(args) -> int:
    with _editing(args) as reg:
        lines = reg.repair(dry_run=args.dry_run, reason=args.reason)
    for line in lines:
        print(line)
    return 0


def cmd_predict(args) -> int:
    import time

    from flows.guard import dataset_lock
    from flows.params import Day

    start = time.perf_counter()
    day = Day.open(args.dataset, args.date, args.home)
    with dataset_lock(day.lake, day.dataset):
        return _predict(args, day, start)


def _predict(args, day, start: float) -> int:
    import time

    import numpy as np

    from dea_model.scoring import write_predictions

    version = _registry(args).show(args.version)
    out, table = write_predictions(version, day.spec, day.lake, day.date)
    probs = table["p_click"].to_numpy()
    print(f"{day.dataset} {day.date}: {table.num_rows:,} rows scored with {version.name} {version.version} "
          f"(mean p_click {float(np.mean(probs)):.4f}, observed CTR {float(table['label'].to_numpy().mean()):.4f}) "
          f"in {time.perf_counter() - start:.1f} s -> {out}")
    return 0
