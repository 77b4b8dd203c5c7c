"""Flow ``gc``: apply the dataset's retention policy (``dea_model.retention``); the deployment
``gc/weekly`` runs it every Sunday. Dry run unless ``apply``: the report says what would go."""

from __future__ import annotations

from typing import Annotated

from prefect import flow, get_run_logger

from dea_model.retention import apply_gc, describe, lake_bytes, plan_gc
from features.lake import Lake
from features.spec import load_spec
from flows.guard import dataset_lock
from flows.params import DatasetName, Home, ModelName, SpecOverrides, doc
from flows.reports import artifact_key, publish, table


Apply = Annotated[bool, doc("remove what the policy no longer keeps; off = only report it (dry run)")]
DailyWindow = Annotated[int, doc("the daily runs' training window: the days the next run needs are kept")]


@flow(name="gc")
def gc_flow(dataset: DatasetName = "synthetic", apply: Apply = False, window: DailyWindow = 3,
            model_name: ModelName = None, home: Home = None, spec_overrides: SpecOverrides = None) -> dict:
    """Remove what the ``retention`` block of the dataset's spec no longer keeps (old data days, run
    folders, model versions); ``apply=False`` only reports it. ``window`` is the daily runs' window."""
    log = get_run_logger()
    spec, lake = load_spec(dataset, spec_overrides), Lake.default(home)
    with dataset_lock(lake, spec.name):
        plan = plan_gc(spec, lake, window=window, model=model_name)
        if apply:
            apply_gc(plan, lake)
    after = lake_bytes(lake.root)
    verb = "freed" if apply else "would free (dry run)"
    for line in describe(plan):
        log.info("%s", line)
    log.info("gc %s: %d removal(s), %s %.1f MB; lake now %.1f MB", spec.name, len(plan.removals), verb,
             plan.freed_bytes / 1e6, after / 1e6)
    rows = [{"kind": r.kind, "path": str(r.path.relative_to(lake.root)), "why": r.why} for r in plan.removals]
    publish(artifact_key("gc", spec.name), f"# Retention of {spec.name}: {len(rows)} removal(s), {verb} "
            f"{plan.freed_bytes / 1e6:,.1f} MB\n\n" + table(rows[:200], ["kind", "path", "why"]),
            f"retention (gc) of {spec.name}")
    return {"stage": "gc", "applied": apply, "removals": len(plan.removals), "freed_bytes": plan.freed_bytes,
            "lake_bytes": after, "kept": plan.kept}


if __name__ == "__main__":
    print(gc_flow())
