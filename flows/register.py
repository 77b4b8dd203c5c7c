"""Flow ``register``: a new registry version for the candidate; champion only when it wins.

``dea_model.candidates.register_candidate`` reads the candidate's run folder and its evaluation,
registers it under ``models/<name>/`` with its lineage and the feature manifest it was trained
with, then applies the promotion rule: promoted to ``champion``, or kept as ``challenger``.
Skipped when this training run was already registered for this date.
"""

from __future__ import annotations

from prefect import flow, get_run_logger, runtime

from dea_model import runs
from dea_model.candidates import read_evaluation, register_candidate
from dea_model.registry import Registry
from flows.guard import dataset_lock
from flows.params import (DAILY_TRAIN, DatasetName, Day, Force, Home, Promotion, PromotionRule, RunDate,
                          SpecOverrides, Training, Window)
from flows.reports import artifact_key, publish, table


def _registry_table(registry: Registry) -> str:
    rows = [{"version": v.version, "aliases": ", ".join(v.aliases), "eval_date": v.lineage.get("eval_date"),
             "auc": v.metrics.get("auc"), "gauc": v.metrics.get("gauc"), "logloss": v.metrics.get("logloss")}
            for v in registry.list_versions()[-10:]]
    return table(rows, ["version", "aliases", "eval_date", "auc", "gauc", "logloss"])


@flow(name="register")
def register_flow(dataset: DatasetName = "synthetic", date: RunDate = None, window: Window = 3,
                  train: Training = DAILY_TRAIN, promotion: PromotionRule = Promotion(),
                  force: Force = False, home: Home = None, spec_overrides: SpecOverrides = None) -> dict:
    """Register the candidate trained for ``date`` and promote it when it beats the champion."""
    log = get_run_logger()
    day = Day.open(dataset, date, home, spec_overrides)
    model_dir = runs.run_dir(day.lake, day.dataset, day.date, train, window)
    evaluation = read_evaluation(model_dir, day.date, day.dataset)
    registry = Registry(day.lake, promotion.name_for(day.dataset))
    context = {"train_config_hash": train.config_hash(), "flow_run_id": runtime.flow_run.id,
               "root_flow_run_id": runtime.flow_run.root_flow_run_id}
    with dataset_lock(day.lake, day.dataset):
        done = register_candidate(registry, day.lake, model_dir, evaluation, auc_tolerance=promotion.auc_tolerance,
                                  min_gain=promotion.min_gain, context=context, force=force)
    version = done.version
    log.info("%s %s %s: %s (%s)", "candidate" if done.skipped else "registered", registry.name, version.version,
             "already registered, skipped" if done.skipped else
             "promoted to champion" if done.promoted else "kept as challenger", done.reason)
    champion = registry.champion()
    publish(artifact_key("registry", registry.name),
            f"# Registry `{registry.name}`: {version.version} {'promoted' if done.promoted else 'not promoted'}\n\n"
            f"{done.reason}.\n\nChampion: **{champion.version if champion else 'none'}**, at `{registry.root}`.\n\n"
            + _registry_table(registry), f"registry entry of {registry.name} for {day.dataset} {day.date}")
    return {"stage": "register", "version": version.version, "promoted": done.promoted, "reason": done.reason,
            "skipped": done.skipped, "champion": champion.version if champion else None, "path": str(version.path)}


if __name__ == "__main__":
    print(register_flow())
