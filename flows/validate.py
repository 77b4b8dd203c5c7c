"""Flow ``validate``: the data-quality gate of the date (``validation.gate.run_gate``).

Publishes the gate's markdown summary as an artifact with a link to the Data Docs. A ``fail``
verdict ends the flow Failed, naming the failing expectations and the report; ``override`` (a
reason, logged in the verdict) turns a fail into a warn for a day a person judged acceptable.
"""

from __future__ import annotations

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_link_artifact
from prefect.cache_policies import NO_CACHE

from flows.guard import dataset_lock
from flows.params import DatasetName, Day, Force, GateOverride, Home, RunDate, SpecOverrides
from flows.reports import artifact_key, publish
from validation.checks import AVAILABILITY


class GateFailed(RuntimeError):
    """The gate blocked the day; the message names the failing expectations and the report."""


def gate_failure_message(result) -> str:
    """Why the day is blocked, where the report is, and how a person accepts it (data present) or not."""
    notes = [f"{c['expectation']}: {c['note']}" for c in result.failing if c["severity"] == "error" and c.get("note")]
    failing = ", ".join(c["expectation"] for c in result.failing if c["severity"] == "error")
    doc = result.doc
    where = f"{doc['dataset']} {doc['date']}"
    docs = f", Data Docs {result.data_docs}" if result.data_docs else ""
    if any(c["expectation"] in AVAILABILITY for c in result.failing):
        todo = (f"The day has no usable data, so no override can accept it: fix the raw day (or the stage named "
                f"above) and re-run for {doc['date']}.")
    else:
        todo = (f"To accept the day after reading the report, re-run with a reason: dea-daily "
                f"gate_override='<reason>', validate override='<reason>', or `dea validate --dataset "
                f"{doc['dataset']} --date {doc['date']} --override '<reason>'`.")
    return (f"gate of {where} failed: {failing}" + "".join(f"; {n}" for n in notes)
            + f"; report {result.summary_path}{docs}. {todo}")


@task(retries=1, retry_delay_seconds=5, cache_policy=NO_CACHE)
def gate(day: Day, override: str | None, force: bool):
    from validation.gate import run_gate

    return run_gate(day.spec, day.lake, day.date, override=override, force=force)


@flow(name="validate")
def validate_flow(dataset: DatasetName = "synthetic", date: RunDate = None, override: GateOverride = None,
                  force: Force = False, home: Home = None, spec_overrides: SpecOverrides = None) -> dict:
    """Gate the feature day ``date``; Failed when the verdict is ``fail`` (unless ``override``)."""
    log = get_run_logger()
    day = Day.open(dataset, date, home, spec_overrides)
    with dataset_lock(day.lake, day.dataset):      # the gate reads statistics: no Dask cluster needed
        result = gate(day, override, force)
    docs = result.data_docs
    link = f"[Data Docs]({docs.as_uri()})" if docs else "Data Docs: not written"
    publish(artifact_key("gate", day.dataset), f"{result.summary}\n\n{link} · verdict `{result.verdict_path}`",
            f"data-quality gate of {day.dataset} {day.date}: {result.verdict}")
    if docs:
        create_link_artifact(link=docs.as_uri(), link_text=f"Data Docs {day.dataset} {day.date}",
                             key=artifact_key("data-docs", day.dataset))
    failing = [c["expectation"] for c in result.failing if c["severity"] == "error"]
    log.info("gate %s %s: %s%s (%d checks, failing: %s) -> %s", day.dataset, day.date, result.verdict.upper(),
             " (up to date, skipped)" if result.skipped else "", len(result.checks), ", ".join(failing) or "none",
             result.summary_path)
    if result.blocked:
        raise GateFailed(gate_failure_message(result))
    return {"stage": "validate", "verdict": result.verdict, "skipped": result.skipped, "failing": failing,
            "summary": str(result.summary_path), "verdict_path": str(result.verdict_path),
            "data_docs": str(docs) if docs else None}


if __name__ == "__main__":
    print(validate_flow())
