"""Retention: what ``dea gc`` removes from a dataset's folders, so weeks of days do not fill the disk.

The dataset spec's ``retention`` block (``features.spec.RetentionPolicy``) sets the counts; the
reference point is the dataset's newest day in the lake (not the wall clock: a backfill of last
year is not "old"). Kept, and everything else of the dataset removed:

- **data days** (``raw``, ``features``, ``stats``, ``validation``, ``predictions``): the newest
  ``data_days`` days, and always what the next run needs: the ``max(window, reference_days)`` last
  days before the newest whose gate did not fail (its training and gate reference windows) and the
  newest day itself;
- **run days** ``runs/<dataset>/dt=…``: the newest ``run_days``; ad-hoc runs
  ``runs/<dataset>/adhoc/*`` written in the last ``run_days`` days (wall clock);
- **model versions** of ``models/<name>/``: the newest ``versions``, every version an alias names,
  and the last ``champions`` entries of the champion history (the rollback targets).

A version hard-links its run's weights, so removing a run folder frees nothing a version holds;
``freed`` counts only bytes whose every hard link goes. Removal is crash-safe: a folder is renamed
to a hidden ``.old-*`` name, then deleted (the next run of the dataset removes what a crash left).
"""

from __future__ import annotations

import datetime as dt
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from dea_model.registry import Registry
from features.lake import Lake, parse_date, remove_tree
from features.storage import is_local, tree_bytes
from features.spec import DatasetSpec
from validation.config import gate_config
from validation.gate import accepted_days

DATA_STAGES = ("raw", "features", "stats", "validation", "predictions")


@dataclass(frozen=True)
class Removal:
    path: Path
    kind: str          # "features day", "run day", "model version", ...
    why: str


@dataclass
class GcPlan:
    """What ``apply_gc`` would remove, what it keeps, and the bytes it frees."""

    dataset: str
    model: str
    newest: str | None
    removals: list[Removal] = field(default_factory=list)
    kept: dict[str, list[str]] = field(default_factory=dict)
    freed_bytes: int = 0


def _days(folder: Path) -> list[str]:
    """Dates of the ``dt=YYYY-MM-DD`` folders under ``folder`` (complete or not), sorted."""
    if not folder.is_dir():
        return []
    return sorted(p.name[3:] for p in folder.iterdir() if p.is_dir() and p.name.startswith("dt="))


def _stage_folder(lake: Lake, stage: str, dataset: str) -> Path:
    return lake.root / stage / dataset


def _cutoff(newest: str, days: int) -> str:
    return (parse_date(newest) - dt.timedelta(days=days - 1)).isoformat()


def needed_days(spec: DatasetSpec, lake: Lake, newest: str, window: int) -> list[str]:
    """The days the next run needs: the newest, and the last ``max(window, reference_days)`` days
    before it with a feature table whose gate did not fail."""
    k = max(window, gate_config(spec).reference_days)
    return accepted_days(lake, spec.name, newest)[-k:] + [newest]


def plan_gc(spec: DatasetSpec, lake: Lake, *, window: int = 3, model: str | None = None,
            now: dt.datetime | None = None) -> GcPlan:
    """What the dataset's retention policy removes (nothing is touched)."""
    policy = spec.retention
    model = model or spec.name
    all_days = sorted({d for s in DATA_STAGES for d in _days(_stage_folder(lake, s, spec.name))})
    plan = GcPlan(spec.name, model, all_days[-1] if all_days else None)
    if plan.newest is not None:
        keep = set(needed_days(spec, lake, plan.newest, window)) | {d for d in all_days
                                                                    if d >= _cutoff(plan.newest, policy.data_days)}
        plan.kept["data days"] = sorted(keep)
        for stage in DATA_STAGES:
            for d in _days(_stage_folder(lake, stage, spec.name)):
                if d not in keep:
                    plan.removals.append(Removal(_stage_folder(lake, stage, spec.name) / f"dt={d}", f"{stage} day",
                                                 f"older than the {policy.data_days} data days kept"))
        runs = lake.runs() / spec.name
        kept_runs = [d for d in _days(runs) if d >= _cutoff(plan.newest, policy.run_days)]
        plan.kept["run days"] = kept_runs
        plan.removals += [Removal(runs / f"dt={d}", "run day", f"older than the {policy.run_days} run days kept")
                          for d in _days(runs) if d not in kept_runs]
    plan.removals += _adhoc_runs(lake, spec.name, policy.run_days, now or dt.datetime.now(dt.timezone.utc))
    plan.removals += _versions(Registry(lake, model), policy, plan)
    plan.freed_bytes = freed_bytes([r.path for r in plan.removals])
    return plan


def _adhoc_runs(lake: Lake, dataset: str, run_days: int, now: dt.datetime) -> list[Removal]:
    folder = lake.runs() / dataset / "adhoc"
    if not folder.is_dir():
        return []
    oldest = now - dt.timedelta(days=run_days)
    return [Removal(p, "ad-hoc run", f"written more than {run_days} days ago")
            for p in sorted(folder.iterdir())
            if not p.name.startswith(".") and dt.datetime.fromtimestamp(p.stat().st_mtime, dt.timezone.utc) < oldest]


def _versions(registry: Registry, policy, plan: GcPlan) -> list[Removal]:
    versions = registry.versions()
    if not versions:
        return []
    history = registry.champion_history()[-policy.champions:]
    keep = set(versions[-policy.versions:]) | set(registry.aliases().values()) | set(history)
    plan.kept["model versions"] = sorted(keep, key=lambda v: int(v[1:]))
    return [Removal(registry.root / v, "model version",
                    f"not among the newest {policy.versions}, no alias, not in the last {policy.champions} champions")
            for v in versions if v not in keep]


def freed_bytes(paths: list[Path]) -> int:
    """Bytes freed by deleting ``paths``: a file counts when every hard link to it is among them."""
    links: Counter = Counter()
    sizes: dict[tuple[int, int], int] = {}
    nlinks: dict[tuple[int, int], int] = {}
    for top in paths:
        for f in ([top] if top.is_file() else top.rglob("*")):
            if f.is_file() and not f.is_symlink():
                st = f.stat()
                key = (st.st_dev, st.st_ino)
                links[key] += 1
                sizes[key], nlinks[key] = st.st_size, st.st_nlink
    return sum(sizes[k] for k, n in links.items() if n >= nlinks[k])


def apply_gc(plan: GcPlan, lake: Lake, reason: str = "retention") -> int:
    """Remove what ``plan`` lists (versions through the registry); returns the bytes freed.

    Call under the dataset's lock (``flows.guard.dataset_lock``): no run may be writing.
    """
    versions = [r.path.name for r in plan.removals if r.kind == "model version"]
    Registry(lake, plan.model).remove(versions, f"{reason}: dea gc")
    for r in plan.removals:
        if r.kind != "model version" and r.path.exists():
            remove_tree(r.path)
    return plan.freed_bytes


def lake_bytes(root: Path, skip: tuple[str, ...] = ("prefect", "locks")) -> int:
    """Disk use of a lake (each hard-linked file once), without Prefect's database and the locks."""
    if not is_local(root):
        return sum(tree_bytes(p) for p in root.iterdir() if p.name not in skip)
    seen: set[tuple[int, int]] = set()
    total = 0
    for folder, dirs, files in os.walk(root):
        if Path(folder) == Path(root):
            dirs[:] = [d for d in dirs if d not in skip]
        for name in files:
            st = os.lstat(os.path.join(folder, name))
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total


def describe(plan: GcPlan) -> list[str]:
    """The plan in lines: one per removal kind with counts, then what is kept."""
    by_kind = Counter(r.kind for r in plan.removals)
    lines = [f"  {kind:15} {n:5d} to remove" for kind, n in sorted(by_kind.items())]
    for what, items in plan.kept.items():
        span = f"{items[0]}..{items[-1]}" if items else "none"
        lines.append(f"  kept {what}: {len(items)} ({span})")
    return lines

