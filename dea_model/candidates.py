"""A candidate's way into the registry: its evaluation beside the champion and the baselines, the
checks before it is registered, its lineage, and the promotion rule (``dea_model.registry.decide``)
applied: champion when it wins, else challenger.

A candidate is a training run folder (``dea_model.runs``). ``evaluate_candidate`` writes
``<run>.eval/evaluation.json`` (``candidate``, ``champion`` and ``baselines`` metrics on one day)
with a completion record; ``register_candidate`` reads it. Both skip work already done: the same
candidate, day and champion, or a run already registered for that day (``Registry.find_run``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from dea_model.registry import ModelVersion, Registry, decide
from dea_model.runs import CONFIG, EVALUATION, WEIGHTS, eval_dir, read
from dea_model.scoring import baselines, evaluate, features_for_model
from features.hashing import HASH_SPEC_VERSION
from features.lake import (Lake, atomic_dir, code_version, fingerprint, make_record, read_record, up_to_date,
                           write_json_atomic, write_record)
from features.manifest import Manifest
from features.spec import DatasetSpec
from validation.gate import VERDICT_FILE, read_verdict


@dataclass(frozen=True)
class Registration:
    version: ModelVersion
    promoted: bool
    reason: str
    skipped: bool = False


def run_digest(model_dir: Path) -> str:
    """The digest of a run folder's completion record: what identifies the candidate."""
    record = read_record(model_dir)
    if record is None:
        raise FileNotFoundError(f"{model_dir} is not a complete training run (no _COMPLETE.json)")
    return record["digest"]


def evaluate_candidate(spec: DatasetSpec, lake: Lake, date: str, model_dir: Path, registry: Registry,
                       split: tuple[list[str], str], *, force: bool = False) -> tuple[dict, bool]:
    """(the evaluation, whether it was skipped): the candidate in ``model_dir``, the registry's
    champion (on the day's features under its own manifest) and the baselines, all on ``date``;
    ``split`` is the candidate's (training days, validation day)."""
    if not (model_dir / WEIGHTS).exists():
        raise FileNotFoundError(f"dataset {spec.name!r}, date {date}: no trained candidate at {model_dir}; "
                                f"run the train stage with the same config and window first")
    champion, out = registry.champion(), eval_dir(model_dir)
    record = make_record("evaluate", {"candidate": fingerprint(model_dir),
                                      "features": fingerprint(lake.features(spec.name, date)),
                                      "champion": champion.version if champion else "none"}, "")
    if not force and (up_to_date(out, record) or _registered_since(model_dir, record, registry, date)):
        return json.loads((out / EVALUATION).read_text()), True
    result = {"dataset": spec.name, "date": date, "model_dir": str(model_dir),
              "candidate": evaluate(model_dir, lake, spec.name, date), "champion": None,
              "baselines": baselines(lake, spec.name, *split, date)}
    if champion is not None:
        features = features_for_model(spec, lake, date, champion)
        result["champion"] = {"version": champion.version, **evaluate(champion.path, features, spec.name, date)}
    with atomic_dir(out) as tmp:
        write_json_atomic(tmp / EVALUATION, result)
        write_record(tmp, record)
    return result, False


def _registered_since(model_dir: Path, record: dict, registry: Registry, date: str) -> bool:
    """True when the stored evaluation is of this very candidate on this day, and the candidate has
    been registered since (so the champion it was judged against has moved because of it)."""
    old = read_record(eval_dir(model_dir))
    if old is None or any(old["inputs"][k] != record["inputs"][k] for k in ("candidate", "features")):
        return False
    return registry.find_run(run_digest(model_dir), date) is not None


def read_evaluation(model_dir: Path, date: str, dataset: str) -> dict:
    """The evaluation ``evaluate_candidate`` wrote for the run ``model_dir``."""
    path = eval_dir(model_dir) / EVALUATION
    if not path.exists():
        raise FileNotFoundError(f"dataset {dataset!r}, date {date}: no evaluation at {path}; run the evaluate stage first")
    return json.loads(path.read_text())


def gate_summary(lake: Lake, dataset: str, date: str) -> dict | None:
    """What a model's lineage keeps of the day's gate verdict."""
    doc = read_verdict(lake, dataset, date)
    if doc is None:
        return None
    return {"verdict": doc["verdict"], "checks_verdict": doc["checks_verdict"], "override": doc["override"],
            "path": str(lake.validation(dataset, date) / VERDICT_FILE)}


def check_registrable(registry: Registry, evaluation: dict, manifest: Manifest, trained: dict, model_dir: Path) -> None:
    """Refuse a registration the evaluation no longer supports: the champion moved since it was
    judged against, or the feature manifest changed since the run was trained."""
    where = f"dataset {trained['dataset']!r}, date {evaluation['date']}"
    champion = registry.champion()
    judged = (evaluation["champion"] or {}).get("version")
    if (champion.version if champion else None) != judged:
        raise RuntimeError(f"{where}: the evaluation compared against champion {judged}, but the champion is now "
                           f"{champion and champion.version}; re-run evaluate")
    if manifest.feature_signature != trained["feature_signature"]:
        raise RuntimeError(f"{where}: the feature manifest changed since {model_dir} was trained; re-run train")


def register_candidate(registry: Registry, lake: Lake, model_dir: Path, evaluation: dict, *,
                       auc_tolerance: float, min_gain: float, context: dict | None = None,
                       force: bool = False) -> Registration:
    """Register the run ``model_dir`` with its evaluation and lineage (plus ``context``, e.g. the
    flow run's ids), then promote it when it beats the champion, else make it the challenger."""
    digest, date = run_digest(model_dir), evaluation["date"]
    done = registry.find_run(digest, date)
    if done is not None and not force:
        return Registration(done, "champion" in done.aliases, "already registered: skipped", skipped=True)
    trained = read(model_dir, CONFIG)
    manifest = Manifest.of(lake, trained["dataset"])
    check_registrable(registry, evaluation, manifest, trained, model_dir)
    decision = decide(evaluation["candidate"], evaluation["champion"], auc_tolerance=auc_tolerance, min_gain=min_gain)
    lineage = {"dataset": trained["dataset"], "model": trained["model"], "train_dates": trained["train_dates"],
               "valid_date": trained["valid_date"], "eval_date": date, "manifest_digest": manifest.digest,
               "feature_signature": trained["feature_signature"], "hash_spec_version": HASH_SPEC_VERSION,
               "gate": gate_summary(lake, trained["dataset"], date), "code_version": code_version(),
               "run_dir": str(model_dir), "run_digest": digest, **(context or {}), "decision": decision.reason}
    version = registry.register(model_dir, metrics=evaluation["candidate"], lineage=lineage,
                                files={"manifest.json": lake.manifest(trained["dataset"])})
    if decision.promote:
        version = registry.promote(version.version, decision.reason)
    else:
        registry.set_alias("challenger", version.version, decision.reason)
        version = registry.show(version.version)
    return Registration(version, decision.promote, decision.reason)
