"""The flows end to end under ``prefect_test_harness``: dea-daily on tiny synthetic days registers a
champion with reports, a re-run skips every stage, a gate failure ends the run Failed and keeps
the champion, a crash mid-training leaves nothing and a re-run completes; the registry commands
and ``dea predict`` work on the result; the dataset lock serialises processes.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest

from dea_model import runs as run_folders
from dea_model.logistic import C_GRID
from dea_model.registry import Registry
from features.lake import Lake
from features.spec import load_spec
from flows.params import DAILY_TRAIN

D1, D2 = "2026-01-05", "2026-01-06"
# the default world (its generator options), 4000 rows a day: what `dea run --rows 4000` runs
TINY = {"source": {"kind": "synthetic", "options": {
    "rows_per_day": 4000, "seed": 7, "generator": load_spec("synthetic").source.options["generator"]}}}
SETS = ["model=fm", "hparams.embedding_dim=4", "hparams.embedding_rows=4096", "epochs=2", "batch_size=512",
        "lr=0.01", "plot=false"]
TRAIN = DAILY_TRAIN.with_overrides(SETS)


@pytest.fixture(scope="module")
def env(prefect_harness, tmp_path_factory):
    """A lake, and one in-process Dask cluster the flows reuse (instead of one LocalCluster each)."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            Client(cluster):
        yield Lake(tmp_path_factory.mktemp("flows") / "lake")


def _daily(lake: Lake, date: str, **kwargs):
    from flows.dea_daily import dea_daily

    params = {"date": date, "home": str(lake.root), "spec_overrides": TINY, "train": TRAIN, **kwargs}
    return dea_daily(**params, return_state=True)


@pytest.fixture(scope="module")
def runs(env):
    """``dea run`` for D1 (its printed report), then dea-daily for D1 again (its state)."""
    import contextlib
    import io

    from flows.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["--home", str(env.root), "run", "--date", D1, "--rows", "4000"] + [f"--set={s}" for s in SETS])
    return code, out.getvalue(), _daily(env, D1)


@pytest.mark.slow
def test_dea_run_registers_a_champion_and_prints_the_report(env, runs):
    code, printed, _ = runs
    assert code == 0, printed
    assert f"dea-daily synthetic {D1}: Completed" in printed
    assert "ingest" in printed and "4 day(s) written (16,000 rows)" in printed
    assert "v0001 promoted to champion: first model" in printed
    assert "champion v0001 on 2026-01-05: AUC" in printed and "baseline oracle" in printed
    verdict = json.loads((env.validation("synthetic", D1) / "verdict.json").read_text())
    assert verdict["verdict"] in ("pass", "warn")
    assert f"gate summary   {env.validation('synthetic', D1) / 'summary.md'}" in printed
    reg = Registry(env, "synthetic")
    champion = reg.champion()
    assert champion.version == "v0001"
    evaluation = next(env.runs().glob(f"synthetic/dt={D1}/fm-*.eval/evaluation.json"))
    assert f"evaluation     {evaluation}" in printed
    ev = json.loads(evaluation.read_text())
    assert ev["champion"] is None and ev["candidate"]["rows"] == 4000
    assert ev["baselines"]["prior"]["auc"] == pytest.approx(0.5)
    assert ev["baselines"]["oracle"]["auc"] > 0.7              # p_true: the ceiling of any model
    logistic = ev["baselines"]["logistic"]                     # on the same IDs, C picked on the valid day
    assert 0.55 < logistic["auc"] < ev["baselines"]["oracle"]["auc"] and logistic["rows"] == 4000
    assert logistic["C"] in C_GRID and "AUC vs logistic" in printed and "of the oracle's lift" in printed
    lineage = champion.lineage
    assert lineage["train_dates"] == ["2026-01-02", "2026-01-03"] and lineage["valid_date"] == "2026-01-04"
    assert lineage["eval_date"] == D1 and lineage["gate"]["verdict"] == verdict["verdict"]
    assert lineage["flow_run_id"] and lineage["manifest_digest"] == json.loads(env.manifest("synthetic").read_text())["record"]["digest"]
    assert champion.metrics["auc"] == ev["candidate"]["auc"]
    assert (champion.path / "model.pt").is_file() and (champion.path / "manifest.json").is_file()


@pytest.mark.slow
def test_rerun_skips_every_stage(env, runs):
    assert runs[2].is_completed(), runs[2].message
    again = runs[2].result()
    assert again["ingest"]["written"] == {} and len(again["ingest"]["skipped"]) == 4
    assert not again["features"]["refit"] and {d["status"] for d in again["features"]["days"]} == {"skipped"}
    assert again["validate"]["skipped"] and again["train"]["skipped"] and again["evaluate"]["skipped"]
    assert again["register"]["skipped"] and again["register"]["version"] == "v0001"
    assert Registry(env, "synthetic").versions() == ["v0001"]
    assert again["evaluate"]["candidate"] == Registry(env, "synthetic").show("v0001").metrics


def _run_record(state) -> dict:
    """What the UI shows of a flow run: its task runs' states, its subflows' and its own logs, and the
    dea-daily summary artifact it published."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, FlowRunFilter, \
        FlowRunFilterParentFlowRunId, LogFilter, LogFilterFlowRunId

    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=10)                  # logs reach the API in batches
    run_id = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        runs = [run_id] + [r.id for r in client.read_flow_runs(
            flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[run_id])))]
        tasks = {t.name.split("-")[0]: t.state for t in client.read_task_runs(
            flow_run_filter=FlowRunFilter(id={"any_": runs}))}
        logs = [log.message for log in client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=runs)))]
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id])))
    return {"tasks": tasks, "logs": logs, "artifacts": {a.key: a.data for a in artifacts}}


@pytest.mark.slow
def test_gate_failure_fails_the_run_and_keeps_the_champion(env, runs):
    strict = {**TINY, "gate": {"rows": {"min": 10**9, "ratio": None}}}     # no day has a billion rows
    state = _daily(env, D2, spec_overrides=strict)
    assert state.is_failed()
    report = env.validation("synthetic", D2) / "summary.md"
    assert state.message.startswith(
        f"dea-daily synthetic {D2}: stage validate failed: The data-quality gate of synthetic {D2} failed 1 blocking "
        f"check(s): rows observed 4000, bound ≥ 1e+09. Report http://127.0.0.1:4201/validation/synthetic/"
        f"dt={D2}/summary.md"), state.message
    assert f"(file {report})" in state.message and "gate_override='<reason>'" in state.message
    assert json.loads((env.validation("synthetic", D2) / "verdict.json").read_text())["verdict"] == "fail"
    reg = Registry(env, "synthetic")
    assert reg.champion().version == "v0001" and reg.versions() == ["v0001"]
    assert not (env.runs() / "synthetic" / f"dt={D2}").exists()        # stopped before training

    record = _run_record(state)
    assert record["tasks"]["gate"].is_failed() and record["tasks"]["gate"].name == "GateBlocked"
    assert not any("Traceback" in m for m in record["logs"])           # an expected failure, said once
    assert any("stage 3/6 validate: failed after" in m for m in record["logs"])
    summary = record["artifacts"]["dea-daily-synthetic"]
    assert "✗ **failed at validate**: The data-quality gate of synthetic" in summary
    stages = dict(re.findall(r"^\| \[?(\w+)\]?(?:\([^)]*\))? \| ([^|]+) \|", summary, re.MULTILINE))
    assert stages == {"stage": "status", "ingest": "✓ done", "features": "✓ done", "validate": "✗ failed",
                      "train": "· not run", "evaluate": "· not run", "register": "· not run"}, summary


# The promotion rule in the flow: a second dataset on the same lake (the synthetic source under
# another name) grouped by device, ~70 rows a group, so that GAUC on a 4000-row day ranks models as
# AUC does (user_id groups of a row or two make it a coin toss). Eval GAUC on D1: WEAK ~0.58,
# WORSE ~0.52, TRAIN ~0.62.
PROMO = {**TINY, "name": "promotion", "group": "device"}
WEAK = TRAIN.with_overrides(["lr=1e-3", "epochs=1"])          # the first champion
WORSE = TRAIN.with_overrides(["lr=1e-7", "epochs=1"])         # learns nothing


@pytest.mark.slow
def test_a_worse_candidate_stays_challenger_and_a_better_one_becomes_champion(env):
    reg = Registry(env, "promotion")
    first = _daily(env, D1, spec_overrides=PROMO, train=WEAK)
    assert first.is_completed(), first.message
    assert first.result()["register"]["reason"].startswith("first model")
    assert reg.aliases() == {"champion": "v0001"}
    champion = reg.champion()
    weights = champion.weights.read_bytes()

    worse = _daily(env, D1, spec_overrides=PROMO, train=WORSE)
    assert worse.is_completed(), worse.message
    evaluated, registered = worse.result()["evaluate"], worse.result()["register"]
    assert evaluated["champion"]["version"] == "v0001"
    assert evaluated["candidate"]["gauc"] < evaluated["champion"]["gauc"] - 0.02
    assert registered["version"] == "v0002" and not registered["promoted"] and registered["champion"] == "v0001"
    assert "does not beat champion" in reg.show("v0002").lineage["decision"]
    assert reg.aliases() == {"champion": "v0001", "challenger": "v0002"}
    assert reg.champion_history() == ["v0001"]
    assert reg.champion() == champion and champion.weights.read_bytes() == weights      # untouched

    better = _daily(env, D1, spec_overrides=PROMO, train=TRAIN)
    assert better.is_completed(), better.message
    evaluated, registered = better.result()["evaluate"], better.result()["register"]
    assert evaluated["champion"]["version"] == "v0001"
    assert evaluated["candidate"]["gauc"] > evaluated["champion"]["gauc"] + 0.01
    assert registered["version"] == "v0003" and registered["promoted"] and registered["champion"] == "v0003"
    assert reg.show("v0003").lineage["decision"].startswith("GAUC ")
    assert "> champion" in reg.show("v0003").lineage["decision"]
    assert reg.aliases() == {"champion": "v0003", "challenger": "v0002"}
    assert reg.champion_history() == ["v0001", "v0003"]
    assert [v.version for v in reg.list_versions()] == ["v0001", "v0002", "v0003"]


@pytest.mark.slow
def test_crash_while_training_leaves_nothing_and_a_rerun_completes(env, runs, monkeypatch):
    from flows.train import train_flow

    cfg = TRAIN.model_copy(update={"epochs": 1, "plot": True})
    out = run_folders.run_dir(env, "synthetic", D1, cfg, 3)

    def crash(*a, **k):
        raise OSError("disk full while drawing the curve")

    monkeypatch.setattr(run_folders, "plot_curve", crash)
    state = train_flow(date=D1, home=str(env.root), spec_overrides=TINY, train=cfg, return_state=True)
    assert state.is_failed() and not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".tmp")]
    monkeypatch.undo()
    done = train_flow(date=D1, home=str(env.root), spec_overrides=TINY, train=cfg)
    assert not done["skipped"] and (out / "_COMPLETE.json").exists() and (out / "curve.png").exists()


@pytest.mark.slow
def test_registry_commands_and_predict(env, runs, capsys, monkeypatch):
    """The stage commands that need no orchestration (registry, predict, evaluate) start no Prefect
    server and call no Prefect API: both are made to fail here."""
    from flows import server
    from flows.cli import main

    def no_server(*args, **kwargs):
        raise AssertionError("a stage command without orchestration started a Prefect server")

    monkeypatch.setattr(server, "private_server", no_server)
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")          # nothing listens on port 9
    home = ["--home", str(env.root)]
    assert main(home + ["registry", "list"]) == 0
    assert "v0001    champion" in capsys.readouterr().out
    assert main(home + ["registry", "show", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["version"] == "v0001" and shown["lineage"]["eval_date"] == D1
    assert main(home + ["registry", "rollback"]) == 2                  # no previous champion
    assert "no previous champion" in capsys.readouterr().err
    assert main(home + ["predict", "--dataset", "synthetic", "--date", D1]) == 0
    assert "4,000 rows scored with synthetic v0001" in capsys.readouterr().out
    table = pq.read_table(env.root / "predictions" / "synthetic" / f"dt={D1}" / "part-00000.parquet")
    p = table["p_click"].to_numpy()
    assert table.num_rows == 4000 and ((p > 0) & (p < 1)).all()
    trained = [d for d in env.runs().glob(f"synthetic/dt={D1}/fm-*") if not d.name.endswith(".eval")]
    model_dir = max(trained, key=lambda d: d.stat().st_mtime)   # the latest: earlier tests rebuilt the features
    assert main(home + ["evaluate", "--model-dir", str(model_dir), "--date", D1]) == 0
    assert f"on synthetic {D1}" in capsys.readouterr().out


@pytest.mark.slow
def test_backfill_runs_a_stage_for_each_date_in_order(env, runs):
    from flows.backfill import backfill, dates_between

    results = backfill(start="2026-01-04", end=D1, stage="ingest", home=str(env.root), spec_overrides=TINY, window=1)
    assert [r["dates"] for r in results] == [["2026-01-03", "2026-01-04"], ["2026-01-04", D1]]
    assert all(r["written"] == {} for r in results)                      # landed by dea-daily already
    with pytest.raises(ValueError, match="end is before the start"):
        dates_between(D1, "2026-01-01")


HOLD = """
import sys, time
from features.lake import Lake
from flows.guard import dataset_lock
with dataset_lock(Lake.default(sys.argv[1]), "synthetic"):
    print("locked", flush=True)
    sys.stdin.readline()
"""


@pytest.mark.integration
def test_dataset_lock_serialises_processes_and_reenters(tmp_path):
    from flows.guard import LockTimeout, dataset_lock

    lake = Lake(tmp_path)
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        t0 = time.monotonic()
        with pytest.raises(LockTimeout, match="another run has held"):
            with dataset_lock(lake, "synthetic", timeout=0.5, poll=0.1):
                pass
        assert time.monotonic() - t0 >= 0.5
        with dataset_lock(lake, "other", timeout=0.5):               # other datasets are free
            pass
    finally:
        holder.communicate("\n", timeout=30)                         # let it go
    with dataset_lock(lake, "synthetic", timeout=5):                 # free again
        with dataset_lock(lake, "synthetic", timeout=0.1):           # re-entrant in one process
            pass


# --- a bad day stays contained ------------------------------------------------------------------

def test_an_empty_date_is_the_day_before_the_scheduled_run_in_utc(monkeypatch):
    """The cron fires at 06:00 UTC; "yesterday" is UTC's, whatever the worker's time zone, and a run
    that starts hours late still processes the day it was scheduled for."""
    import datetime as dt

    from prefect.runtime import flow_run

    from flows.params import resolve_date

    monkeypatch.setenv("TZ", "Pacific/Kiritimati")                     # UTC+14: local date is a day ahead
    time.tzset()
    try:
        monkeypatch.setattr(flow_run, "scheduled_start_time",
                            dt.datetime(2026, 3, 1, 6, 0, tzinfo=dt.timezone.utc), raising=False)
        assert resolve_date(None) == "2026-02-28"
        assert resolve_date("2026-01-05") == "2026-01-05"
    finally:
        monkeypatch.undo()
        time.tzset()


def test_an_empty_date_on_pseudo_days_is_the_last_pseudo_day_and_says_so(caplog):
    """A source with no dates of its own (frappe: its files cut into 6 pseudo-days from 2026-01-01)
    runs its last day; a dated source and the synthetic logs keep yesterday."""
    from flows.params import Day, resolve_date

    with caplog.at_level("INFO", logger="flows.params"):
        assert Day.open("frappe", None).date == "2026-01-06"
    assert "pseudo-days 2026-01-01..2026-01-06 (no dates of its own): no date given, running its last, 2026-01-06" \
        in caplog.text
    assert Day.open("frappe", "2026-01-04").date == "2026-01-04"
    avazu = load_spec("avazu")
    dated = avazu.model_copy(update={"source": avazu.source.model_copy(update={"date_column": "hour"})})
    yesterday = resolve_date(None)
    assert resolve_date(None, dated) == yesterday == Day.open("synthetic", None).date


def test_the_window_steps_over_days_whose_gate_failed(tmp_path):
    from features.lake import window_before, write_json_atomic
    from flows.params import MAX_SKIPPED_DAYS, Day

    day = Day.open("synthetic", "2026-01-10", str(tmp_path))
    assert day.window(3) == ["2026-01-07", "2026-01-08", "2026-01-09"]
    for d, verdict in (("2026-01-09", "fail"), ("2026-01-07", "fail"), ("2026-01-06", "warn")):
        write_json_atomic(day.lake.validation("synthetic", d) / "verdict.json", {"verdict": verdict})
    assert day.window(3) == ["2026-01-05", "2026-01-06", "2026-01-08"]
    for d in window_before(day.date, 3 + MAX_SKIPPED_DAYS)[:-2]:     # a long outage: only 01-08 is left
        write_json_atomic(day.lake.validation("synthetic", d) / "verdict.json", {"verdict": "fail"})
    with pytest.raises(ValueError, match=r"date 2026-01-10: only 1 of the 17 days before it passed their gate"):
        day.window(3)


@pytest.mark.slow
def test_a_corrupt_raw_day_fails_alone_and_the_next_day_trains_without_it(env, runs):
    from features.sources import ingest
    from flows.params import Day

    bad, nxt = "2026-02-01", "2026-02-02"
    day = Day.open("synthetic", bad, str(env.root), TINY)
    ingest(day.spec, env, dates=[bad])
    part = next(env.raw("synthetic", bad).glob("*.parquet"))
    part.write_bytes(b"PAR1 this is not a parquet file")               # its record still says complete

    failed = _daily(env, bad)
    assert failed.is_failed()
    assert f"gate of synthetic {bad} failed 3 blocking check(s): raw_complete observed 0, bound [1, 1]" in failed.message
    assert "features_complete observed 0, " in failed.message and "stats_complete observed 0, " in failed.message
    assert f"cannot read raw Parquet file {part}" in failed.message
    assert "no override can accept it" in failed.message and "ValueError: No clients found" not in failed.message
    assert json.loads((env.validation("synthetic", bad) / "verdict.json").read_text())["verdict"] == "fail"
    champion = Registry(env, "synthetic").champion().version

    done = _daily(env, nxt)
    assert done.is_completed(), done.message
    result = done.result()
    assert result["validate"]["verdict"] in ("pass", "warn")
    version = Registry(env, "synthetic").show(result["register"]["version"])
    assert version.lineage["train_dates"] == ["2026-01-29", "2026-01-30"]
    assert version.lineage["valid_date"] == "2026-01-31"                # not the failed day before the date
    if not result["register"]["promoted"]:
        assert Registry(env, "synthetic").champion().version == champion


@pytest.mark.integration
def test_an_error_in_a_flow_is_not_chained_to_dask_looking_for_a_client():
    """A failing stage's traceback starts with its own error, not "No clients found" from the lookup
    of an existing Dask client."""
    from flows.cluster import flow_client
    from flows.params import DaskParams

    with pytest.raises(RuntimeError, match="the stage's own error") as info:
        with flow_client(DaskParams(n_workers=1)):
            raise RuntimeError("the stage's own error")
    assert info.value.__context__ is None and info.value.__cause__ is None
