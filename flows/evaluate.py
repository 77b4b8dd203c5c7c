"""Flow ``evaluate``: score the candidate on the date, beside the champion and two baselines.

All on the same day's rows: the candidate; the current champion (with the feature IDs of its own
manifest, see ``features_for_model``); ``prior``, the training window's CTR for every row (what
knowing nothing but the base rate gives); and, when the rows carry their true click probability
(synthetic ``p_true``), ``oracle``, the ceiling of any model. Written to
``runs/<dataset>/dt=<date>/<candidate>.eval/evaluation.json`` with a completion record (skipped when
the candidate, the day and the champion are unchanged).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from flows import settings

settings.apply()

import numpy as np  # noqa: E402
import pyarrow.dataset as pds  # noqa: E402
from prefect import flow, get_run_logger, task  # noqa: E402
from prefect.cache_policies import NO_CACHE  # noqa: E402

from dea_model.config import TrainConfig  # noqa: E402
from dea_model.registry import Registry  # noqa: E402
from features.lake import (Lake, atomic_dir, fingerprint, make_record, read_record,  # noqa: E402
                           up_to_date, write_json_atomic, write_record)
from flows.featurize import features_for_model  # noqa: E402
from flows.guard import dataset_lock  # noqa: E402
from flows.params import DAILY_TRAIN, Day, Promotion  # noqa: E402
from flows.reports import artifact_key, publish, table  # noqa: E402
from flows.train import run_dir, split_window  # noqa: E402

EVALUATION = "evaluation.json"
COLUMNS = ["model", "auc", "gauc", "logloss", "calibration", "rows"]


def eval_dir(model_dir: Path) -> Path:
    return model_dir.with_name(model_dir.name + ".eval")


def _columns(lake: Lake, dataset: str, dates: list[str], columns: list[str]) -> dict[str, np.ndarray]:
    files = [str(f) for d in dates for f in sorted(lake.features(dataset, d).glob("*.parquet"))]
    data = pds.dataset(files, format="parquet").to_table(columns=columns)
    return {c: data[c].to_numpy() for c in columns}


def baselines(day: Day, train_dates: list[str]) -> dict[str, dict]:
    """``prior`` (training CTR for every row) and, with a ``p_true`` column, ``oracle``."""
    from dea_model.metrics import ctr_metrics

    prior = float(_columns(day.lake, day.dataset, train_dates, ["label"])["label"].mean())
    has_oracle = "p_true" in day.spec.passthrough
    cols = _columns(day.lake, day.dataset, [day.date], ["label", "group"] + (["p_true"] if has_oracle else []))
    y, g = cols["label"], cols["group"]
    out = {"prior": ctr_metrics(y, np.full(y.shape, prior), g)}
    if has_oracle:
        out["oracle"] = ctr_metrics(y, cols["p_true"].astype(np.float64), g)
    return out


def _registered_since(out: Path, record: dict, registry: Registry, day: Day) -> bool:
    """True when ``out`` evaluated this very candidate on this day, and the candidate has been
    registered since (so the champion it was judged against has moved because of it)."""
    old = read_record(out)
    if old is None or any(old["inputs"][k] != record["inputs"][k] for k in ("candidate", "features")):
        return False
    run = old["inputs"]["candidate"].removeprefix("rec:").split("+")[0]   # the run record's digest
    return any(v.lineage.get("run_digest") == run and v.lineage.get("eval_date") == day.date
               for v in registry.list_versions())


@task(cache_policy=NO_CACHE)
def score(model_dir: Path, lake: Lake, dataset: str, date: str) -> dict:
    from dea_model.train import evaluate

    return evaluate(model_dir, lake, dataset, date)


@flow(name="evaluate")
def evaluate_flow(dataset: str = "synthetic", date: dt.date | None = None, window: int = 3,
                  train: TrainConfig = DAILY_TRAIN, promotion: Promotion = Promotion(),
                  force: bool = False, home: str | None = None,
                  spec_overrides: dict[str, Any] | None = None) -> dict:
    """Metrics of the candidate trained for ``date`` (``train`` config, ``window``) and of the
    champion of the dataset's registered model, both on ``date``."""
    log = get_run_logger()
    day = Day.open(dataset, date, home, spec_overrides)
    model_dir = run_dir(day, train, window)
    out = eval_dir(model_dir)
    registry = Registry(day.lake, promotion.name_for(day.dataset))
    with dataset_lock(day.lake, day.dataset):
        if not (model_dir / "model.pt").exists():
            raise FileNotFoundError(f"dataset {day.dataset!r}, date {day.date}: no trained candidate at {model_dir}; "
                                    f"run the train stage with the same config and window first")
        champion = registry.champion()
        record = make_record("evaluate", {"candidate": fingerprint(model_dir),
                                          "features": fingerprint(day.lake.features(day.dataset, day.date)),
                                          "champion": champion.version if champion else "none"}, "")
        skipped = not force and (up_to_date(out, record) or _registered_since(out, record, registry, day))
        if skipped:
            log.info("evaluation %s is up to date (same candidate, day and champion): skipped", out)
            result = json.loads((out / EVALUATION).read_text())
        else:
            result = {"dataset": day.dataset, "date": day.date, "model_dir": str(model_dir),
                      "candidate": score(model_dir, day.lake, day.dataset, day.date), "champion": None,
                      "baselines": baselines(day, split_window(day, window)[0])}
            if champion is not None:
                lake = features_for_model(day, champion.path / "manifest.json",
                                          out.with_name(f"{champion.name}-{champion.version}.features"))
                result["champion"] = {"version": champion.version,
                                      **score(champion.path, lake, day.dataset, day.date)}
            with atomic_dir(out) as tmp:
                write_json_atomic(tmp / EVALUATION, result)
                write_record(tmp, record)
    rows = [{"model": f"candidate ({train.model})", **result["candidate"]}]
    if result["champion"]:
        rows.append({"model": f"champion {result['champion']['version']}", **result["champion"]})
    rows += [{"model": name, **m} for name, m in result["baselines"].items()]
    for r in rows:
        log.info("%s on %s: AUC %.4f GAUC %.4f logloss %.4f", r["model"], day.date, r["auc"], r["gauc"], r["logloss"])
    publish(artifact_key("evaluate", day.dataset),
            f"# Evaluation on {day.dataset} {day.date}\n\n" + table(rows, COLUMNS)
            + f"\n\nCandidate `{model_dir}`.", f"candidate vs champion vs baselines on {day.dataset} {day.date}")
    return {"stage": "evaluate", "path": str(out / EVALUATION), "skipped": skipped, **result}


if __name__ == "__main__":
    print(evaluate_flow())
