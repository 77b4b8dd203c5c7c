"""Checks generated from the dataset spec, the day's statistics and the reference window.

Nothing here is listed per dataset: the spec says which columns and fields exist, the manifest and
the statistics say what they look like, ``GateConfig`` says how far a day may move. Each ``Check``
is plain data (the GX expectation type and its arguments, the bound, the severity), so the suite
can be built, printed and tested without importing Great Expectations; ``validation.gate`` runs
them through GX on four small tables:

    metrics     one row: availability flags, rows, label rate, duplicate rate, per-field null rate,
                unique IDs, tail/top-1 share, new-ID rate, per dense field PSI, combo collision rate
    schema      one row per raw Parquet file: the Arrow type of every column ("absent" if missing)
    raw_sample  the first ``sample_rows`` rows of the raw day (label values)
    buckets     a seeded sample of ``sample_rows`` rows of the feature day, dense fields as bucket k

Distribution distances, with today's bucket shares p and the pooled reference shares q over the
buckets k and "missing" (each count + 0.5, so no share is 0)::

    PSI = Σ_k (p_k − q_k) · ln(p_k / q_k)         (custom expectation on the statistics, full day)
    KL  = Σ_k p_k · ln(p_k / q_k)                 (GX's KL expectation on the bucket sample)
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from features.stats import expected_distinct_pairs
from validation.config import FIELD_KINDS, Bound, ComboConfig, GateConfig, GateConfigError

AVAILABILITY = ("raw_complete", "features_complete", "stats_complete")

_INTS = ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"]
ALLOWED_TYPES = {
    "label": _INTS + ["bool"],
    "sparse": ["string"] + _INTS + ["bool", "null"],
    "dense": ["double", "float", "halffloat"] + _INTS + ["null"],
    "multi": ["list<string>", "list<int64>"],
}

DESCRIPTIONS = {
    "raw_complete": "the raw day exists and is complete",
    "features_complete": "the feature day exists and is complete",
    "stats_complete": "the day's statistics could be computed",
    "columns": "the raw day has every column the spec names",
    "dtype": "the column has the type the spec's field kind needs, in every raw file",
    "label_values": "labels are 0 or 1 (raw sample)",
    "rows": "row count",
    "label_rate": "share of rows with label 1",
    "duplicate_rate": "share of rows that repeat an earlier row exactly",
    "null_rate": "share of rows where the field is missing",
    "unique_ids": "distinct IDs of the field",
    "tail_share": "share of rows whose ID occurs fewer than min_count times",
    "top1_share": "share of rows holding the field's most frequent ID (one value dominating is a pipeline bug)",
    "new_id_rate": "share of rows whose ID was not seen on the previous day",
    "psi": "population stability index of the bucket histogram against the reference window",
    "kl": "KL divergence of the sampled bucket distribution from the reference window",
    "combo_collision_rate": ("expected share of distinct pair keys that share all k+1 combo-codebook rows "
                             "with another key"),
}


def gate_keys() -> str:
    """Every key of a spec's ``gate:`` block, its default and meaning, as a markdown table (``dea
    validate --gate-keys``; the README's copy is held to it by a test)."""
    defaults = GateConfig()
    rows = ["| key | default | meaning |", "|---|---|---|"]
    for name, info in GateConfig.model_fields.items():
        value = getattr(defaults, name)
        if isinstance(value, Bound):
            rows.append(f"| `{name}` | {_bound_text(value)} | {DESCRIPTIONS[name]} |")
        elif isinstance(value, ComboConfig):
            rows += [f"| `{name}.{k}` | {getattr(value, k)} | {f.description} |" for k, f in ComboConfig.model_fields.items()]
        else:
            rows.append(f"| `{name}` | {value if value != {} else '{}'} | {info.description} |")
    return "\n".join(rows)


def _bound_text(b: Bound) -> str:
    parts = [f"min {b.min:g}" if b.min is not None else "", f"max {b.max:g}" if b.max is not None else "",
             f"ratio {b.ratio[0]:g}–{b.ratio[1]:g} × ref median" if b.ratio else "",
             f"slack ± {b.slack:g} around the ref range" if b.slack is not None else "",
             "follows a constant reference" if b.follow_constant else ""]
    return ", ".join(p for p in parts if p) + f" ({b.severity})"


@dataclass
class Check:
    """One expectation of the gate, with its outcome once run."""

    name: str                        # unique, e.g. "null_rate.user_id" (also the metrics column)
    kind: str                        # "null_rate", "dtype", ...
    table: str                       # "metrics" | "schema" | "raw_sample" | "buckets"
    severity: str                    # "error" | "warning"
    gx_type: str | None              # GX expectation class name; None = not run through GX
    kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    field: str | None = None
    low: float | None = None
    high: float | None = None
    allowed: list | None = None
    basis: str = ""                  # how the bound was derived
    observed: Any = None
    status: str = "pending"          # pass | fail | skipped | error
    note: str = ""
    details: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def description(self) -> str:
        return DESCRIPTIONS.get(self.kind, self.kind)

    def bound_text(self) -> str:
        if self.allowed is not None:
            shown = ", ".join(map(str, self.allowed[:8])) + (", …" if len(self.allowed) > 8 else "")
            return f"∈ {{{shown}}}"
        if self.low is None and self.high is None:
            return "—"
        if self.low is None:
            return f"≤ {fmt_number(self.high)}"
        if self.high is None:
            return f"≥ {fmt_number(self.low)}"
        return f"[{fmt_number(self.low)}, {fmt_number(self.high)}]"

    def to_dict(self) -> dict:
        out = asdict(self)
        out.pop("kwargs")
        out["expectation"] = out.pop("name")
        out["bound"] = self.bound_text()
        out["description"] = self.description
        return _jsonable(out)


def fmt_number(v: Any) -> str:
    """A value as reports and messages print it: whole numbers below 10^7 in full (20000), other
    floats to 4 significant digits (0.2401, 1e+09)."""
    if isinstance(v, float):
        return str(int(v)) if v.is_integer() and abs(v) < 1e7 else f"{v:.4g}"
    return str(v)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


# --- raw-day schema -------------------------------------------------------------------------------

def type_name(t: pa.DataType) -> str:
    """Canonical name of an Arrow type: dictionaries by their values, all string kinds as "string",
    lists as ``list<values>`` whatever their element's name."""
    if pa.types.is_dictionary(t):
        t = t.value_type
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return f"list<{type_name(t.value_type)}>"
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "string"
    return str(t)


def schema_table(schemas: list[pa.Schema]) -> pd.DataFrame:
    """One row per raw file, one column per column seen in any file: its type name, or "absent"."""
    names = list(dict.fromkeys(n for s in schemas for n in s.names))
    rows = [{n: type_name(s.field(n).type) if n in s.names else "absent" for n in names} for s in schemas]
    return pd.DataFrame(rows, columns=names, dtype=object)


def schema_checks(spec, schema: pd.DataFrame | None, raw_sample: pd.DataFrame | None) -> list[Check]:
    """Column presence and per-column types of the raw day, from the spec's field kinds."""
    present = list(schema.columns) if schema is not None else []
    absent = [c for c in spec.raw_columns if c not in present]
    checks = [Check("columns", "columns", "schema", "error", "ExpectTableColumnsToMatchSet",
                    {"column_set": list(spec.raw_columns), "exact_match": False},
                    allowed=list(spec.raw_columns), basis="spec",
                    observed=f"missing {absent}" if absent else "all present")]
    kinds = {spec.label: "label", **{s: "sparse" for s in spec.sparse}, **{m: "multi" for m in spec.multi_names},
             **{d: "dense" for d in spec.dense_names}}
    for col, kind in kinds.items():
        allowed = ALLOWED_TYPES[kind]
        check = Check(f"dtype.{col}", "dtype", "schema", "error", "ExpectColumnValuesToBeInSet",
                      {"column": col, "value_set": allowed}, field=col, allowed=allowed, basis=f"spec: {kind}")
        if col in present:
            check.observed = ", ".join(sorted(set(schema[col])))
        else:
            check.status = "skipped"
            check.note = "column absent (see `columns`)" if schema is not None else "no raw day"
        checks.append(check)
    label = Check("label_values", "label_values", "raw_sample", "error", "ExpectColumnValuesToBeInSet",
                  {"column": spec.label, "value_set": [0, 1]}, field=spec.label, allowed=[0, 1], basis="spec")
    if raw_sample is not None and spec.label in raw_sample.columns:
        label.observed = sorted(pd.unique(raw_sample[spec.label]).tolist())[:10]
    else:
        label.status, label.note = "skipped", "no label column"
    checks.append(label)
    return checks


# --- statistics -----------------------------------------------------------------------------------

def _smoothed(counts: np.ndarray) -> np.ndarray:
    c = np.asarray(counts, dtype=np.float64) + 0.5
    return c / c.sum()


def bucket_shares(hist: dict) -> np.ndarray:
    """Counts of [missing, bucket 0, …, bucket n−1] of one dense histogram."""
    return np.concatenate([[hist["missing"]], hist["counts"]]).astype(np.float64)


def histogram(stats: dict, field: str) -> dict | None:
    """A field's histogram: a dense field's buckets, a multi-valued field's list lengths."""
    return stats.get("dense", {}).get(field) or stats.get("lengths", {}).get(field)


def reference_histogram(field: str, stats: dict, reference: list[dict]) -> np.ndarray | None:
    """Pooled [missing, 0..n−1] counts of the reference days bucketed like today (same manifest)."""
    today = histogram(stats, field)
    same = [h for r in reference if (h := histogram(r, field)) and h["n_buckets"] == today["n_buckets"]
            and r.get("manifest_digest") == stats.get("manifest_digest")]
    if not same:
        return None
    return np.sum([bucket_shares(h) for h in same], axis=0)


def psi(today: np.ndarray, reference: np.ndarray) -> float:
    """Population stability index Σ (p − q) ln(p / q) of two count vectors (smoothed by +0.5)."""
    p, q = _smoothed(today), _smoothed(reference)
    return float(np.sum((p - q) * np.log(p / q)))


def combo_collision(stats: dict, combo) -> dict[str, float]:
    """Expected collisions of the day's distinct ordered pair keys in the DEA combo codebooks.

    With N expected distinct keys (``features.stats.expected_distinct_pairs``) hashed uniformly into
    M rows, a key shares its main row with another key with probability 1 − exp(−(N−1)/M), and all
    k+1 rows (main + k siamese, independent hashes) with probability 1 − exp(−(N−1)/M^(k+1)).
    """
    n = expected_distinct_pairs(stats)
    m = float(combo.codebook_size)
    return {"pair_keys": n, "codebook_size": combo.codebook_size, "siamese": combo.siamese,
            "keys_per_row": n / m, "main_collision_rate": float(-np.expm1(-max(n - 1, 0) / m)),
            "all_collision_rate": float(-np.expm1(-max(n - 1, 0) / m ** (combo.siamese + 1)))}


def _metric(stats: dict, kind: str, field: str | None):
    if field is None:
        return stats.get(kind)
    return stats["fields"].get(field, {}).get(kind)


def availability_checks(availability: dict[str, tuple[bool, str]]) -> tuple[list[Check], dict[str, Any]]:
    """One check per input (raw day, feature day, statistics): 1.0 when it could be read."""
    checks, row = [], {}
    for name in AVAILABILITY:
        ok, why = availability[name]
        row[name] = 1.0 if ok else 0.0
        checks.append(Check(name, name, "metrics", "error", "ExpectColumnMaxToBeBetween",
                            {"column": name, "min_value": 1.0, "max_value": 1.0}, low=1.0, high=1.0,
                            observed=row[name], basis="always", note=why))
    return checks, row


def bounded_check(spec, cfg: GateConfig, reference: list[dict], kind: str, value, fld: str | None = None, *,
                  gx_type: str = "ExpectColumnMaxToBeBetween", details: dict | None = None,
                  unmeasured: str = "not measured") -> Check:
    """The check of one metric on the metrics table, its bound resolved against the reference."""
    name = kind if fld is None else f"{kind}.{fld}"
    bound = cfg.bound(kind, fld)
    refs = [_metric(r, kind, fld) for r in reference] if kind not in ("psi", "combo_collision_rate") else []
    lo, hi, basis = bound.resolve(refs)
    lo = None if lo is None or lo <= 0 else lo            # every metric is >= 0: no lower bound
    if lo is not None and hi is not None and lo > hi:
        key = f"gate.fields.{fld}.{kind}" if fld in cfg.fields and kind in cfg.fields[fld] else f"gate.{kind}"
        raise GateConfigError(
            f"dataset {spec.name!r}: the bound of {name} is empty, [{lo:.4g}, {hi:.4g}] ({basis}): no value "
            f"can pass. The spec's max is below what the reference window allows; raise {key}.max or lower "
            f"its slack/ratio in deployments/configs/{spec.name}.yaml")
    check = Check(name, kind, "metrics", bound.severity, gx_type, field=fld, low=lo, high=hi, basis=basis,
                  observed=value, details=details or {})
    if value is None:
        check.status, check.note = "skipped", unmeasured
    elif lo is None and hi is None:
        check.status = "skipped"
        check.note = ("no bound set" if not bound.relative else
                      "no reference value" if reference else "no reference window")
    else:
        check.kwargs = {"column": name, "min_value": lo, "max_value": hi}
    return check


def _field_metrics(stats: dict, reference: list[dict]):
    """``(kind, value, field, gx_type, why_unmeasured)`` of every per-field metric checked on the
    metrics table (KL is checked on the bucket sample, see ``bucket_checks``)."""
    new_ids = f"not measured ({stats.get('new_id_note') or 'no previous day'})"
    for f, s in stats["fields"].items():
        for kind in FIELD_KINDS[s["kind"]]:
            if kind == "psi":
                ref = reference_histogram(f, stats, reference)
                value = None if ref is None else psi(bucket_shares(histogram(stats, f)), ref)
                yield "psi", value, f, "ExpectColumnBucketPsiToBeLessThan", "no reference window"
            elif kind != "kl":
                yield (kind, s.get(kind), f, "ExpectColumnMaxToBeBetween",
                       new_ids if kind == "new_id_rate" else "not measured")


def metric_checks(spec, cfg: GateConfig, stats: dict | None, reference: list[dict],
                  availability: dict[str, tuple[bool, str]]) -> tuple[list[Check], dict[str, Any]]:
    """Checks on the one-row metrics table, and that row (column name = check name)."""
    checks, row = availability_checks(availability)
    if stats is None:
        return checks, row
    collision = combo_collision(stats, cfg.combo)
    metrics = [("rows", stats["rows"], None, "ExpectColumnMaxToBeBetween", "not measured"),
               ("label_rate", stats["label_rate"], None, "ExpectColumnMaxToBeBetween", "not measured"),
               ("duplicate_rate", stats["duplicate_rate"], None, "ExpectColumnMaxToBeBetween", "not measured"),
               *_field_metrics(stats, reference)]
    for kind, value, fld, gx_type, unmeasured in metrics:
        top = stats["fields"][fld].get("top1_value") if kind == "top1_share" else None
        checks.append(bounded_check(spec, cfg, reference, kind, value, fld, gx_type=gx_type, unmeasured=unmeasured,
                                    details={"top1_value": top} if top is not None else None))
    checks.append(bounded_check(spec, cfg, reference, "combo_collision_rate", collision["all_collision_rate"],
                                details=collision))
    for check in checks[len(AVAILABILITY):]:
        if check.kwargs:
            row[check.name] = float(check.observed)
    return checks, row


def bucket_checks(cfg: GateConfig, stats: dict | None, reference: list[dict],
                  sample: pd.DataFrame | None) -> list[Check]:
    """GX's KL-divergence expectation per dense field, on the bucket sample against the reference."""
    checks = []
    for f, hist in (stats or {}).get("dense", {}).items():
        bound = cfg.bound("kl", f)
        check = Check(f"kl.{f}", "kl", "buckets", bound.severity, "ExpectColumnKLDivergenceToBeLessThan",
                      field=f, low=None, high=bound.max, basis="absolute")
        ref = reference_histogram(f, stats, reference)
        if ref is None or sample is None or f not in sample.columns:
            check.status, check.note = "skipped", "no reference window" if ref is None else "no feature sample"
        elif bound.max is None:
            check.status, check.note = "skipped", "no bound set"
        else:
            values = [-1] + list(range(hist["n_buckets"]))
            check.kwargs = {"column": f, "threshold": bound.max,
                            "partition_object": {"values": values, "weights": _smoothed(ref).tolist()}}
        checks.append(check)
    return checks


def build_checks(spec, cfg: GateConfig, *, schema: pd.DataFrame | None,
                 raw_sample: pd.DataFrame | None, stats: dict | None, reference: list[dict],
                 bucket_sample: pd.DataFrame | None,
                 availability: dict[str, tuple[bool, str]]) -> tuple[list[Check], dict[str, Any]]:
    """Every check of a day, and the metrics row they read."""
    checks = schema_checks(spec, schema, raw_sample)
    mchecks, row = metric_checks(spec, cfg, stats, reference, availability)
    checks += mchecks
    checks += bucket_checks(cfg, stats, reference, bucket_sample)
    return checks, row


def verdict(checks: list[Check], *, has_reference: bool) -> str:
    """fail: an error-severity check failed; warn: a warning failed, or no reference window; else pass."""
    failed = [c for c in checks if c.status in ("fail", "error")]
    if any(c.severity == "error" for c in failed):
        return "fail"
    if failed or not has_reference:
        return "warn"
    return "pass"


def bucket_sample(files: list, stats: dict, rows: int, seed: int) -> pd.DataFrame | None:
    """A seeded sample of ``rows`` rows of the feature day's dense columns, as bucket indices k.

    Missing is −1, an ID that is no bucket of the manifest −2. Reads only the dense columns.
    """
    from features.stats import bucket_table
    from features.storage import read_table

    dense = stats.get("dense", {})
    if not dense:
        return None
    table = pa.concat_tables([read_table(f, columns=list(dense)) for f in files])
    rng = np.random.default_rng(seed)
    take = np.sort(rng.choice(table.num_rows, size=min(rows, table.num_rows), replace=False))
    out = {}
    for f, hist in dense.items():
        lookup = bucket_table(f, hist["n_buckets"])
        keys = np.array(sorted(lookup), dtype=np.int64)
        vals = np.array([lookup[k] for k in keys], dtype=np.int64)
        ids = table.column(f).take(pa.array(take)).to_numpy()
        pos = np.clip(np.searchsorted(keys, ids), 0, len(keys) - 1)
        out[f] = np.where(keys[pos] == ids, vals[pos], -2)
    return pd.DataFrame(out)
