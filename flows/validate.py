"""Flow ``validate``: the data-quality gate of the date (``validation.gate.run_gate``).

Publishes the gate's markdown summary as an artifact with a link to the Data Docs. A ``fail``
verdict ends the flow Failed, naming the failing expectations and the report; ``override`` (a
reason, logged in the verdict) turns a fail into a warn for a day a person judged acceptable.
"""

from __future__ import annotations


from prefect import flow, get_run_logger, task
from prefect.artifacts import create_link_artifact
from prefect.cache_policies import NO_CACHE
from prefect.states import Failed

from flows.guard import dataset_lock
from flows.params import DatasetName, Day, Force, GateOverride, Home, RunDate, SpecOverrides
from flows.reports import artifact_key, publish
from validation.checks import AVAILABILITY
from validation.config import GateConfigError
from validation.report import fmt_value


GATE_BLOCKED = "GateBlocked"   # the state of a gate task (and flow) whose verdict blocked the day
MAX_LISTED = 5                 # blocking checks named in the failure message


def gate_failure_message(result, link) -> str:
    """One paragraph: the blocking checks (observed vs bound), the report, and how a person accepts
    the day (data present) or not. ``link(path)`` is the report's http address."""
    doc = result.doc
    blocking = [c for c in result.failing if c["severity"] == "error"]
    checks = "; ".join(f"{c['expectation']} observed {_short(fmt_value(c['observed']))}, bound {c['bound']}"
                       + (f" ({_short(c['note'])})" if c.get("note") else "") for c in blocking[:MAX_LISTED])
    more = f"; and {len(blocking) - MAX_LISTED} more" if len(blocking) > MAX_LISTED else ""
    docs = f", Data Docs {link(result.data_docs)}" if result.data_docs else ""
    if any(c["expectation"] in AVAILABILITY for c in result.failing):
        todo = (f"The day has no usable data, so no override can accept it: fix the raw day (or the stage named "
                f"above) and re-run for {doc['date']}.")
    else:
        todo = (f"To accept the day after reading the report, re-run with a reason: `dea run --dataset "
                f"{doc['dataset']} --date {doc['date']} --gate-override '<reason>'`, dea-daily "
                f"gate_override='<reason>', or `dea validate --dataset {doc['dataset']} --date {doc['date']} "
                f"--override '<reason>'` (it stands for the later runs of the day until its data changes).")
    return (f"The data-quality gate of {doc['dataset']} {doc['date']} failed {len(blocking)} blocking "
            f"check(s): {checks}{more}. Report {link(result.summary_path)}{docs} (file {result.summary_path}). {todo}")


def _short(value, limit: int = 160) -> str:
    text = str(value)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def publish_gate(day: Day, result) -> None:
    """The gate's artifacts: its summary with the plots drawn inline, and a link to its Data Docs."""
    link = day.report_url
    docs = f"[Data Docs]({link(result.data_docs)})" if result.data_docs else "Data Docs: not written"
    plots = "".join(f"\n\n![{p.stem}]({link(p)})" for p in result.plots)
    publish(artifact_key("gate", day.dataset),
            f"{result.summary}\n\n{docs} · [summary]({link(result.summary_path)}) (served by `dea reports`) · "
            f"verdict `{result.verdict_path}`{plots}",
            f"data-quality gate of {day.dataset} {day.date}: {result.verdict}")
    if result.data_docs:
        create_link_artifact(link=link(result.data_docs), link_text=f"Data Docs {day.dataset} {day.date}",
                             key=artifact_key("data-docs", day.dataset))


def _crashed(task, task_run, state) -> bool:
    """Retry the gate once after an unexpected exception (a file replaced under it), never after its
    verdict or a configuration error."""
    return isinstance(state.data, Exception) and not isinstance(state.data, GateConfigError)


@task(retries=1, retry_delay_seconds=5, retry_condition_fn=_crashed, cache_policy=NO_CACHE)
def gate(day: Day, override: str | None, force: bool):
    """Run the gate and publish its report; a blocked day ends this task Failed with the reason (a
    verdict, not a crash: no traceback)."""
    from validation.gate import run_gate

    result = run_gate(day.spec, day.lake, day.date, override=override, force=force)
    publish_gate(day, result)
    failing = [c["expectation"] for c in result.failing if c["severity"] == "error"]
    get_run_logger().info("gate %s %s: %s%s (%d checks, failing: %s) -> %s", day.dataset, day.date,
                          result.verdict.upper(), " (up to date, skipped)" if result.skipped else "",
                          len(result.checks), ", ".join(failing) or "none", result.summary_path)
    if result.blocked:
        return Failed(name=GATE_BLOCKED, message=gate_failure_message(result, day.report_url))
    return {"stage": "validate", "verdict": result.verdict, "skipped": result.skipped, "failing": failing,
            "summary": str(result.summary_path), "verdict_path": str(result.verdict_path),
            "data_docs": str(result.data_docs) if result.data_docs else None,
            "plots": [str(p) for p in result.plots]}


@flow(name="validate")
def validate_flow(dataset: DatasetName = "synthetic", date: RunDate = None, override: GateOverride = None,
                  force: Force = False, home: Home = None, spec_overrides: SpecOverrides = None) -> dict:
    """Gate the feature day ``date``; Failed when the verdict is ``fail`` (unless ``override``)."""
    day = Day.open(dataset, date, home, spec_overrides)
    with dataset_lock(day.lake, day.dataset):      # the gate reads statistics: no Dask cluster needed
        state = gate(day, override, force, return_state=True)
    if state.name == GATE_BLOCKED:             # a verdict, not a crash: the reason, without a traceback
        return Failed(name=GATE_BLOCKED, message=state.message)
    return state.result()                      # a crash of the gate raises here, with its traceback

if __name__ == "__main__":
    print(validate_flow())
