"""The flows end to end under ``prefect_test_harness``: dea-daily on tiny synthetic days registers a
champion with reports, a re-run skips every stage, a gate failure ends the run Failed and keeps
the champion, a crash mid-training leaves nothing and a re-run completes; the registry commands
and ``dea predict`` work on the result; the dataset lock serialises processes.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest

from dea_model import train as T
from flows.params import DAILY_TRAIN
from dea_model.registry import Registry
from features.lake import Lake

D1, D2 = "2026-01-05", "2026-01-06"
TINY = {"source": {"kind": "synthetic", "options": {"rows_per_day": 4000, "seed": 7}}}
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
    lineage = champion.lineage
    assert lineage["train_dates"] == ["2026-01-02", "2026-01-03"] and lineage["valid_date"] == "2026-01-04"
    assert lineage["eval_date"] == D1 and lineage["gate"]["verdict"] == verdict["verdict"]
    assert lineage["flow_run_id"] and lineage["manifest_digest"] == json.loads(env.manifest("synthetic").read_text())["record"]["digest"]
    assert champion.metrics["auc"] == ev["candidate"]["auc"]
    assert (champion.path / "model.pt").is_file() and (champion.path / "manifest.json").is_file()


def test_rerun_skips_every_stage(env, runs):
    assert runs[2].is_completed(), runs[2].message
    again = runs[2].result()
    assert again["ingest"]["written"] == {} and len(again["ingest"]["skipped"]) == 4
    assert not again["features"]["refit"] and {d["status"] for d in again["features"]["days"]} == {"skipped"}
    assert again["validate"]["skipped"] and again["train"]["skipped"] and again["evaluate"]["skipped"]
    assert again["register"]["skipped"] and again["register"]["version"] == "v0001"
    assert Registry(env, "synthetic").versions() == ["v0001"]
    assert again["evaluate"]["candidate"] == Registry(env, "synthetic").show("v0001").metrics


def test_gate_failure_fails_the_run_and_keeps_the_champion(env, runs):
    strict = {**TINY, "gate": {"rows": {"min": 10**9}}}     # no day has a billion rows
    state = _daily(env, D2, spec_overrides=strict)
    assert state.is_failed()
    assert "GateFailed: gate of synthetic 2026-01-06 failed: rows; report " in state.message
    assert json.loads((env.validation("synthetic", D2) / "verdict.json").read_text())["verdict"] == "fail"
    reg = Registry(env, "synthetic")
    assert reg.champion().version == "v0001" and reg.versions() == ["v0001"]
    assert not (env.runs() / "synthetic" / f"dt={D2}").exists()        # stopped before training


def test_crash_while_training_leaves_nothing_and_a_rerun_completes(env, runs, monkeypatch):
    from flows.train import run_dir, train_flow
    from flows.params import Day

    cfg = TRAIN.model_copy(update={"epochs": 1, "plot": True})
    out = run_dir(Day.open("synthetic", D1, str(env.root), TINY), cfg, 3)

    def crash(*a, **k):
        raise OSError("disk full while drawing the curve")

    monkeypatch.setattr(T, "_plot", crash)
    state = train_flow(date=D1, home=str(env.root), spec_overrides=TINY, train=cfg, return_state=True)
    assert state.is_failed() and not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".tmp")]
    monkeypatch.undo()
    done = train_flow(date=D1, home=str(env.root), spec_overrides=TINY, train=cfg)
    assert not done["skipped"] and (out / "_COMPLETE.json").exists() and (out / "curve.png").exists()


def test_registry_commands_and_predict(env, runs, capsys):
    from flows.cli import main

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
