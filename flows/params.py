"""Typed parameters shared by the flows: the Prefect UI renders them as forms.

Each parameter the flows share has one annotated type here, which carries its help text (and its
choices): ``dataset: DatasetName = "synthetic"`` in every flow signature shows the same label, text
and dropdown in every form.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic.fields import FieldInfo

from dea_model.config import TrainConfig
from features.lake import Lake, parse_date, window_before
from features.sources import pseudo_days
from features.spec import DatasetSpec, available_specs, load_spec
from flows.defaults import DAILY_MODEL, DAILY_TRAIN_FIELDS
from flows.settings import reports_url


def doc(text: str, **schema: Any) -> FieldInfo:
    """A flow parameter's help text (and other JSON-schema keys, e.g. ``enum``), for ``Annotated[T, doc(...)]``.

    Prefect 3.8 rebuilds each flow parameter's ``Field`` with ``description=`` its docstring's ``Args:``
    entry or None, which replaces a ``Field(description=...)`` of the annotation; pydantic merges
    ``json_schema_extra`` instead, so the text reaches the form (tests/test_forms.py checks every flow).
    """
    return Field(description=text, json_schema_extra={"description": text, **schema})


# The form offers the specs shipped in deployments/configs/ (read once, at import); a Python caller
# may also pass a spec's path (``dea run --dataset my.yaml``), which ``load_spec`` checks first thing.
DatasetName = Annotated[str, doc("dataset spec: deployments/configs/<dataset>.yaml", enum=available_specs())]
RunDate = Annotated[dt.date | None, doc("YYYY-MM-DD; empty = yesterday, i.e. the day before the run's "
                                        "scheduled start, in UTC (a dataset cut into pseudo-days: its last)")]
Window = Annotated[int, doc("training window: the days before the date a model trains on, stepping over days "
                            "whose gate failed; the last one is the validation day")]
Force = Annotated[bool, doc("recompute even when the outputs are up to date")]
Home = Annotated[str | None, doc("lake root on the worker; empty = $DEA_HOME, else ./.dea")]
SpecOverrides = Annotated[dict[str, Any] | None, doc("top-level keys of the dataset spec replaced for this run, "
                                                      'e.g. {"gate": {...}} or {"source": {...}}')]
GateOverride = Annotated[str | None, doc("accept the day although its gate failed: the reason, logged in the "
                                         "verdict (after reading the report); missing or unreadable data is "
                                         "never accepted")]
ModelName = Annotated[str | None, doc("registered model, models/<name>/ in the lake; empty = the dataset's name")]


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", field_title_generator=lambda name, info: name)


# The daily retrain's default (flows.defaults: also what `dea run --help` says)
DAILY_TRAIN = TrainConfig(model=DAILY_MODEL, **DAILY_TRAIN_FIELDS)


class Promotion(_Params):
    """Which registered model a candidate joins, and the rule that moves its ``champion`` alias.

    Promote when GAUC_cand > GAUC_champ + ``min_gain`` and AUC_cand >= AUC_champ - ``auc_tolerance``
    (both evaluated on the run's date); the first model is always promoted.
    """

    model_name: ModelName = None
    auc_tolerance: float = Field(0.002, ge=0, description="how much AUC a candidate may lose to the champion "
                                                          "and still be promoted")
    min_gain: float = Field(0.0, ge=0, description="how much GAUC a candidate must gain over the champion")

    def name_for(self, dataset: str) -> str:
        """One champion per dataset unless a name is given: a model only fits its dataset's IDs."""
        return self.model_name or dataset


class DaskParams(_Params):
    """Where feature work runs: an existing scheduler (``tcp://host:8786``) or a LocalCluster."""

    address: str | None = Field(None, description="Dask scheduler, tcp://host:8786; empty = $DEA_DASK_ADDRESS, "
                                                  "else a LocalCluster")
    n_workers: int | None = Field(None, ge=1, description="LocalCluster worker processes; empty = the cores, "
                                                          "at most 4")


def _registered(cfg: TrainConfig) -> TrainConfig:
    """A flow's ``train.model`` must be in the model registry: a typo fails the run before any stage,
    not at training. (``TrainConfig`` itself takes any name: tests train stand-in models.)"""
    from dea_model.models import REGISTRY, available

    if cfg.model not in REGISTRY:
        raise ValueError(f"unknown model {cfg.model!r}; available: {', '.join(available())}")
    return cfg


Training = Annotated[TrainConfig, AfterValidator(_registered),
                     doc("the candidate's training config: model, hparams, epochs, lr, ...")]
PromotionRule = Annotated[Promotion, doc("the registered model the candidate joins, and when it becomes champion")]
Cluster = Annotated[DaskParams, doc("where feature work runs: a Dask scheduler, else a LocalCluster")]


def resolve_date(date: dt.date | str | None, spec: DatasetSpec | None = None) -> str:
    """The run's date as ``YYYY-MM-DD``. ``None`` means, for a source cut into pseudo-days (no dates
    of its own), its last pseudo-day; otherwise the day before the run was scheduled, in UTC (the
    cron's time zone): a 06:00 UTC run retrains on yesterday even when it starts late, and outside a
    scheduled run, the day before now (UTC)."""
    days = pseudo_days(spec) if date is None and spec is not None else None
    if days:
        logging.getLogger(__name__).info(
            "dataset %r has pseudo-days %s..%s (no dates of its own): no date given, running its last, %s",
            spec.name, days[0], days[-1], days[-1])
        return days[-1]
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
        return cls(spec, Lake.default(home), resolve_date(date, spec))

    @property
    def dataset(self) -> str:
        return self.spec.name

    def report_url(self, path) -> str:
        """The address the artifacts link to for a file of this lake (``settings.reports_url``)."""
        return reports_url(self.lake.root, path)

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
