"""``dea validate``: run the data-quality gate on one day and print its verdict.

Exit status: 0 on pass or warn, 1 on fail (also when the inputs are missing: the verdict says why).
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("validate", help="run the data-quality gate (Great Expectations) on one day")
    p.add_argument("--dataset", help="dataset spec name (required unless --gate-keys)")
    p.add_argument("--date", help="day YYYY-MM-DD (default: the latest raw day)")
    p.add_argument("--override", metavar="REASON",
                   help="let a failing day through; the reason, user and time are logged in the verdict")
    p.add_argument("--force", action="store_true", help="run again even when the verdict is up to date")
    p.add_argument("--no-reports", action="store_true", help="skip Data Docs and plots (verdict and summary only)")
    p.add_argument("--gate-keys", action="store_true",
                   help="print every key of a spec's gate: block, its default and meaning, and exit")
    p.set_defaults(func=cmd_validate)


def cmd_validate(args) -> int:
    if args.gate_keys:
        from validation.checks import gate_keys

        print(gate_keys())
        return 0
    if not args.dataset:
        raise SystemExit("dea validate: --dataset is required (or --gate-keys)")
    from features.lake import Lake
    from features.spec import load_spec
    from flows.guard import dataset_lock
    from validation import run_gate

    lake = Lake.default(args.home)
    spec = load_spec(args.dataset)
    date = args.date
    if date is None:
        days = lake.dates("raw", spec.name)
        if not days:
            raise FileNotFoundError(f"dataset {spec.name!r}: no raw days in {lake.raw(spec.name)}; give --date")
        date = days[-1]
    with dataset_lock(lake, spec.name):
        result = run_gate(spec, lake, date, override=args.override, reports=not args.no_reports, force=args.force)
    doc = result.doc
    ref = doc["reference_dates"]
    counts = doc["counts"]
    state = " (up to date, not re-run)" if result.skipped else ""
    print(f"{spec.name} {doc['date']}: verdict {doc['verdict'].upper()}{state}")
    if doc.get("override"):
        print(f"  override by {doc['override']['user']}: {doc['override']['reason']} "
              f"(the checks said {doc['checks_verdict']})")
    print(f"  {len(doc['checks'])} checks: {counts['pass']} passed, {counts['fail']} failed "
          f"({counts['fail_error']} blocking), {counts['skipped']} skipped; reference window: "
          + (f"{len(ref)} day(s) {ref[0]}..{ref[-1]}" if ref else "none (first day)"))
    for note in doc.get("notes", []):
        print(f"  note: {note}")
    for c in result.failing:
        print(f"  {'FAIL' if c['severity'] == 'error' else 'WARN'}  {c['expectation']}: observed {c['observed']}, "
              f"bound {c['bound']}" + (f" — {c['note']}" if c.get("note") else ""))
    print(f"  verdict: {result.verdict_path}")
    print(f"  summary: {result.summary_path}")
    if result.data_docs:
        print(f"  Data Docs: {result.data_docs}")
    for p in result.plots:
        print(f"  plot: {p}")
    print(f"  in {result.seconds:.1f} s")
    return 1 if result.blocked else 0
