"""What an operator reads, without a server: the dea-daily summary's verdicts and stage table, the
report addresses the artifacts link to, and the log filter that keeps a gate verdict free of the
engine's traceback while a crash keeps its own."""

from __future__ import annotations

import logging
import sys

import pytest

from flows.settings import ExpectedFailureFilter, reports_url
from flows.summary import DailySummary, stage_skipped

INGEST = {"written": {"2026-01-06": 4000}, "skipped": ["2026-01-03", "2026-01-04", "2026-01-05"]}
FEATURES = {"refit": False, "days": [{"status": "skipped"}, {"status": "written"}]}
GATE = {"verdict": "pass", "skipped": False, "summary": "/lake/validation/s/dt=1/summary.md", "data_docs": None,
        "plots": []}


def _link(path) -> str:
    return f"http://r/{path}"


def test_a_stage_is_up_to_date_only_when_it_wrote_nothing():
    assert not stage_skipped("ingest", INGEST)                         # wrote the new day, skipped three
    assert stage_skipped("ingest", {"written": {}, "skipped": ["2026-01-06"]})
    assert not stage_skipped("features", FEATURES)
    assert stage_skipped("features", {"refit": False, "days": [{"status": "skipped"}]})
    assert not stage_skipped("features", {"refit": True, "days": [{"status": "skipped"}]})
    assert stage_skipped("train", {"skipped": True}) and not stage_skipped("train", {"skipped": False})


def _summary(**stages) -> DailySummary:
    summary = DailySummary("synthetic", "2026-01-06", "fm")
    for name, (status, result, message) in stages.items():
        stage = summary.stages[name]
        stage.status, stage.result, stage.message, stage.seconds = status, result, message, 1.25
    return summary


def test_the_verdict_names_the_failed_stage_and_the_table_every_stage():
    summary = _summary(ingest=("done", INGEST, ""), features=("done", FEATURES, ""),
                       validate=("failed", None, "The data-quality gate of synthetic 2026-01-06 failed 1 check"))
    text = summary.markdown(_link)
    assert "✗ **failed at validate**: The data-quality gate of synthetic 2026-01-06 failed 1 check" in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and "stage" not in line]
    assert [r.split(" | ")[1] for r in rows] == ["✓ done", "✓ done", "✗ failed", "· not run", "· not run",
                                                "· not run"]
    assert "| ingest | ✓ done | 1.2 | 1 day(s) written (4,000 rows), 3 up to date |" in text
    assert "none yet: the run stopped before the gate" in text


def test_an_interruption_says_which_stage_it_stopped():
    summary = _summary(ingest=("done", INGEST, ""), features=("done", FEATURES, ""), validate=("done", GATE, ""),
                       train=("running", None, ""))
    summary.interruption = "SystemExit: 143"
    text = summary.markdown(_link)
    assert "✗ **stopped during train**: SystemExit: 143" in text and "| train | ✗ interrupted |" in text
    assert f"[summary]({_link(GATE['summary'])})" in text


def test_report_addresses_keep_links_in_the_lake_and_encode_names(tmp_path, monkeypatch):
    monkeypatch.setenv("DEA_REPORTS_URL", "http://127.0.0.1:9999/")
    lake = tmp_path / "lake"
    (tmp_path / "elsewhere").mkdir()
    lake.mkdir()
    (lake / "validation").symlink_to(tmp_path / "elsewhere")             # the reports on another disk
    assert reports_url(lake, lake / "validation/s/dt=2026-01-06/summary.md") == \
        "http://127.0.0.1:9999/validation/s/dt=2026-01-06/summary.md"
    assert reports_url(lake, lake / "runs/a b#c.png") == "http://127.0.0.1:9999/runs/a%20b%23c.png"
    outside = tmp_path / "other" / "x.md"
    assert reports_url(lake, outside) == outside.as_uri()                 # never served: the file itself


def _record(error: BaseException, message: str) -> logging.LogRecord:
    try:
        raise error
    except BaseException:
        return logging.LogRecord("prefect.flow_runs", logging.ERROR, __file__, 1, message, None, sys.exc_info())


@pytest.mark.parametrize("error, message, kept", [
    ("failed_run", "Engine execution exited with unexpected exception", False),   # a verdict: its state says why
    ("value_error", "Engine execution exited with unexpected exception", True),   # a crash keeps its traceback
    ("failed_run", "Finished in state Failed", True),
])
def test_only_the_engine_traceback_of_a_deliberate_failure_is_dropped(error, message, kept):
    from prefect.exceptions import FailedRun

    exc = FailedRun("gate of synthetic failed") if error == "failed_run" else ValueError("boom")
    assert ExpectedFailureFilter().filter(_record(exc, message)) is kept
