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

A file source may add ``label_rule: rating >= 4``, multi-valued fields ``multi: [{name: genres,
sep: "|", max_len: 4}]`` and side tables ``source.join: [{path: items.csv, key: item_id, columns:
[genres]}]`` (README, "Bring your own data").
"""

from __future__ import annotations

import hashlib
import json
import re
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


class MultiField(_Strict):
    """A multi-valued sparse field (genres, tags, recent items): a list column, or a string column cut
    by ``sep``. Each element gets the feature ID of a sparse value (hash spec 1, per element); the
    first ``max_len`` non-missing elements are kept and the model pools their embeddings."""

    name: str
    sep: str | None = None             # "Action|Comedy" with sep "|"; None: the column is a list already
    max_len: int = Field(8, ge=1, le=256)
    pooling: Literal["mean", "sum"] = "mean"


class SideTable(_Strict):
    """A lookup table (users, items, ...) joined to every log row at ingest: a left join on ``key``,
    so a row whose key the table lacks keeps its row and gets missing values (``features.sources.joins``).
    The key is named ``key``, not ``on``: YAML reads a bare ``on`` as the boolean true."""

    path: str                          # a .csv / .tsv / .parquet file; relative like source.path
    key: str                           # the key column of the logs
    table_key: str | None = None       # the table's key column when it is named differently (unique there)
    columns: list[str] = Field(min_length=1)   # the table's columns each row gains
    sep: str = ","                     # CSV delimiter (".tsv": tab)

    @property
    def key_in_table(self) -> str:
        return self.table_key or self.key


_RULE = re.compile(r"^\s*(\w+)\s*(>=|<=|==|!=|>|<|\bin\b)\s*(.+?)\s*$")


class LabelRule(_Strict):
    """``label = column <op> value`` as 0/1, computed at ingest; written ``rating >= 4``,
    ``action in [click, buy]`` or as a mapping ``{column, op, value}``."""

    column: str
    op: Literal[">=", ">", "<=", "<", "==", "!=", "in"]
    value: int | float | str | list[int | float | str]

    @model_validator(mode="before")
    @classmethod
    def _parse(cls, v: Any) -> Any:
        if not isinstance(v, str):
            return v
        m = _RULE.match(v)
        if not m:
            raise ValueError(f"label_rule {v!r}: write `<column> <op> <value>` with op one of "
                             f">=, >, <=, <, ==, !=, in (e.g. `rating >= 4`, `action in [click, buy]`)")
        column, op, value = m.groups()
        return {"column": column, "op": op, "value": yaml.safe_load(value)}

    @model_validator(mode="after")
    def _value_fits_op(self) -> "LabelRule":
        if (self.op == "in") != isinstance(self.value, list):
            raise ValueError(f"label_rule on {self.column!r}: op 'in' takes a list and the others one value")
        return self

    def __str__(self) -> str:
        return f"{self.column} {self.op} {self.value}"


class SourceSpec(_Strict):
    """Where the raw logs come from and how to cut them into days (see ``features.sources``)."""

    kind: Literal["synthetic", "parquet", "csv", "criteo_tsv", "libfm", "movielens", "avazu_csv"]
    path: str | None = None            # file or folder; relative paths are relative to the repo root
    days: int = Field(3, ge=1)         # pseudo-days for sources without dates
    start_date: str = "2026-01-01"     # first pseudo-day
    date_column: str | None = None     # a raw column holding the date (parquet/csv)
    options: dict[str, Any] = Field(default_factory=dict)  # adapter-specific (separator, column names, ...)
    join: list[SideTable] = Field(default_factory=list)    # lookup tables joined on a key, in order


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
    label_rule: LabelRule | None = None     # computes `label` from another column at ingest (`rating >= 4`)
    group: str | None = None
    sparse: list[str] = Field(default_factory=list)
    multi: list[MultiField] = Field(default_factory=list)   # multi-valued sparse fields (list<int64> IDs)
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
        names = self.sparse + self.multi_names + [d.name for d in self.dense]
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
                if f in self.multi_names:
                    raise ValueError(f"cross ({a}, {b}) names the multi-valued field {f!r}; a cross needs one "
                                     f"value per row (the model pools multi-valued fields instead)")
        self._check_joins()
        return self

    def _check_joins(self) -> None:
        used = set(self.raw_columns) | ({self.label_rule.column} if self.label_rule else set())
        seen: set[str] = set()
        for table in self.source.join:
            unused = [c for c in table.columns if c not in used]
            if unused:
                raise ValueError(f"source.join {table.path}: columns {unused} are not fields, passthrough "
                                 f"or the label rule's column; list only what the dataset uses")
            twice = sorted(seen & set(table.columns))
            if twice:
                raise ValueError(f"source.join {table.path}: columns {twice} come from another table too")
            seen |= set(table.columns)

    @property
    def dense_names(self) -> list[str]:
        return [d.name for d in self.dense]

    @property
    def multi_names(self) -> list[str]:
        return [m.name for m in self.multi]

    @property
    def cross_names(self) -> list[str]:
        return [f"{a}_x_{b}" for a, b in self.cross]

    @property
    def fields(self) -> list[str]:
        """Model input fields in feature-table order: sparse, multi-valued, dense, crosses."""
        return self.sparse + self.multi_names + self.dense_names + self.cross_names

    @property
    def raw_columns(self) -> list[str]:
        """Columns a raw day must have."""
        cols = [self.label] + self.sparse + self.multi_names + self.dense_names + self.passthrough
        return list(dict.fromkeys(cols))

    def config_hash(self) -> str:
        """Hash of everything that changes the feature tables (not the source, gate or retention)."""
        relevant = self.model_dump(exclude={"source", "gate", "retention", "label_rule"})
        if not self.multi:
            relevant.pop("multi")         # specs without multi-valued fields keep their hash
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
