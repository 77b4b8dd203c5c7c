"""Gate bounds: the ``gate:`` block of a dataset spec, with defaults, checked by pydantic.

Every metric kind has a ``Bound``; the bound used on a day is the intersection of what is set::

    absolute        [min, max]
    ratio           [r0 · median(ref), r1 · median(ref)]          (counts: rows, unique IDs)
    slack           [min(ref) − slack, max(ref) + slack]           (rates and shares)

where ``ref`` is the metric over the reference window (the previous ``reference_days`` complete
stats days whose own gate did not fail, see ``validation.gate``). On the first day there is no
reference: only absolute bounds apply, and kinds without one are reported as skipped.

Example (``deployments/configs/<dataset>.yaml``)::

    gate:
      reference_days: 7
      null_rate: {max: 0.5}                  # merged over the default (slack stays 0.1)
      fields:
        device: {top1_share: {max: 1.0}}     # per-field override of one kind
      combo: {codebook_size: 4194304, siamese: 2}
"""

from __future__ import annotations

import statistics
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from features.stats import MIN_COUNT

Severity = Literal["error", "warning"]

#: metric kinds checked per field, by field kind (the rest are per day)
FIELD_KINDS: dict[str, tuple[str, ...]] = {
    "sparse": ("null_rate", "unique_ids", "tail_share", "top1_share", "new_id_rate"),
    "cross": ("unique_ids", "tail_share", "top1_share", "new_id_rate"),
    "dense": ("null_rate", "psi", "kl"),
    "multi": ("null_rate", "unique_ids", "tail_share", "top1_share", "new_id_rate", "psi"),   # psi: of list lengths
}


class GateConfigError(ValueError):
    """Gate settings that cannot be used (e.g. bounds that no value can meet); names the key and file."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Bound(_Strict):
    """Bounds of one metric kind (any of absolute, ratio to the reference median, slack around it).

    With ``follow_constant`` (the defaults of ``top1_share`` and ``null_rate``), an absolute bound that
    the reference breaks with one constant value on every day it holds (days the gate accepted, by an
    override) is widened to that value: a field at top1_share 1.0 (or always missing) today and on
    every accepted day passes.
    """

    min: float | None = None
    max: float | None = None
    ratio: tuple[float, float] | None = None
    slack: float | None = Field(None, ge=0)
    severity: Severity = "error"
    follow_constant: bool = False      # an absolute bound the reference breaks with one constant value follows it

    @model_validator(mode="after")
    def _ordered(self) -> "Bound":
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} > max {self.max}")
        if self.ratio is not None and not 0 <= self.ratio[0] <= self.ratio[1]:
            raise ValueError(f"ratio {self.ratio} must be 0 <= low <= high")
        return self

    def resolve(self, reference: list[float]) -> tuple[float | None, float | None, str]:
        """``(low, high, basis)`` for today given the metric's reference values (may be empty)."""
        lo, hi, basis = self.min, self.max, []
        if lo is not None or hi is not None:
            basis.append("absolute")
        ref = [float(v) for v in reference if v is not None]
        constant = ref[0] if self.follow_constant and ref and min(ref) == max(ref) else None   # same every day
        if constant is not None and hi is not None and constant > hi:
            hi = constant
            basis.append(f"absolute max widened to the reference's constant {hi:.4g}")
        if constant is not None and lo is not None and constant < lo:
            lo = constant
            basis.append(f"absolute min widened to the reference's constant {lo:.4g}")
        if ref and self.ratio is not None:
            med = statistics.median(ref)
            lo = _max(lo, self.ratio[0] * med)
            hi = _min(hi, self.ratio[1] * med)
            basis.append(f"{self.ratio[0]:g}–{self.ratio[1]:g} × ref median {med:.4g}")
        if ref and self.slack is not None:
            lo = _max(lo, min(ref) - self.slack)
            hi = _min(hi, max(ref) + self.slack)
            basis.append(f"ref range [{min(ref):.4g}, {max(ref):.4g}] ± {self.slack:g}")
        return lo, hi, "; ".join(basis)

    @property
    def relative(self) -> bool:
        return self.ratio is not None or self.slack is not None


def _max(a: float | None, b: float) -> float:
    return b if a is None else max(a, b)


def _min(a: float | None, b: float) -> float:
    return b if a is None else min(a, b)


class ComboConfig(_Strict):
    """The DEA combo-ID codebooks the data will be hashed into (match the model's settings)."""

    codebook_size: int = Field(2**18, ge=1, description="rows per combo-ID codebook (the DEA model's codebook_size)")
    siamese: int = Field(2, ge=0, description="k siamese codebooks next to the main one (the DEA model's siamese)")


class GateConfig(_Strict):
    """All gate settings; defaults are sensible for daily CTR logs of 10^4–10^8 rows."""

    reference_days: int = Field(7, ge=1, description="accepted days before the date that relative bounds compare with")
    sample_rows: int = Field(20_000, ge=100, description="rows of the raw and feature samples that GX checks")
    min_count: int = Field(MIN_COUNT, ge=1, description="an ID seen fewer times than this in a day is in the tail "
                                                        "(the feature stage counts with it)")
    seed: int = Field(0, description="seed of the feature-day sample")

    rows: Bound = Bound(min=1, ratio=(0.25, 4.0))
    label_rate: Bound = Bound(min=1e-4, max=0.9999, ratio=(0.5, 2.0))
    duplicate_rate: Bound = Bound(max=0.5, slack=0.05)
    null_rate: Bound = Bound(max=0.99, slack=0.1, follow_constant=True)
    unique_ids: Bound = Bound(ratio=(0.25, 4.0), severity="warning")
    tail_share: Bound = Bound(slack=0.15, severity="warning")
    top1_share: Bound = Bound(max=0.999, slack=0.2, follow_constant=True)
    new_id_rate: Bound = Bound(slack=0.2)
    psi: Bound = Bound(max=0.25)
    kl: Bound = Bound(max=0.1, severity="warning")
    combo_collision_rate: Bound = Bound(max=0.01, severity="warning")
    combo: ComboConfig = ComboConfig()
    fields: dict[str, dict[str, Bound]] = Field(default_factory=dict, description=(
        "per-field overrides: {field: {kind: bound}}, each merged over the kind's default"))

    def bound(self, kind: str, field: str | None = None) -> Bound:
        """The bound of ``kind`` for ``field`` (its override when set)."""
        if field is not None and kind in self.fields.get(field, {}):
            return self.fields[field][kind]
        return getattr(self, kind)


BOUND_KINDS = tuple(n for n, f in GateConfig.model_fields.items() if f.annotation is Bound)


def _merge(base: dict, update: dict) -> dict:
    out = dict(base)
    for k, v in update.items():
        out[k] = _merge(base[k], v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
    return out


def gate_config(spec) -> GateConfig:
    """The spec's ``gate:`` block merged over the defaults, with errors naming the dataset and key."""
    user = dict(spec.gate or {})
    defaults = GateConfig().model_dump(exclude={"fields"})
    fields = user.pop("fields", None) or {}
    where = f"dataset {spec.name!r} (deployments/configs/{spec.name}.yaml)"
    if not isinstance(fields, dict):
        raise ValueError(f"{where}: gate.fields must map field names to bounds, got {type(fields).__name__}")
    merged_fields: dict[str, dict[str, Any]] = {}
    for name, kinds in fields.items():
        if name not in spec.fields:
            raise ValueError(f"{where}: gate.fields.{name}: not a field of the dataset; fields: {spec.fields}")
        if not isinstance(kinds, dict):
            raise ValueError(f"{where}: gate.fields.{name} must map metric kinds to bounds")
        unknown = sorted(set(kinds) - set(BOUND_KINDS))
        if unknown:
            raise ValueError(f"{where}: gate.fields.{name}: unknown metric kind(s) {unknown}; "
                             f"known: {list(BOUND_KINDS)}")
        merged_fields[name] = {k: _merge(defaults[k], v or {}) for k, v in kinds.items()}
    try:
        return GateConfig.model_validate({**_merge(defaults, user), "fields": merged_fields})
    except ValidationError as e:
        lines = [f"{where}: invalid gate settings:"]
        for err in e.errors():
            key = ".".join(str(p) for p in err["loc"])
            msg = "unknown key (typo?)" if err["type"] == "extra_forbidden" else err["msg"]
            lines.append(f"  gate.{key}: {msg}")
        raise ValueError("\n".join(lines)) from None
