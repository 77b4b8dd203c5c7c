"""Flow ``register``: a new registry version for the candidate; champion only when it wins.

Reads the candidate's training folder and its evaluation (``flows.evaluate``), registers it under
``models/<name>/`` with its lineage and the feature manifest it was trained with, then applies the
promotion rule (``dea_model.registry.decide``): promoted to ``champion``, or kept as ``challenger``.
Skipped when this training run was already registered for this date.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from flows import settings

settings.apply()

from prefect import flow, get_run_logger, runtime  # noqa: E402

from dea_model.config import TrainConfig  # noqa: E402
from dea_model.registry import Registry, decide  # noqa: E402
from features.hashing import HASH_SPEC_VERSION  # noqa: E402
from features.lake import code_version, read_record  # noqa: E402
from flows.evaluate import EVALUATION, eval_dir  # noqa: E402
from flows.guard import dataset_lock  # noqa: E402
from flows.params import DAILY_TRAIN, Day, Promotion  # noqa: E402
from flows.reports import artifact_key, publish, table  # noqa: E402
from flows.train import run_dir  # noqa: E402


def gate_verdict(day: Day) -> dict | None:
    """The validation gate's verdict of the date, when there is one."""
    from flows.validate import read_verdict

    return read_verdict(day)


@flow(name="register")
def register_flow(dataset: str = "synthetic", date: dt.date | None = None, window: int = 3,
                  train: TrainConfig = DAILY_TRAIN, promotion: Promotion = Promotion(),
                  force: bool = False, home: str | None = None,
                  spec_overrides: dict[str, Any] | None = None) -> dict:
    """Register the candidate trained for ``date`` and promote it when it beats the champion."""
    from dea_model.data import feature_signature, read_manifest

    log = get_run_logger()
    day = Day.open(dataset, date, home, spec_overrides)
    model_dir = run_dir(day, train, window)
    evaluation_path = eval_dir(model_dir) / EVALUATION
    if not evaluation_path.exists():
        raise FileNotFoundError(f"dataset {day.dataset!r}, date {day.date}: no evaluation at {evaluation_path}; "
                                f"run the evaluate stage first")
    evaluation = json.loads(evaluation_path.read_text())
    trained = json.loads((model_dir / "config.json").read_text())
    run_digest = read_record(model_dir)["digest"]
    registry = Registry(day.lake, promotion.name_for(day.dataset))
    with dataset_lock(day.lake, day.dataset):
        done = [v for v in registry.list_versions()
                if v.lineage.get("run_digest") == run_digest and v.lineage.get("eval_date") == day.date]
        if done and not force:
            version, promoted = done[-1], "champion" in done[-1].aliases
            reason = "already registered: skipped"
            log.info("candidate %s is already registered as %s %s: skipped", model_dir, registry.name, version.version)
        else:
            champion = registry.champion()
            judged = (evaluation["champion"] or {}).get("version")
            if (champion.version if champion else None) != judged:
                raise RuntimeError(f"dataset {day.dataset!r}, date {day.date}: the evaluation compared against champion "
                                   f"{judged}, but the champion is now {champion and champion.version}; re-run evaluate")
            manifest = read_manifest(day.lake, day.dataset)
            if feature_signature(manifest) != trained["feature_signature"]:
                raise RuntimeError(f"dataset {day.dataset!r}: the feature manifest changed since {model_dir} was trained; "
                                   f"re-run train for {day.date}")
            decision = decide(evaluation["candidate"], evaluation["champion"],
                              auc_tolerance=promotion.auc_tolerance, min_gain=promotion.min_gain)
            lineage = {
                "dataset": day.dataset, "model": trained["model"], "train_dates": trained["train_dates"],
                "valid_date": trained["valid_date"], "eval_date": day.date,
                "manifest_digest": manifest["record"]["digest"], "feature_signature": trained["feature_signature"],
                "hash_spec_version": HASH_SPEC_VERSION, "gate": gate_verdict(day), "code_version": code_version(),
                "train_config_hash": train.config_hash(), "run_dir": str(model_dir), "run_digest": run_digest,
                "flow_run_id": runtime.flow_run.id, "root_flow_run_id": runtime.flow_run.root_flow_run_id,
                "decision": decision.reason}
            version = registry.register(model_dir, metrics=evaluation["candidate"], lineage=lineage,
                                        files={"manifest.json": day.lake.manifest(day.dataset)})
            if decision.promote:
                version = registry.promote(version.version, decision.reason)
            else:
                registry.set_alias("challenger", version.version, decision.reason)
                version = registry.show(version.version)
            promoted, reason = decision.promote, decision.reason
            log.info("registered %s %s: %s (%s)", registry.name, version.version,
                     "promoted to champion" if promoted else "kept as challenger", reason)
    champion = registry.champion()
    rows = [{"version": v.version, "aliases": ", ".join(v.aliases), "eval_date": v.lineage.get("eval_date"),
             "auc": v.metrics.get("auc"), "gauc": v.metrics.get("gauc"), "logloss": v.metrics.get("logloss")}
            for v in registry.list_versions()[-10:]]
    publish(artifact_key("registry", registry.name),
            f"# Registry `{registry.name}`: {version.version} {'promoted' if promoted else 'not promoted'}\n\n"
            f"{reason}.\n\nChampion: **{champion.version if champion else 'none'}**, at `{registry.root}`.\n\n"
            + table(rows, ["version", "aliases", "eval_date", "auc", "gauc", "logloss"]),
            f"registry entry of {registry.name} for {day.dataset} {day.date}")
    return {"stage": "register", "version": version.version, "promoted": promoted, "reason": reason,
            "skipped": bool(done and not force), "champion": champion.version if champion else None,
            "path": str(version.path)}


if __name__ == "__main__":
    print(register_flow())
