"""Dataset specs: what a dataset's fields are and how to read it, loaded from YAML.

A spec lives in ``deployments/configs/<dataset>.yaml``. Every key is checked: a typo is an error
that names the key and the file.

Example::

    name: synthetic
    label: click            # raw label column, values in {0, 1} after the source's own mapping
    group: user_id          # GAUC group (a sparse field), optional
    sparse: [user_id, item_id, category]
    dense:
      - {name: price, buckets: 32, log1p: true}
    cross: [[user_id, category]]
    source: {kind: synthetic, days: 3, rows_per_day: 200000}
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

CONFIG_DIR = Path(__file__).resolve().parent.parent / "deployments" / "configs"
RESERVED_COLUMNS = ("label", "group", "dt")


class SpecError(ValueError):
    """A dataset spec that cannot be used; the message names the file and the key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DenseField(_Strict):
    """A numeric field, cut into ``buckets`` quantile buckets (optionally after ``log1p``)."""

    name: str
    buckets: int = Field(32, ge=2, le=4096)
    log1p: bool = False


class SourceSpec(_Strict):
    """Where the raw logs come from and how to cut them into days (see ``features.sources``)."""

    kind: Literal["synthetic", "parquet", "csv", "criteo_tsv", "libfm", "movielens", "avazu_csv"]
    path: str | None = None            # file or folder; relative paths are relative to the repo root
    days: int = Field(3, ge=1)         # pseudo-days for sources without dates
    start_date: str = "2026-01-01"     # first pseudo-day
    date_column: str | None = None     # a raw column holding the date (parquet/csv)
    options: dict[str, Any] = Field(default_factory=dict)  # adapter-specific (separator, column names, ...)


class RetentionPolicy(_Strict):
    """How much history ``dea gc`` (and the weekly ``gc/weekly`` deployment) keeps of a dataset.

    Whatever these say, nothing the champion, a rollback or the next run needs is removed: the
    champion and challenger, the last ``champions`` entries of the champion history, and the data
    days of the next run's training window and gate reference window (``dea_model.retention``).
    """

    versions: int = Field(5, ge=1)        # newest registered model versions
    champions: int = Field(3, ge=1)       # champion history for rollback: the champion and the ones before it
    run_days: int = Field(7, ge=1)        # runs/<dataset>/dt=… (candidates, evaluations) and ad-hoc runs
    data_days: int = Field(30, ge=1)      # raw, features, stats, validation and predictions days


class DatasetSpec(_Strict):
    """One dataset: label, group, fields, missing-value policy, crosses, source, gate bounds."""

    name: str
    label: str
    group: str | None = None
    sparse: list[str] = Field(default_factory=list)
    dense: list[DenseField] = Field(default_factory=list)
    missing: Literal["token", "error"] = "token"   # token: missing -> the MISSING_TOKEN ID
    cross: list[tuple[str, str]] = Field(default_factory=list)
    passthrough: list[str] = Field(default_factory=list)  # raw columns copied to features, never model inputs
    source: SourceSpec
    gate: dict[str, Any] = Field(default_factory=dict)    # data-quality bounds: validation.config.GateConfig;
    #                                                        every key, default, meaning: `dea validate --gate-keys`
    retention: RetentionPolicy = RetentionPolicy()        # what `dea gc` keeps

    @field_validator("name")
    @classmethod
    def _name_is_a_path_segment(cls, v: str) -> str:
        if not v or "/" in v or v.startswith("."):
            raise ValueError(f"dataset name {v!r} must be a plain folder name")
        return v

    @model_validator(mode="after")
    def _fields_are_consistent(self) -> "DatasetSpec":
        names = self.sparse + [d.name for d in self.dense]
        if not names:
            raise ValueError("a dataset needs at least one sparse or dense field")
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"fields listed twice: {dupes}")
        clash = sorted(set(self.fields) & set(RESERVED_COLUMNS))
        if clash:
            raise ValueError(f"field names {clash} are reserved for feature-table columns {RESERVED_COLUMNS}")
        if self.label in names:
            raise ValueError(f"label column {self.label!r} is also listed as a field")
        if self.group is not None and self.group not in self.sparse:
            raise ValueError(f"group {self.group!r} must be one of the sparse fields {self.sparse}")
        for a, b in self.cross:
            for f in (a, b):
                if f not in names:
                    raise ValueError(f"cross ({a}, {b}) names {f!r}, which is not a field")
        return self

    @property
    def dense_names(self) -> list[str]:
        return [d.name for d in self.dense]

    @property
    def cross_names(self) -> list[str]:
        return [f"{a}_x_{b}" for a, b in self.cross]

    @property
    def fields(self) -> list[str]:
        """Model input fields in feature-table order: sparse, dense, crosses."""
        return self.sparse + self.dense_names + self.cross_names

    @property
    def raw_columns(self) -> list[str]:
        """Columns a raw day must have."""
        cols = [self.label] + self.sparse + self.dense_names + self.passthrough
        return list(dict.fromkeys(cols))

    def config_hash(self) -> str:
        """Hash of everything that changes the feature tables (not the source, gate or retention)."""
        relevant = self.model_dump(exclude={"source", "gate", "retention"})
        return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


def _describe(err: ValidationError, path: Path) -> str:
    lines = [f"invalid dataset spec {path}:"]
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = "unknown key (typo?)" if e["type"] == "extra_forbidden" else e["msg"]
        lines.append(f"  {key}: {msg}")
    return "\n".join(lines)


def load_spec(name_or_path: str | Path, overrides: dict[str, Any] | None = None) -> DatasetSpec:
    """Load ``deployments/configs/<name>.yaml`` (or a YAML path), with optional top-level overrides."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = CONFIG_DIR / f"{name_or_path}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
        raise SpecError(f"no dataset spec {path}; known datasets: {known}")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise SpecError(f"dataset spec {path} is not valid YAML: {e}") from e
    if not isinstance(raw, dict):
        raise SpecError(f"dataset spec {path} must be a mapping of keys, got {type(raw).__name__}")
    raw.update(overrides or {})
    try:
        return DatasetSpec.model_validate(raw)
    except ValidationError as e:
        raise SpecError(_describe(e, path)) from None


def available_specs() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
