"""``dea synth``, ``dea ingest``, ``dea features``: land raw days and turn them into feature tables."""

from __future__ import annotations

import argparse
import time


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("synth", help="write synthetic daily ad logs into raw/synthetic/ (the embedded demo)")
    p.add_argument("--days", type=int, help="number of days (default: the synthetic config's)")
    p.add_argument("--rows", type=int, help="rows per day (default: the synthetic config's)")
    p.add_argument("--start", help="first date YYYY-MM-DD")
    p.add_argument("--seed", type=int)
    p.add_argument("--force", action="store_true", help="rewrite days that are up to date")
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("ingest", help="land a dataset's raw logs as Parquet days in raw/<dataset>/")
    p.add_argument("--dataset", required=True)
    p.add_argument("--dates", help="comma-separated dates to land (default: all of the source)")
    p.add_argument("--force", action="store_true")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("features", help="fit the manifest on a window of raw days and write feature tables")
    p.add_argument("--dataset", required=True)
    p.add_argument("--dates", help="comma-separated days to transform (default: every raw day)")
    p.add_argument("--fit-dates", help="comma-separated days to fit bucket boundaries on "
                                       "(default: every raw day before the last one)")
    p.add_argument("--force", action="store_true", help="refit and rewrite even when up to date")
    p.add_argument("--dask", metavar="ADDRESS", help="existing Dask scheduler (default: a LocalCluster)")
    p.add_argument("--workers", type=int, help="LocalCluster workers (default: cores, at most 4)")
    p.set_defaults(func=cmd_features)


def _split(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def _ingest(spec, args) -> int:
    from features.lake import Lake
    from features.sources import ingest
    from flows.guard import dataset_lock

    lake = Lake.default(args.home)
    with dataset_lock(lake, spec.name):
        result = ingest(spec, lake, dates=_split(getattr(args, "dates", None)), force=args.force)
    for date, rows in sorted(result.written.items()):
        print(f"  wrote   {date}  {rows:>10,} rows")
    for date in result.skipped:
        print(f"  skipped {date}  (up to date)")
    total = sum(result.written.values())
    print(f"{spec.name}: {len(result.written)} day(s) written ({total:,} rows), {len(result.skipped)} up to date, "
          f"in {result.seconds:.1f} s -> {lake.raw(spec.name)}")
    return 0


def cmd_synth(args) -> int:
    from features.spec import load_spec

    spec = load_spec("synthetic")
    source = spec.source.model_dump()
    options = dict(source["options"])
    if args.rows:
        options["rows_per_day"] = args.rows
    if args.seed is not None:
        options["seed"] = args.seed
    source.update(options=options, **{k: v for k, v in {"days": args.days, "start_date": args.start}.items() if v})
    return _ingest(load_spec("synthetic", overrides={"source": source}), args)


def cmd_ingest(args) -> int:
    from features.spec import load_spec

    return _ingest(load_spec(args.dataset), args)


def cmd_features(args) -> int:
    from features import pipeline
    from features.cluster import dask_client
    from features.lake import Lake
    from features.spec import load_spec
    from flows.guard import dataset_lock

    lake = Lake.default(args.home)
    spec = load_spec(args.dataset)
    raw_days = lake.dates("raw", spec.name)
    if not raw_days:
        raise FileNotFoundError(f"dataset {spec.name!r}: no raw days in {lake.raw(spec.name)}; run `dea ingest` first")
    days = _split(args.dates) or raw_days
    fit_days = _split(args.fit_dates) or (raw_days[:-1] or raw_days)
    start = time.perf_counter()
    with dataset_lock(lake, spec.name), dask_client(args.dask, n_workers=args.workers) as client:
        print(f"Dask: {client.dashboard_link or client.scheduler.address}")
        manifest = pipeline.fit(spec, lake, fit_days, force=args.force)
        print(f"manifest: fitted on {fit_days[0]}..{fit_days[-1]} ({len(fit_days)} day(s)), "
              f"{len(manifest.fields)} fields, hash spec v{manifest.hash_spec_version} -> {lake.manifest(spec.name)}")
        rows = 0
        for day in days:
            r = pipeline.transform(spec, lake, day, manifest, force=args.force)
            rows += r.rows
            state = "skipped (up to date)" if r.skipped else f"{r.rows / max(r.seconds, 1e-9):,.0f} rows/s"
            print(f"  {day}  {r.rows:>10,} rows  {r.seconds:6.1f} s  {state}")
    print(f"{spec.name}: {len(days)} day(s), {rows:,} rows in {time.perf_counter() - start:.1f} s "
          f"-> {lake.features(spec.name)}")
    return 0
