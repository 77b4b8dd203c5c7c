"""Flow ``features``: fit the manifest on the training window (when it changed), transform the days.

Named ``featurize.py``, not ``features.py``: Prefect loads a deployment's entrypoint as a script
with its folder first on ``sys.path``, where ``flows/features.py`` would shadow the ``features``
package.
"""

from __future__ import annotations

import pyarrow as pa
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flows.cluster import flow_client
from flows.guard import dataset_lock
from flows.params import Cluster, DaskParams, DatasetName, Day, Force, Home, RunDate, SpecOverrides, Window
from flows.reports import artifact_key, publish, table


class DayNotBuilt(RuntimeError):
    """The date's own feature table could not be built (its raw day is unreadable or invalid); the
    training window's days were. ``dea-daily`` still runs the gate, which records the day as failed."""


@task(cache_policy=NO_CACHE)
def fit_manifest(day: Day, dates: list[str], force: bool):
    from features import pipeline

    return pipeline.fit(day.spec, day.lake, dates, force=force)


@task(retries=1, retry_delay_seconds=5, cache_policy=NO_CACHE)
def transform_day(day: Day, date: str, manifest, force: bool):
    from features import pipeline

    return pipeline.transform(day.spec, day.lake, date, manifest, force=force)


@flow(name="features")
def features_flow(dataset: DatasetName = "synthetic", date: RunDate = None, window: Window = 3,
                  force: Force = False, home: Home = None, spec_overrides: SpecOverrides = None,
                  cluster: Cluster = DaskParams()) -> dict:
    """Fit ``features/<dataset>/_manifest.json`` on the ``window`` days before ``date``, then write
    the feature tables of those days and of ``date``. Each step skips when its record is current."""
    from features.pipeline import Manifest

    log = get_run_logger()
    day = Day.open(dataset, date, home, spec_overrides)
    fit_dates = day.window(window)
    with dataset_lock(day.lake, day.dataset), flow_client(cluster):
        path = day.lake.manifest(day.dataset)
        before = Manifest.load(path).digest if path.exists() else None
        manifest = fit_manifest(day, fit_dates, force)
        refit = force or manifest.digest != before
        log.info("manifest of %s %s on %s..%s", day.dataset, "fitted" if refit else "up to date, skipped",
                 fit_dates[0], fit_dates[-1])
        results = [transform_day(day, d, manifest, force) for d in fit_dates]
        try:
            results.append(transform_day(day, day.date, manifest, force))
        except (ValueError, OSError, pa.ArrowException) as e:   # the date's own data is bad: the gate records it
            # (a code bug or a lost worker is not the day's fault: it fails the run and the day stays eligible)
            raise DayNotBuilt(f"dataset {day.dataset!r}, date {day.date}: the feature table was not built: {e}") from None
    for r in results:
        log.info("features %s %s: %s (%d rows, %.1f s)", r.dataset, r.date,
                 "up to date, skipped" if r.skipped else "written", r.rows, r.seconds)
    rows = [{"date": r.date, "rows": r.rows, "status": "skipped" if r.skipped else "written",
             "seconds": round(r.seconds, 1)} for r in results]
    publish(artifact_key("features", day.dataset), f"# Features of {day.dataset} for {day.date}\n\n"
            f"Manifest {manifest.digest} fitted on {', '.join(fit_dates)} "
            f"({'refitted' if refit else 'unchanged'}).\n\n" + table(rows, ["date", "rows", "status", "seconds"]),
            f"feature tables of {day.dataset}")
    return {"stage": "features", "manifest": str(path), "manifest_digest": manifest.digest, "refit": refit,
            "days": rows}


if __name__ == "__main__":
    print(features_flow())
