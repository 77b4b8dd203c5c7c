"""Flow ``ingest``: land the raw days a run needs — the training window and the date itself."""

from __future__ import annotations

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flows.guard import dataset_lock
from flows.params import DatasetName, Day, Force, Home, RunDate, SpecOverrides, Window


@task(retries=2, retry_delay_seconds=10, cache_policy=NO_CACHE)
def land(day: Day, dates: list[str], force: bool):
    """Write the missing raw days (a source read: I/O, so retried)."""
    from features.sources import ingest

    return ingest(day.spec, day.lake, dates=dates, force=force)


@flow(name="ingest")
def ingest_flow(dataset: DatasetName = "synthetic", date: RunDate = None, window: Window = 3, force: Force = False,
                home: Home = None, spec_overrides: SpecOverrides = None) -> dict:
    """Land ``window`` days before ``date`` and ``date`` in ``raw/<dataset>/`` (skips complete days)."""
    log = get_run_logger()
    day = Day.open(dataset, date, home, spec_overrides)
    dates = day.window(window) + [day.date]
    with dataset_lock(day.lake, day.dataset):
        result = land(day, dates, force)
    for d, rows in sorted(result.written.items()):
        log.info("raw %s %s: wrote %d rows", day.dataset, d, rows)
    if result.skipped:
        log.info("raw %s %s: up to date, skipped", day.dataset, ", ".join(result.skipped))
    return {"stage": "ingest", "dates": dates, "written": dict(result.written), "skipped": list(result.skipped),
            "seconds": result.seconds, "path": str(day.lake.raw(day.dataset))}


if __name__ == "__main__":
    print(ingest_flow())
