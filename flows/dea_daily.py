"""Flow ``dea-daily``: ingest -> features -> validate -> train -> evaluate -> register, for one date.

The deployment ``dea-daily/retrain`` runs it every day for yesterday. Every stage is its own
subflow (the same flows the per-stage deployments run) and skips when its outputs are current, so
a re-run after a crash picks up where it stopped and a re-run of a finished day does nothing. A
failing gate (bad data, or a raw day that cannot even be turned into features) ends the run Failed
before training; the champion only moves when the candidate wins. A failed day stays contained:
later runs train, validate and compare new IDs without it (``Day.window``, ``validation.gate.accepted_days``).
The dataset's lock is held for the whole run.
"""

from __future__ import annotations

import time

from prefect import flow, get_run_logger
from prefect.artifacts import create_progress_artifact, update_progress_artifact

from flows.cluster import flow_client
from flows.evaluate import evaluate_flow
from flows.featurize import DayNotBuilt, features_flow
from flows.guard import dataset_lock
from flows.ingest import ingest_flow
from flows.params import (DAILY_TRAIN, Cluster, DaskParams, DatasetName, Day, Force, GateOverride, Home, Promotion,
                          PromotionRule, RunDate, SpecOverrides, Training, Window)
from flows.register import register_flow
from flows.reports import artifact_key
from flows.train import train_flow
from flows.validate import validate_flow

STAGES = ("ingest", "features", "validate", "train", "evaluate", "register")


@flow(name="dea-daily")
def dea_daily(dataset: DatasetName = "synthetic", date: RunDate = None, window: Window = 3,
              train: Training = DAILY_TRAIN, promotion: PromotionRule = Promotion(),
              cluster: Cluster = DaskParams(), gate_override: GateOverride = None,
              force: Force = False, home: Home = None, spec_overrides: SpecOverrides = None) -> dict:
    """Retrain on the ``window`` days before ``date`` (default: yesterday), gate ``date``, evaluate
    the candidate beside the champion on ``date`` and register it (champion only if it wins)."""
    log = get_run_logger()
    day = Day.open(dataset, date, home, spec_overrides)
    common = {"dataset": dataset, "date": day.date, "force": force, "home": home, "spec_overrides": spec_overrides}
    model = {"window": window, "train": train}
    progress = create_progress_artifact(0.0, key=artifact_key("dea-daily", dataset),
                                        description=f"dea-daily stages done for {dataset} {day.date}")
    results: dict[str, dict] = {}
    seconds: dict[str, float] = {}

    def stage(name: str, run, **kwargs) -> dict:
        start = time.perf_counter()
        results[name] = run(**common, **kwargs)
        seconds[name] = round(time.perf_counter() - start, 2)
        update_progress_artifact(progress, 100.0 * len(results) / len(STAGES))
        return results[name]

    with dataset_lock(day.lake, dataset):
        stage("ingest", ingest_flow, window=window)
        with flow_client(cluster):  # one Dask cluster for the feature tables and their statistics
            try:
                stage("features", features_flow, window=window, cluster=cluster)
            except DayNotBuilt as e:  # the gate below records the day as failed, naming the bad file
                log.error("%s", e)
        stage("validate", validate_flow, override=gate_override)
        stage("train", train_flow, **model)
        stage("evaluate", evaluate_flow, **model, promotion=promotion)
        registered = stage("register", register_flow, **model, promotion=promotion)
    log.info("dea-daily %s %s done in %.1f s (%s); champion %s", dataset, day.date, sum(seconds.values()),
             ", ".join(f"{k} {v:.1f} s" for k, v in seconds.items()), registered["champion"])
    return {"dataset": dataset, "date": day.date, "seconds": seconds, **results}


if __name__ == "__main__":
    print(dea_daily())
