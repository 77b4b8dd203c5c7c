"""``dea gc``: apply the dataset's retention policy (dry run unless ``--apply``)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("gc", help="remove old data days, run folders and model versions per the dataset's "
                                  "retention policy (dry run unless --apply)")
    p.add_argument("--dataset", required=True)
    p.add_argument("--apply", action="store_true", help="remove them (default: only say what would go)")
    p.add_argument("--window", type=int, default=3, help="the daily runs' training window (default: 3)")
    p.add_argument("--model", help="registered model name (default: the dataset's name)")
    p.add_argument("--list", action="store_true", help="print every path to remove")
    p.set_defaults(func=cmd_gc)


def cmd_gc(args) -> int:
    from dea_model.retention import apply_gc, describe, lake_bytes, plan_gc
    from features.lake import Lake
    from features.spec import load_spec
    from flows.guard import dataset_lock

    spec, lake = load_spec(args.dataset), Lake.default(args.home)
    with dataset_lock(lake, spec.name):
        plan = plan_gc(spec, lake, window=args.window, model=args.model)
        if args.apply:
            apply_gc(plan, lake)
    r = spec.retention
    print(f"{spec.name}: retention {r.data_days} data days, {r.run_days} run days, {r.versions} versions, "
          f"{r.champions} champions; newest day {plan.newest or '(none)'}")
    for line in describe(plan):
        print(line)
    for removal in plan.removals if args.list else []:
        print(f"  - {removal.path}  ({removal.kind}: {removal.why})")
    mb = plan.freed_bytes / 1e6
    if args.apply:
        print(f"removed {len(plan.removals)} item(s), freed {mb:,.1f} MB; lake now {lake_bytes(lake.root) / 1e6:,.1f} MB")
    else:
        print(f"dry run: {len(plan.removals)} item(s) would free {mb:,.1f} MB; add --apply to remove them")
    return 0
