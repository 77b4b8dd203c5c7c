"""``dea-daily/retrain`` against a real Prefect server, exactly as deployments/README.md runs it.

One server on a free loopback port, the ``dea-process`` pool, ``prefect deploy --all``, one process
worker; then ``prefect deployment run dea-daily/retrain --watch`` through the CLI (exit 0 on
Completed, 1 on Failed):

1. day 1 -> Completed, a gate report and a champion (the first model);
2. day 1 again -> Completed, every stage skipped (no output rewritten, no new version);
3. day 2 with a worse candidate (learning rate ~0) -> Completed, registered, not promoted;
4. day 3 with a gate that cannot pass -> Failed with one paragraph, the gate task Failed, no
   traceback, the champion unchanged.

The server runs its UI and ``dea reports`` serves the lake (the worker's ``DEA_REPORTS_URL`` points
there), so a headless Chromium (tests/browser.py; skipped without one) opens what an operator
would: the day-1 run page, its summary artifact (stage table, metrics table, plots that load) and,
one click further, the served Data Docs, with no request to an outside host. ``DEA_SCREENSHOTS=1``
writes the README's screenshots.

Tiny synthetic days and a small FM keep it near two minutes on two cores. Every process started
here (server, worker, reports) is killed, with its process group, when the fixture ends
(tests/prefect_server.py).
"""

from __future__ import annotations

import json
import os
import re
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from browser import chromium

from dea_model.registry import Registry
from features.lake import Lake
from features.spec import available_specs
from prefect_server import DEA, PrefectServer, free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

D1, D2, D3 = "2026-01-05", "2026-01-06", "2026-01-07"
SOURCE = {"kind": "synthetic", "options": {"rows_per_day": 20000, "seed": 7}}
FM = {"model": "fm", "hparams": {"embedding_dim": 8, "embedding_rows": 65536}, "epochs": 2, "batch_size": 1024,
      "lr": 0.01, "plot": True}
SHOTS = Path(__file__).resolve().parents[1] / "docs" / "screenshots"


class RetrainServer(PrefectServer):
    @property
    def lake(self) -> Lake:
        return Lake(self.lake_root)

    def retrain(self, date: str, *, train: dict = FM, gate: dict | None = None):
        overrides = {"source": SOURCE, **({"gate": gate} if gate else {})}
        return self.cli("deployment", "run", "dea-daily/retrain", "--param", f"date={date}",
                        "--param", f"train={json.dumps(train)}", "--param", f"spec_overrides={json.dumps(overrides)}",
                        "--param", 'cluster={"n_workers": 1}',
                        "--watch", "--watch-timeout", "240", timeout=300)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    # scheduler off: no cron runs during the test (tests/test_integration_schedule.py watches the schedule)
    reports = f"http://127.0.0.1:{free_port()}"
    with RetrainServer(tmp_path_factory.mktemp("prefect-server"), scheduler=False, ui=True,
                       env={"DEA_REPORTS_URL": reports}) as srv:
        srv.deploy()
        srv.start_worker()
        srv.spawn("reports", "--home", str(srv.lake_root), "reports", "--port", reports.rsplit(":", 1)[1], program=DEA)
        srv.reports_url = reports
        yield srv


@pytest.fixture(scope="module")
def day1(server):
    return server.retrain(D1)


def test_deployments_are_registered_with_their_descriptions_and_forms(server):
    flows = {f["id"]: f["name"] for f in server.api("POST", "/flows/filter", {})}
    deployments = {f"{flows[d['flow_id']]}/{d['name']}": d for d in server.api("POST", "/deployments/filter", {})}
    assert set(deployments) == {"dea-daily/retrain", "gc/weekly", "ingest/land-days", "features/build-days",
                                "validate/gate-day", "train/train-candidate", "evaluate/score-candidate",
                                "register/register-candidate", "backfill/date-range"}
    assert all(d["description"] for d in deployments.values())
    retrain = deployments["dea-daily/retrain"]
    form = retrain["parameter_openapi_schema"]                 # what the UI's run form is drawn from
    assert form["properties"]["dataset"]["enum"] == available_specs()
    assert "empty = yesterday" in form["properties"]["date"]["description"]
    assert "fm" in form["definitions"]["TrainConfig"]["properties"]["model"]["enum"]
    # the server itself refuses a run whose parameters the form would not allow (a typo in train.model)
    with pytest.raises(urllib.error.HTTPError) as refused:
        server.api("POST", f"/deployments/{retrain['id']}/create_flow_run", {"parameters": {"train": {"model": "fmm"}}})
    assert refused.value.code in (409, 422)


def test_retrain_completes_with_gate_report_and_champion(server, day1):
    assert day1.returncode == 0, server.explain(day1)
    assert "Completed" in day1.stdout
    verdict = json.loads((server.lake.validation("synthetic", D1) / "verdict.json").read_text())
    assert verdict["verdict"] in ("pass", "warn") and (server.lake.validation("synthetic", D1) / "summary.md").exists()
    champion = Registry(server.lake, "synthetic").champion()
    assert champion is not None and champion.version == "v0001"
    assert champion.lineage["eval_date"] == D1 and champion.lineage["gate"]["verdict"] == verdict["verdict"]
    assert champion.metrics["rows"] == 20000 and champion.metrics["auc"] > 0.55


def _outputs(lake: Lake) -> dict[str, int]:
    """mtime of every completion record and of the registry's aliases: what a skipped run leaves alone."""
    files = list(lake.root.glob("*/synthetic/dt=*/_COMPLETE.json")) + list(lake.root.glob("runs/synthetic/dt=*/*/_COMPLETE.json"))
    files += [lake.manifest("synthetic"), lake.models("synthetic") / "aliases.json"]
    return {str(f.relative_to(lake.root)): f.stat().st_mtime_ns for f in files}


def test_retrain_again_skips_every_stage(server, day1):
    assert day1.returncode == 0, server.explain(day1)
    before = _outputs(server.lake)
    again = server.retrain(D1)
    assert again.returncode == 0, server.explain(again)
    assert _outputs(server.lake) == before
    assert Registry(server.lake, "synthetic").versions() == ["v0001"]


def test_worse_candidate_is_registered_but_not_promoted(server, day1):
    assert day1.returncode == 0, server.explain(day1)
    worse = server.retrain(D2, train={**FM, "lr": 1e-7, "epochs": 1})     # barely moves from its random init
    assert worse.returncode == 0, server.explain(worse)
    reg = Registry(server.lake, "synthetic")
    assert reg.versions() == ["v0001", "v0002"]
    assert reg.aliases() == {"champion": "v0001", "challenger": "v0002"}
    assert "does not beat champion" in reg.show("v0002").lineage["decision"]


def test_gate_failure_fails_the_run_and_keeps_the_champion(server, day1):
    assert day1.returncode == 0, server.explain(day1)
    before = Registry(server.lake, "synthetic").aliases()
    # a valid gate (rows in [30 000, 4 × the reference median]) that a 20 000-row day fails; bounds that no
    # value can meet (e.g. min 10^9 above 4 × the median) are a GateConfigError, not a failed gate
    failed = server.retrain(D3, gate={"rows": {"min": 30_000}})
    assert failed.returncode == 1 and "Failed" in failed.stdout, server.explain(failed)
    verdict = json.loads((server.lake.validation("synthetic", D3) / "verdict.json").read_text())
    assert verdict["verdict"] == "fail" and any(c["expectation"] == "rows" and c["status"] == "fail"
                                                for c in verdict["checks"])
    assert Registry(server.lake, "synthetic").aliases() == before
    assert not (server.lake.runs() / "synthetic" / f"dt={D3}").exists()
    record = _run_record(server, _run_id(failed))
    assert record["tasks"]["gate"]["type"] == "FAILED" and record["tasks"]["gate"]["name"] == "GateBlocked"
    assert [m for m in record["logs"] if "Traceback" in m] == []      # expected: a reason, not a crash
    message = record["state"]["message"]
    assert "stage validate failed: The data-quality gate of synthetic 2026-01-07 failed 1 blocking check(s): " \
           "rows observed 20000, bound " in message, message
    assert f"Report {server.reports_url}/validation/synthetic/dt={D3}/summary.md" in message
    assert "gate_override='<reason>'" in message
    assert "stage 3/6 validate: failed after" in failed.stdout, failed.stdout


# --- what an operator sees --------------------------------------------------------------------------

def _run_id(run) -> str:
    return re.search(r"UUID: ([0-9a-f-]{36})", run.stdout)[1]


def _run_record(server, run_id: str) -> dict:
    """A dea-daily run as the API has it: its state, its and its stages' task runs and logs."""
    runs = [run_id] + [r["id"] for r in server.api("POST", "/flow_runs/filter", {
        "flow_runs": {"parent_flow_run_id": {"any_": [run_id]}}})]
    tasks = server.api("POST", "/task_runs/filter", {"flow_runs": {"id": {"any_": runs}}})
    logs = server.api("POST", "/logs/filter", {"logs": {"flow_run_id": {"any_": runs}}, "limit": 200})
    assert len(logs) < 200, "more logs than one page: read them all before asserting on them"
    return {"state": server.api("GET", f"/flow_runs/{run_id}")["state"],
            "tasks": {t["name"].split("-")[0]: t["state"] for t in tasks}, "logs": [log["message"] for log in logs]}


def _wait_for(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            assert time.monotonic() < deadline, f"{url} did not answer in {timeout:.0f} s"
            time.sleep(0.3)


def _shot(page, name: str) -> None:
    if os.environ.get("DEA_SCREENSHOTS") == "1":
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / name))


def _images_loaded(page, prefix: str) -> list[int]:
    """The natural widths of the page's images served from ``prefix``, once they have all loaded."""
    page.wait_for_function(f"() => [...document.images].filter(i => i.src.startsWith('{prefix}'))"
                           f".every(i => i.complete)")
    return page.evaluate(f"() => [...document.images].filter(i => i.src.startsWith('{prefix}'))"
                         f".map(i => i.naturalWidth)")


def test_watch_shows_each_stage(server, day1):
    assert day1.returncode == 0, server.explain(day1)
    for k, stage in enumerate(("ingest", "features", "validate", "train", "evaluate", "register"), 1):
        assert f"stage {k}/6 {stage}: started" in day1.stdout and f"stage {k}/6 {stage}: done in" in day1.stdout
    assert "dea-daily synthetic 2026-01-05 done in" in day1.stdout
    assert day1.stdout.count("prefect.artifact") <= 2, day1.stdout        # was one event per stage update


def test_the_run_page_shows_the_summary_and_the_served_reports(server, day1):
    assert day1.returncode == 0, server.explain(day1)
    _wait_for(server.reports_url)
    with chromium(timeout_ms=30_000) as browser:
        page = browser.new_page()
        page.goto(f"{server.ui_url}/runs/flow-run/{_run_id(day1)}")
        page.get_by_text("Artifacts", exact=True).first.click()           # the run page's tab
        card = page.get_by_text("dea-daily-synthetic", exact=True).first
        card.wait_for()
        _shot(page, "run-page.png")

        card.click()                                   # the artifact: verdict, stage table, metrics, plots
        page.get_by_text("v0001 promoted to champion").first.wait_for()
        stages = page.locator("table").nth(0).locator("tbody tr")
        assert [row.split("\t")[1].strip() for row in stages.all_inner_texts()] == ["✓ done"] * 6
        models = page.locator("table").nth(1).locator("tbody tr").all_inner_texts()
        assert [m.split()[0] for m in models] == ["candidate", "prior", "logistic", "oracle"], models
        widths = _images_loaded(page, server.reports_url)
        assert len(widths) == 3 and min(widths) > 100, widths     # rank-frequency, dense buckets, training curve
        _shot(page, "summary-artifact.png")

        docs = page.get_by_role("link", name="Data Docs")       # one click to the gate's Data Docs
        if docs.get_attribute("target") == "_blank":
            with browser.context.expect_page() as opened:
                docs.click()
            page = opened.value
        else:
            docs.click()
        page.wait_for_url(f"{server.reports_url}/validation/synthetic/dt={D1}/**/index.html")
        page.wait_for_selector(".bootstrap-table table tbody tr")
        assert page.locator(".bootstrap-table table tbody tr").count() >= 4
        assert browser.outside_requests == []
