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
from prefect.states import Failed
from prefect.utilities.urls import url_for

from flows.cluster import flow_client
from flows.evaluate import evaluate_flow
from flows.featurize import DayNotBuilt, features_flow
from flows.guard import dataset_lock
from flows.ingest import ingest_flow
from flows.params import (DAILY_TRAIN, Cluster, DaskParams, DatasetName, Day, Force, GateOverride, Home, Promotion,
                          PromotionRule, RunDate, SpecOverrides, Training, Window)
from flows.register import register_flow
from flows.reports import artifact_key, publish
from flows.summary import STAGES, DailySummary, stage_skipped
from flows.train import train_flow
from flows.validate import validate_flow


class StageFailed(RuntimeError):
    """A stage of the run ended Failed; the message names the stage and says why."""


def run_stage(summary: DailySummary, name: str, flow_fn, *, contained: type[Exception] | None = None,
              **params) -> dict | None:
    """Run one stage's subflow and record its outcome in ``summary``; raise ``StageFailed`` when it
    fails, unless its exception is ``contained`` (then the run goes on and a later stage judges)."""
    log = get_run_logger()
    number = f"{STAGES.index(name) + 1}/{len(STAGES)}"
    log.info("stage %s %s: started", number, name)
    start = time.perf_counter()
    stage = summary.stages[name]
    stage.status = "running"
    state = flow_fn(**params, return_state=True)
    stage.seconds = round(time.perf_counter() - start, 2)
    stage.run_url = url_for("flow-run", obj_id=state.state_details.flow_run_id)
    if state.is_failed() or state.is_crashed() or state.is_cancelled():
        error = state.result(raise_on_failure=False)
        stage.status, stage.message = "failed", state.message or str(error)
        log.error("stage %s %s: failed after %.1f s", number, name, stage.seconds)
        if contained and isinstance(error, contained):
            return None
        raise StageFailed(f"dea-daily {summary.dataset} {summary.date}: stage {name} failed: {stage.message}")
    stage.result = state.result()
    stage.status = "skipped" if stage_skipped(name, stage.result) else "done"
    log.info("stage %s %s: %s in %.1f s — %s", number, name, stage.status, stage.seconds, stage.detail)
    return stage.result


def publish_summary(summary: DailySummary, day: Day) -> None:
    """The run's summary artifact; a failure to publish it is a warning, never the run's error."""
    try:
        publish(artifact_key("dea-daily", summary.dataset), summary.markdown(day.report_url),
                f"dea-daily {summary.dataset} {summary.date}: verdict, stages, candidate vs champion, reports")
    except Exception as e:  # noqa: BLE001 — the API gone during Ctrl-C must not replace the real error
        get_run_logger().warning("the dea-daily summary artifact was not published: %s", e)


@flow(name="dea-daily")
def dea_daily(dataset: DatasetName = "synthetic", date: RunDate = None, window: Window = 3,
              train: Training = DAILY_TRAIN, promotion: PromotionRule = Promotion(),
              cluster: Cluster = DaskParams(), gate_override: GateOverride = None,
              force: Force = False, home: Home = None, spec_overrides: SpecOverrides = None) -> dict:
    """Retrain on the ``window`` days before ``date`` (default: yesterday), gate ``date``, evaluate
    the candidate beside the champion on ``date`` and register it (champion only if it wins)."""
    day = Day.open(dataset, date, home, spec_overrides)
    common = {"dataset": dataset, "date": day.date, "force": force, "home": home, "spec_overrides": spec_overrides}
    model = {"window": window, "train": train}
    summary = DailySummary(dataset, day.date, train.model)
    try:
        with dataset_lock(day.lake, dataset):
            run_stage(summary, "ingest", ingest_flow, **common, window=window)
            with flow_client(cluster):  # one Dask cluster for the feature tables and their statistics
                # a day that cannot be built is contained: the gate records it as failed, naming the file
                run_stage(summary, "features", features_flow, **common, window=window, cluster=cluster,
                          contained=DayNotBuilt)
            run_stage(summary, "validate", validate_flow, **common, override=gate_override)
            run_stage(summary, "train", train_flow, **common, **model)
            run_stage(summary, "evaluate", evaluate_flow, **common, **model, promotion=promotion)
            run_stage(summary, "register", register_flow, **common, **model, promotion=promotion)
    except StageFailed as failed:
        return Failed(message=str(failed))
    except BaseException as stop:              # the lock, the cluster, Ctrl-C, SIGTERM: said, then raised
        summary.interruption = f"{type(stop).__name__}: {stop}"
        raise
    finally:
        publish_summary(summary, day)
    seconds = {s.name: s.seconds for s in summary.stages.values()}
    get_run_logger().info("dea-daily %s %s done in %.1f s; champion %s", dataset, day.date, sum(seconds.values()),
                          summary.result("register")["champion"])
    return {"dataset": dataset, "date": day.date, "seconds": seconds,
            **{s.name: s.result for s in summary.stages.values()}}


if __name__ == "__main__":
    print(dea_daily())
