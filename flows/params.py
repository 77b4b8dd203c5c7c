"""Typed parameters shared by the flows (pydantic models: the Prefect UI renders them as forms)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from dea_model.config import TrainConfig
from features.lake import Lake, parse_date, window_before
from features.spec import DatasetSpec, load_spec


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid")


# The daily retrain's default: a few epochs, early stopping on the window's last day.
DAILY_TRAIN = TrainConfig(epochs=2, patience=1)


class Promotion(_Params):
    """Which registered model a candidate joins, and the rule that moves its ``champion`` alias.

    Promote when GAUC_cand > GAUC_champ + ``min_gain`` and AUC_cand >= AUC_champ - ``auc_tolerance``
    (both evaluated on the run's date); the first model is always promoted.
    """

    model_name: str | None = None         # registry name, models/<name>/; None: the dataset's name
    auc_tolerance: float = Field(0.002, ge=0)
    min_gain: float = Field(0.0, ge=0)

    def name_for(self, dataset: str) -> str:
        """One champion per dataset unless a name is given: a model only fits its dataset's IDs."""
        return self.model_name or dataset


class DaskParams(_Params):
    """Where feature work runs: an existing scheduler (``tcp://host:8786``) or a LocalCluster."""

    address: str | None = None           # None: $DEA_DASK_ADDRESS, else a LocalCluster
    n_workers: int | None = Field(None, ge=1)


def resolve_date(date: dt.date | str | None) -> str:
    """The run's date as ``YYYY-MM-DD``; ``None`` means the day before the run was scheduled, in UTC
    (the cron's time zone): a 06:00 UTC run retrains on yesterday even when it starts late, and
    outside a scheduled run, the day before now (UTC)."""
    if date is None:
        from prefect.runtime import flow_run

        scheduled = flow_run.scheduled_start_time          # now (UTC) outside a flow run
        return (scheduled.astimezone(dt.timezone.utc).date() - dt.timedelta(days=1)).isoformat()
    return parse_date(date).isoformat()


#: how many failed days a training window may step over before the run gives up
MAX_SKIPPED_DAYS = 14


# Synthetic days exist for any date, but the source's record hashes its calendar (start, days):
# the flows give synthetic specs one fixed, wide calendar, so the days' records stay the same
# whatever window a run asks for.
SYNTHETIC_CALENDAR = {"start_date": "2020-01-01", "days": 10_958}   # through 2049-12-31


def with_synthetic_calendar(spec: DatasetSpec) -> DatasetSpec:
    if spec.source.kind != "synthetic":
        return spec
    return spec.model_copy(update={"source": spec.source.model_copy(update=SYNTHETIC_CALENDAR)})


@dataclass(frozen=True)
class Day:
    """What every stage works on: a dataset spec, the lake and one date."""

    spec: DatasetSpec
    lake: Lake
    date: str

    @classmethod
    def open(cls, dataset: str, date: dt.date | str | None, home: str | None = None,
             spec_overrides: dict[str, Any] | None = None) -> "Day":
        spec = with_synthetic_calendar(load_spec(dataset, spec_overrides))
        return cls(spec, Lake.default(home), resolve_date(date))

    @property
    def dataset(self) -> str:
        return self.spec.name

    def window(self, days: int) -> list[str]:
        """The ``days`` training dates before this date, oldest first, stepping over days whose own
        gate failed (a bad day is contained: it is never trained or validated on, and the window
        reaches one day further back for each, at most ``MAX_SKIPPED_DAYS``)."""
        from validation.gate import gate_failed

        candidates = window_before(self.date, days + MAX_SKIPPED_DAYS)
        accepted = [d for d in candidates if not gate_failed(self.lake, self.dataset, d)]
        if len(accepted) < days:
            raise ValueError(f"dataset {self.dataset!r}, date {self.date}: only {len(accepted)} of the "
                             f"{len(candidates)} days before it passed their gate, fewer than the window of {days}; "
                             f"override the gate of days judged acceptable, or pick another date")
        return accepted[-days:]

    def split(self, window: int) -> tuple[list[str], str]:
        """(training days, validation day): the ``window`` days before the date, the last one validates."""
        if window < 2:
            raise ValueError(f"dataset {self.dataset!r}, date {self.date}: window must be at least 2 days "
                             f"(training days + one validation day), got {window}")
        dates = self.window(window)
        return dates[:-1], dates[-1]
