"""Flow ``backfill``: run ``dea-daily`` (or one stage) for every date of a range, oldest first.

Dates whose outputs are current are skipped by the stages themselves; the first failing date stops
the backfill (later days build on the champion the earlier ones leave).
"""

from __future__ import annotations

import datetime as dt
import inspect
from typing import Annotated, Literal

from prefect import flow, get_run_logger

from features.lake import parse_date
from flows.dea_daily import dea_daily
from flows.evaluate import evaluate_flow
from flows.featurize import features_flow
from flows.ingest import ingest_flow
from flows.params import (DAILY_TRAIN, Cluster, DaskParams, DatasetName, Force, Home, Promotion, PromotionRule,
                          SpecOverrides, Training, Window, doc)
from flows.register import register_flow
from flows.train import train_flow
from flows.validate import validate_flow

FLOWS = {"dea-daily": dea_daily, "ingest": ingest_flow, "features": features_flow, "validate": validate_flow,
         "train": train_flow, "evaluate": evaluate_flow, "register": register_flow}
Stage = Annotated[Literal["dea-daily", "ingest", "features", "validate", "train", "evaluate", "register"],
                  doc("what runs for each date: dea-daily, or one of its stages")]
Start = Annotated[dt.date, doc("first date, YYYY-MM-DD")]
End = Annotated[dt.date, doc("last date, YYYY-MM-DD (included)")]


def dates_between(start: dt.date | str, end: dt.date | str) -> list[str]:
    first, last = parse_date(start), parse_date(end)
    if last < first:
        raise ValueError(f"backfill range {first}..{last} is empty: the end is before the start")
    return [(first + dt.timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]


@flow(name="backfill")
def backfill(start: Start, end: End, dataset: DatasetName = "synthetic", stage: Stage = "dea-daily",
             window: Window = 3, train: Training = DAILY_TRAIN, promotion: PromotionRule = Promotion(),
             cluster: Cluster = DaskParams(), force: Force = False, home: Home = None,
             spec_overrides: SpecOverrides = None) -> list[dict]:
    """Run ``stage`` for each date from ``start`` to ``end`` (both included), in order."""
    log = get_run_logger()
    run = FLOWS[stage]
    given = {"dataset": dataset, "window": window, "train": train, "promotion": promotion, "cluster": cluster,
             "force": force, "home": home, "spec_overrides": spec_overrides}
    accepted = inspect.signature(run.fn).parameters
    kwargs = {k: v for k, v in given.items() if k in accepted}
    results = []
    for date in dates_between(start, end):
        log.info("backfill %s: %s %s", dataset, stage, date)
        results.append(run(date=date, **kwargs))
    return results


if __name__ == "__main__":
    yesterday = dt.date.today() - dt.timedelta(days=1)
    print(backfill(yesterday - dt.timedelta(days=2), yesterday))
