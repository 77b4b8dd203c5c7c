"""Flow ``evaluate``: score the candidate on the date, beside the champion and two baselines.

All on the same day's rows (``dea_model.candidates.evaluate_candidate``): the candidate; the current
champion (with the feature IDs of its own manifest); ``prior``, the training window's CTR for every
row; ``logistic``, a logistic regression on the same IDs (``dea_model.logistic``); and, when the rows carry their true click probability (synthetic ``p_true``), ``oracle``, the
ceiling of any model. Written beside the run as ``<run>.eval/evaluation.json``; skipped when the
candidate, the day and the champion are unchanged.
"""

from __future__ import annotations

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from dea_model import runs
from dea_model.registry import Registry
from flows.guard import dataset_lock
from flows.params import (DAILY_TRAIN, DatasetName, Day, Force, Home, Promotion, PromotionRule, RunDate,
                          SpecOverrides, Training, Window)
from flows.reports import artifact_key, publish, table
from flows.summary import EVALUATION_COLUMNS, evaluation_rows


@task(cache_policy=NO_CACHE)
def score(day: Day, model_dir, registry: Registry, window: int, force: bool) -> tuple[dict, bool]:
    from dea_model.candidates import evaluate_candidate

    return evaluate_candidate(day.spec, day.lake, day.date, model_dir, registry, day.split(window), force=force)


@flow(name="evaluate")
def evaluate_flow(dataset: DatasetName = "synthetic", date: RunDate = None, window: Window = 3,
                  train: Training = DAILY_TRAIN, promotion: PromotionRule = Promotion(),
                  force: Force = False, home: Home = None, spec_overrides: SpecOverrides = None) -> dict:
    """Metrics of the candidate trained for ``date`` (``train`` config, ``window``) and of the
    champion of the dataset's registered model, both on ``date``."""
    log = get_run_logger()
    day = Day.open(dataset, date, home, spec_overrides)
    model_dir = runs.run_dir(day.lake, day.dataset, day.date, train, window)
    registry = Registry(day.lake, promotion.name_for(day.dataset))
    with dataset_lock(day.lake, day.dataset):
        result, skipped = score(day, model_dir, registry, window, force)
    if skipped:
        log.info("evaluation of %s is up to date (same candidate, day and champion): skipped", model_dir)
    rows = evaluation_rows(result, train.model)
    for r in rows:
        log.info("%s on %s: AUC %.4f GAUC %.4f logloss %.4f", r["model"], day.date, r["auc"], r["gauc"], r["logloss"])
    path = runs.eval_dir(model_dir) / runs.EVALUATION
    publish(artifact_key("evaluate", day.dataset),
            f"# Evaluation on {day.dataset} {day.date}\n\n" + table(rows, EVALUATION_COLUMNS) + f"\n\nCandidate `{model_dir}`.",
            f"candidate vs champion vs baselines on {day.dataset} {day.date}")
    return {"stage": "evaluate", "path": str(path), "skipped": skipped, **result}


if __name__ == "__main__":
    print(evaluate_flow())
