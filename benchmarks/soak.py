"""Soak: consecutive days of ``dea run`` on the synthetic source, with injected bad days.

    python benchmarks/soak.py --days 14 --out benchmarks/results/soak.json        # about 15 min
    python benchmarks/soak.py --days 3 --rows 4000 --model fm --bad gate@2        # CI's version

Each day is a fresh ``dea run --date D`` process, as the schedule starts one each morning; after
every ``--gc-every`` days ``dea gc --apply`` runs, as the weekly deployment does. Injected days
(``--bad``, 1-based): ``gate@N`` lands day N with every ``brand`` value null (the gate fails),
``corrupt@N`` lands day N with a raw Parquet file that is not Parquet (no feature table can be
built). The dataset is the shipped synthetic spec with a tight retention policy (``--retention``),
so a two-week soak exercises it.

It checks, and exits 1 naming what broke:
- exactly the injected days fail, every other day completes;
- the champion never moves to a worse model: a new champion beat the old one on that day's GAUC;
- nothing is left running (every process the runs started carries a marker in its environment;
  none survives) and no ``.tmp-*`` / ``.old-*`` is left in the lake;
- after each gc the lake (Prefect's database aside) is within the bound the retention policy
  implies: kept data days × the largest data day + run days × the largest run day + (versions +
  champions + 1) × the largest version + 1 MB.

Output (``--out``): per day the status, verdict, seconds, champion and lake size, and the checks.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from dea_model.registry import Registry
from dea_model.retention import lake_bytes, plan_gc
from features.lake import Lake, date_range
from features.sources import ingest
from features.spec import CONFIG_DIR, load_spec
from flows.params import with_synthetic_calendar

DEA = str(Path(sys.executable).with_name("dea"))
TIGHT = {"data_days": 8, "run_days": 3, "versions": 3, "champions": 2}


def write_spec(folder: Path, rows: int, retention: dict) -> Path:
    """The shipped synthetic spec with ``rows`` rows a day and the soak's retention policy."""
    spec = yaml.safe_load((CONFIG_DIR / "synthetic.yaml").read_text())
    spec["source"]["options"]["rows_per_day"] = rows
    spec["retention"] = retention
    path = folder / "synthetic.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def inject(kind: str, spec_path: Path, lake: Lake, date: str) -> None:
    """Land ``date`` the way ``dea run`` would (same source record), then break it in place."""
    spec = with_synthetic_calendar(load_spec(spec_path))
    ingest(spec, lake, dates=[date])
    part = sorted(lake.raw(spec.name, date).glob("*.parquet"))[0]
    if kind == "corrupt":
        part.write_bytes(b"PAR1 not a parquet file")
    else:
        table = pq.read_table(part)
        i = table.schema.get_field_index("brand")
        pq.write_table(table.set_column(i, "brand", pa.nulls(table.num_rows, pa.string())), part)


def run_day(spec_path: Path, home: Path, date: str, args, marker: str) -> tuple[int, float, str]:
    env = {**os.environ, "DEA_HOME": str(home), "PREFECT_HOME": str(home / "prefect"), "DEA_SOAK": marker}
    env.pop("PREFECT_API_URL", None)
    cmd = [DEA, "run", "--dataset", str(spec_path), "--date", date, "--set", f"model={args.model}",
           "--set", f"epochs={args.epochs}"]
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=3600)
    return done.returncode, time.perf_counter() - start, done.stdout[-1500:] + done.stderr[-1500:]


def gc(spec_path: Path, home: Path, marker: str) -> str:
    env = {**os.environ, "DEA_HOME": str(home), "DEA_SOAK": marker}
    done = subprocess.run([DEA, "gc", "--dataset", str(spec_path), "--apply"], env=env, capture_output=True,
                          text=True, timeout=600)
    if done.returncode:
        raise SystemExit(f"dea gc failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout.strip().splitlines()[-1]


def evaluation(lake: Lake, date: str, model: str) -> dict | None:
    found = sorted(lake.runs().glob(f"synthetic/dt={date}/{model}-*.eval/evaluation.json"))
    return json.loads(found[-1].read_text()) if found else None


def folder_bytes(folder: Path) -> int:
    return lake_bytes(folder, skip=())


def retention_bound(spec_path: Path, lake: Lake) -> int:
    """Bytes the retention policy allows (see the module docstring), from the largest units present."""
    spec = load_spec(spec_path)
    policy, plan = spec.retention, plan_gc(spec, lake)
    data_day = max((sum(folder_bytes(lake.root / s / "synthetic" / f"dt={d}") for s in
                        ("raw", "features", "stats", "validation", "predictions"))
                    for d in lake.dates("features", "synthetic")), default=0)
    run_day = max((folder_bytes(p) for p in (lake.runs() / "synthetic").glob("dt=*")), default=0)
    version = max((folder_bytes(p) for p in lake.models("synthetic").glob("v*")), default=0)
    return (len(plan.kept.get("data days", [])) * data_day + policy.run_days * run_day
            + (policy.versions + policy.champions + 1) * version + 1_000_000)


def leftovers(marker: str) -> list[str]:
    out = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        try:
            if p.environ().get("DEA_SOAK") == marker:
                out.append(f"{p.pid} {' '.join(p.info['cmdline'] or [])[:120]}")
        except psutil.Error:
            continue
    return out


def parse_bad(text: str) -> dict[int, str]:
    bad = {}
    for item in filter(None, text.split(",")):
        kind, _, day = item.partition("@")
        if kind not in ("gate", "corrupt") or not day.isdigit():
            raise SystemExit(f"--bad {item!r}: expected gate@N or corrupt@N")
        bad[int(day)] = kind
    return bad


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--start", default="2026-01-05")
    parser.add_argument("--rows", type=int, default=20_000, help="synthetic rows a day")
    parser.add_argument("--model", default="dea")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--bad", default="gate@5,corrupt@10", help="injected days, e.g. gate@5,corrupt@10")
    parser.add_argument("--gc-every", type=int, default=7)
    parser.add_argument("--retention", default=json.dumps(TIGHT), help="retention policy (JSON)")
    parser.add_argument("--home", default=None, help="the soak's folder (default: a new temporary one)")
    parser.add_argument("--out", default=None, help="JSON results")
    args = parser.parse_args(argv)
    bad = parse_bad(args.bad)
    home = Path(args.home or f"/tmp/dea-soak-{uuid.uuid4().hex[:8]}").resolve()
    home.mkdir(parents=True, exist_ok=True)
    lake, marker = Lake(home / "lake"), uuid.uuid4().hex
    spec_path = write_spec(home, args.rows, json.loads(args.retention))
    problems, days = [], []
    champion = None
    for i, date in enumerate(date_range(args.start, args.days), start=1):
        if i in bad:
            inject(bad[i], spec_path, lake, date)
        rc, seconds, tail = run_day(spec_path, lake.root, date, args, marker)
        verdict_file = lake.validation("synthetic", date) / "verdict.json"
        verdict = json.loads(verdict_file.read_text())["verdict"] if verdict_file.exists() else None
        reg = Registry(lake, "synthetic")
        new = reg.aliases().get("champion")
        row = {"day": i, "date": date, "injected": bad.get(i), "status": "Completed" if rc == 0 else "Failed",
               "verdict": verdict, "seconds": round(seconds, 1), "champion": new}
        if (rc == 0) == (i in bad):
            problems.append(f"day {i} {date}: {'completed' if rc == 0 else 'failed'} (injected: {bad.get(i)}):\n{tail}")
        if new != champion and champion is not None:
            ev = evaluation(lake, date, args.model)
            cand, champ = (ev or {}).get("candidate", {}), (ev or {}).get("champion") or {}
            row["promotion"] = {"candidate_gauc": cand.get("gauc"), "champion_gauc": champ.get("gauc")}
            if not (ev and champ.get("version") == champion and cand.get("gauc", -1) > champ.get("gauc", 1)):
                problems.append(f"day {i} {date}: champion moved {champion} -> {new} without beating it: {ev}")
        champion = new
        if i % args.gc_every == 0 or i == args.days:
            row["gc"] = gc(spec_path, lake.root, marker)
            row["bound_mb"] = round(retention_bound(spec_path, lake) / 1e6, 1)
        row["lake_mb"] = round(lake_bytes(lake.root) / 1e6, 1)
        row["prefect_db_mb"] = round(folder_bytes(lake.root / "prefect") / 1e6, 1)
        if "bound_mb" in row and row["lake_mb"] > row["bound_mb"]:
            problems.append(f"day {i} {date}: lake {row['lake_mb']} MB over the retention bound {row['bound_mb']} MB")
        days.append(row)
        print(f"day {i:2d} {date} {row['status']:9} gate {str(verdict):5} {seconds:6.1f} s  champion {new}  "
              f"lake {row['lake_mb']:7.1f} MB" + (f"  (gc; bound {row['bound_mb']} MB)" if "gc" in row else "")
              + (f"  injected: {bad[i]}" if i in bad else ""), flush=True)
    time.sleep(2)
    left = leftovers(marker)
    temporaries = [str(t) for t in lake.root.rglob("*") if t.name.startswith((".tmp-", ".old-"))]
    problems += [f"process left running: {x}" for x in left] + [f"temporary left: {t}" for t in temporaries]
    result = {"argv": sys.argv[1:] if argv is None else argv, "host": platform.node(), "cpus": os.cpu_count(),
              "rows_per_day": args.rows, "model": args.model, "epochs": args.epochs, "bad": {str(k): v for k, v in bad.items()},
              "retention": json.loads(args.retention), "days": days, "leftover_processes": left,
              "leftover_temporaries": temporaries, "problems": problems,
              "seconds_per_day_median": float(np.median([d["seconds"] for d in days]))}
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    for problem in problems:
        print(f"PROBLEM: {problem}", file=sys.stderr)
    print(f"soak: {args.days} day(s), {len(bad)} injected, {len(problems)} problem(s); lake {home}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
