"""The schedules run by themselves: a real Prefect server WITH its scheduler service.

One ``prefect server start`` on a free loopback port, its scheduler looping every 2 s:

1. ``deployments/prefect.yaml`` deployed as deployments/README.md does it -> the server's own scheduler
   creates SCHEDULED runs of ``dea-daily/retrain`` at 06:00 UTC on consecutive days, and the server log
   holds no scheduler error. (With SQLAlchemy 2.1 the prefect 3.8 scheduler fails on every loop with
   ``InvalidRequestError: Can't evaluate bulk DML statement`` and the cron never gets a run: this test
   fails there.)
2. A copy of the ``ingest`` stage's deployment on a 10 s interval with tiny parameters, on its own
   process pool (so its worker never picks up a real cron run) -> a process worker runs a scheduled
   run to Completed with nobody triggering it; that run was created by the schedule.

About a minute on two cores. Every process started here is killed, with its process group, when the
fixture ends (tests/prefect_server.py).
"""

from __future__ import annotations

import datetime as dt
import time

import pytest
import yaml

from features.lake import Lake
from prefect_server import REPO, PrefectServer

pytestmark = [pytest.mark.integration, pytest.mark.slow]

LOOP_SECONDS = 2
DATE = "2026-01-05"
SOURCE = {"kind": "synthetic", "options": {"rows_per_day": 4000, "seed": 7}}
POOL = "dea-schedule-test"
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    env = {"PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": str(LOOP_SECONDS),
           "PREFECT_SERVER_SERVICES_SCHEDULER_RECENT_DEPLOYMENTS_LOOP_SECONDS": str(LOOP_SECONDS)}
    with PrefectServer(tmp_path_factory.mktemp("prefect-scheduler"), scheduler=True, env=env) as srv:
        srv.deploy()
        yield srv


def _deployment(server: PrefectServer, name: str) -> dict:
    return server.api("GET", f"/deployments/name/{name}")


def _runs(server: PrefectServer, deployment_id: str) -> list[dict]:
    return server.api("POST", "/flow_runs/filter", {"deployments": {"id": {"any_": [deployment_id]}},
                                                    "sort": "EXPECTED_START_TIME_ASC", "limit": 200})


def _utc(stamp: str) -> dt.datetime:
    return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone(dt.timezone.utc)


def _scheduler_errors(log: str) -> list[str]:
    return [line for line in log.splitlines()
            if any(s in line for s in ("Traceback", "InvalidRequestError", "Error scheduling"))]


def _made_by_schedule(run: dict, deployment: dict) -> bool:
    schedule_ids = {s["id"] for s in deployment["schedules"]}
    return (run["auto_scheduled"] is True
            and (run.get("created_by") or {}).get("type") == "SCHEDULE"
            and run["created_by"]["id"] in schedule_ids
            and (run.get("idempotency_key") or "").startswith(f"scheduled {deployment['id']} "))


def test_cron_creates_runs_at_six_utc_on_consecutive_days(server):
    started = dt.datetime.now(dt.timezone.utc)
    retrain = _deployment(server, "dea-daily/retrain")
    assert [(s["schedule"].get("cron"), s["schedule"].get("timezone"), s["active"]) for s in retrain["schedules"]] \
        == [("0 6 * * *", "UTC", True)]

    deadline = time.monotonic() + 60
    while True:
        scheduled = [r for r in _runs(server, retrain["id"]) if r["state_type"] == "SCHEDULED"]
        if len(scheduled) >= 3 or time.monotonic() > deadline:
            break
        time.sleep(1)
    time.sleep(2 * LOOP_SECONDS + 1)        # a few more scheduler loops, for the log check below
    log = server.log()
    assert len(scheduled) >= 3, (f"the scheduler made {len(scheduled)} runs of dea-daily/retrain in 60 s; "
                                 "scheduler errors:\n" + "\n".join(_scheduler_errors(log)[:20])
                                 + f"\n--- server.log ---\n{log[-4000:]}")
    assert all(_made_by_schedule(r, retrain) for r in scheduled), scheduled
    starts = [_utc(r["expected_start_time"]) for r in scheduled]
    assert all((t.hour, t.minute, t.second, t.microsecond) == (6, 0, 0, 0) for t in starts), starts
    assert all(b - a == dt.timedelta(days=1) for a, b in zip(starts, starts[1:])), starts
    assert started < starts[0] <= started + dt.timedelta(days=1), (started, starts)
    assert not _scheduler_errors(log), "\n".join(_scheduler_errors(log)[:20]) + f"\n--- server.log ---\n{log[-4000:]}"


def _interval_copy(path) -> None:
    """deployments/prefect.yaml with only the ``ingest`` stage, every 10 s, tiny, on POOL."""
    doc = yaml.safe_load((REPO / "deployments" / "prefect.yaml").read_text())
    ingest = next(d for d in doc["deployments"] if d["entrypoint"] == "flows/ingest.py:ingest_flow")
    ingest = {**ingest, "name": "every-10s", "schedules": [{"interval": 10}], "work_pool": {"name": POOL},
              "parameters": {"dataset": "synthetic", "date": DATE, "window": 1, "spec_overrides": {"source": SOURCE}}}
    path.write_text(yaml.safe_dump({**doc, "deployments": [ingest]}, sort_keys=False))


def test_interval_schedule_runs_to_completed_on_a_worker(server, tmp_path):
    _interval_copy(tmp_path / "prefect.yaml")
    server.deploy(tmp_path / "prefect.yaml", pool=POOL)
    server.start_worker(POOL, "--limit", "1")
    deployment = _deployment(server, "ingest/every-10s")

    deadline = time.monotonic() + 150
    while True:
        runs = _runs(server, deployment["id"])
        done = [r for r in runs if r["state_type"] in FINAL]
        if done or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert done, f"no scheduled run finished in 150 s: {[(r['name'], r['state_type']) for r in runs]}\n{server.logs_tail()}"
    run = done[0]
    assert run["state_type"] == "COMPLETED", f"{run['name']}: {run['state_type']}\n{server.logs_tail()}"
    assert _made_by_schedule(run, deployment), run
    assert run["parameters"]["date"] == DATE
    assert not [r for r in runs if not _made_by_schedule(r, deployment)], "a run not made by the schedule"
    assert Lake(server.lake_root).dates("raw", "synthetic") == ["2026-01-04", DATE]
