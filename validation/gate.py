"""The data-quality gate of one day: gather its inputs → checks through GX → verdict and reports.

The gate reads; it computes no statistics of its own. The feature stage wrote, with each feature
day, its statistics and the exact value counts of its IDs (``stats/<dataset>/dt=<date>/``:
``stats.json``, ``counts.parquet``; ``features.stats``). ``run_gate(spec, lake, date)`` always
writes ``validation/<dataset>/dt=<date>/``::

    verdict.json          verdict (pass | warn | fail), every check {expectation, observed, bound,
                          severity, status}, reference dates, the day-over-day new-ID rates,
                          override, input fingerprints
    summary.md            the same as a markdown table (published as a Prefect artifact by the flows)
    rank_frequency.png    per-field rank-frequency curves, today over the reference
    dense_buckets.png     per dense field, bucket shares today against the reference
    gx/                   the GX file context; Data Docs at gx/uncommitted/data_docs/local_site/index.html

Semantics:
- Every check has a severity: a failing ``error`` makes the verdict ``fail`` (the day is blocked),
  a failing ``warning`` makes it ``warn`` (reported, not blocked).
- Missing or broken inputs are failing ``error`` checks of their own whose note says why, and the
  verdict JSON is written all the same: ``raw_complete`` (no raw day, an unreadable file),
  ``features_complete`` (no manifest, no feature day, a feature file that no longer matches the
  SHA-256 its record holds), ``stats_complete`` (no statistics computed from the current feature
  table, e.g. a day written before the feature stage wrote them: run ``dea features`` for it).
- Reference window: the previous ``reference_days`` stats days before the date whose own gate did
  not end ``fail`` (an overridden day counts: a person judged it acceptable). A feature day there
  without statistics (written before the feature stage wrote them) is no reference day; a note
  names it and the command that computes its statistics.
- Day-over-day checks (new IDs) compare the day's stored ID counts with those of the last day
  whose gate did not fail (``accepted_days``), never with a failed one; the reference days'
  new-ID rates are measured the same way (each against its own last accepted day).
- Statistics and verdicts are keyed by the fingerprints of what they read, which include the
  digest of the feature table's bytes: a feature day rewritten with other contents is re-checked.
- First day (no reference day): only absolute bounds apply, relative checks are ``skipped``, and
  the verdict is at best ``warn`` ("no reference window"), never ``pass``.
- Manual override (``override="reason"``): a ``fail`` becomes ``warn``; the reason, the user and the
  time are logged in the verdict next to ``checks_verdict`` (what the checks said). It accepts a day
  whose data exists and failed its checks; a day without usable data (a failing availability
  check) stays ``fail`` (``override.applied`` false).
- Bounds that no value can meet (a spec ``max`` below the reference-based ``min``) are a
  configuration error (``GateConfigError``), raised before any check runs; nothing is written.
- The folder is written atomically with a completion record; a second run with the same inputs,
  settings and override does nothing and returns the stored verdict.
"""

from __future__ import annotations

import bisect
import datetime as dt
import getpass
import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from features.lake import (Lake, staged_dir, fingerprint, make_record, parse_date, read_record, up_to_date,
                           verify_checksums, write_json_atomic, write_record)
from features.storage import lake_path, parquet_file
from features.manifest import Manifest
from features.spec import DatasetSpec
from features.stats import new_ids, read_day_counts, read_day_stats
from validation.checks import Check, build_checks, bucket_sample, schema_table, verdict
from validation.config import GateConfig, gate_config

log = logging.getLogger(__name__)

VERDICT_FILE = "verdict.json"
SUMMARY_FILE = "summary.md"
DOCS_INDEX = Path("gx/uncommitted/data_docs/local_site/index.html")


@dataclass
class GateResult:
    """Outcome of the gate on one day; ``doc`` is the verdict JSON."""

    doc: dict
    path: Path
    seconds: float
    skipped: bool = False
    summary: str = ""
    plots: list[Path] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        return self.doc["verdict"]

    @property
    def blocked(self) -> bool:
        return self.verdict == "fail"

    @property
    def checks(self) -> list[dict]:
        return self.doc["checks"]

    @property
    def failing(self) -> list[dict]:
        """Failing checks, blocking (error) ones first."""
        bad = [c for c in self.checks if c["status"] in ("fail", "error")]
        return sorted(bad, key=lambda c: c["severity"] != "error")

    def check(self, name: str) -> dict:
        for c in self.checks:
            if c["expectation"] == name:
                return c
        raise KeyError(f"no check {name!r} in the gate of {self.doc['dataset']} {self.doc['date']}")

    @property
    def verdict_path(self) -> Path:
        return self.path / VERDICT_FILE

    @property
    def summary_path(self) -> Path:
        return self.path / SUMMARY_FILE

    @property
    def data_docs(self) -> Path | None:
        p = self.doc.get("reports", {}).get("data_docs")
        return lake_path(p) if p else None


# --- which days ------------------------------------------------------------------------------------

def read_verdict(lake: Lake, dataset: str, date: str) -> dict | None:
    """The stored verdict JSON of a day, or None."""
    path = lake.validation(dataset, parse_date(date).isoformat()) / VERDICT_FILE
    return json.loads(path.read_text()) if path.exists() else None


def gate_failed(lake: Lake, dataset: str, date: str) -> bool:
    """True when the day's own gate ended ``fail`` (not overridden): it is no reference for later
    days (drift, new IDs) and no training day."""
    return (read_verdict(lake, dataset, date) or {}).get("verdict") == "fail"


def accepted_days(lake: Lake, dataset: str, before: str) -> list[str]:
    """Complete feature days before ``before`` whose gate did not fail, oldest first."""
    return [d for d in lake.dates("features", dataset) if d < before and not gate_failed(lake, dataset, d)]


def _day_before(days: list[str], date: str) -> str | None:
    """The last of ``days`` (sorted) before ``date``: "yesterday" for the day-over-day checks when
    ``days`` are the accepted days, so a failed day never becomes the next day's yardstick."""
    i = bisect.bisect_left(days, date)
    return days[i - 1] if i else None


# --- statistics, read ------------------------------------------------------------------------------

def day_over_day(lake: Lake, dataset: str, date: str, previous: str | None, rows: int) -> dict:
    """New-ID rates of ``date`` against ``previous`` from the two days' stored ID counts:
    ``{"previous_date", "fields": {field: {"new_id_rate", "new_id_share"}}, "note"}``."""
    out = {"previous_date": previous, "fields": {}, "note": None}
    if previous is None:
        out["note"] = "no previous day"
        return out
    today = read_day_counts(lake, dataset, date)
    before = read_day_counts(lake, dataset, previous, with_counts=False)
    if today is None or before is None:
        out["note"] = (f"no stored ID counts of {date if today is None else previous} (statistics written "
                       f"before {lake.stats(dataset)}/dt=*/counts.parquet existed)")
        return out
    out["fields"] = new_ids(today, before, rows)
    return out


def with_new_ids(stats: dict, dod: dict) -> dict:
    """A day's statistics with its day-over-day metrics (``day_over_day``) filled in; a day without
    stored counts keeps what its statistics hold (statistics version 1 carried them)."""
    fields = {f: {**s, **{k: dod["fields"].get(f, {}).get(k, s.get(k)) for k in ("new_id_rate", "new_id_share")}}
              for f, s in stats["fields"].items()}
    return {**stats, "fields": fields, "previous_date": dod["previous_date"], "new_id_note": dod["note"]}


def current_stats(lake: Lake, dataset: str, date: str, cfg: GateConfig) -> dict:
    """The statistics the feature stage wrote for exactly the current feature table of ``date``."""
    features, folder = lake.features(dataset, date), lake.stats(dataset, date)
    stats = read_day_stats(lake, dataset, date, features=fingerprint(features))
    if stats is None:
        raise FileNotFoundError(f"no statistics of the feature day {features} computed from its current table at "
                                f"{folder} (a day written before the feature stage wrote them, or rewritten since): "
                                f"run `dea features --dataset {dataset} --dates {date}`")
    if stats.get("min_count") != cfg.min_count:
        raise ValueError(f"the statistics at {folder} count the tail below min_count {stats.get('min_count')}, the "
                         f"gate's is {cfg.min_count}: run `dea features --dataset {dataset} --dates {date}`")
    return stats


def _in_order(stats: dict, fields: list[str]) -> dict:
    """``stats`` with its fields in manifest order (stats.json has sorted keys), as the checks list them."""
    return {**stats, "fields": {f: stats["fields"][f] for f in fields if f in stats["fields"]},
            "dense": {f: stats["dense"][f] for f in fields if f in stats["dense"]}}


def reference_window(spec: DatasetSpec, lake: Lake, date: str, cfg: GateConfig,
                     accepted: list[str] | None = None) -> tuple[list[str], list[dict]]:
    """The previous ``reference_days`` stats days not failed by their own gate, and their statistics
    with their new-ID rates (each against its own last accepted day; ``accepted``: the days
    ``accepted_days`` gives, when the caller has them)."""
    accepted = accepted_days(lake, spec.name, date) if accepted is None else accepted
    chosen, stats = [], []
    for d in reversed([d for d in lake.dates("stats", spec.name) if d < date]):
        if len(chosen) == cfg.reference_days:
            break
        try:
            day = None if gate_failed(lake, spec.name, d) else read_day_stats(lake, spec.name, d)
            if day is None:
                continue
            day = with_new_ids(day, day_over_day(lake, spec.name, d, _day_before(accepted, d), day["rows"]))
        except (OSError, ValueError) as e:  # unreadable verdict, statistics or counts: not a reference
            log.warning("gate %s %s: reference day %s skipped: %s", spec.name, date, d, e)
            continue
        chosen.insert(0, d)
        stats.insert(0, day)
    return chosen, stats


def _without_stats(spec: DatasetSpec, lake: Lake, accepted: list[str], cfg: GateConfig) -> str | None:
    """A note naming the accepted feature days of the reference window that have no statistics."""
    days = [d for d in accepted[-cfg.reference_days:] if read_record(lake.stats(spec.name, d)) is None]
    if not days:
        return None
    return (f"no statistics for feature day(s) {', '.join(days)} (written before the feature stage wrote "
            f"statistics): not in the reference window; `dea features --dataset {spec.name} --dates "
            f"{','.join(days)}` computes them")


# --- gather the inputs -----------------------------------------------------------------------------

def _raw_inputs(spec: DatasetSpec, lake: Lake, date: str, rows: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Schema table (one row per raw file) and the first ``rows`` rows of the raw day."""
    files = lake.day_files("raw", spec.name, date)
    schemas, batches, taken = [], [], 0
    for f in files:
        try:
            pf = parquet_file(f)
            schemas.append(pf.schema_arrow)
            if taken < rows and pf.metadata.num_rows:
                batch = next(pf.iter_batches(batch_size=rows - taken))
                batches.append(batch.to_pandas())
                taken += batch.num_rows
        except Exception as e:  # corrupt file: say which
            raise ValueError(f"cannot read raw Parquet file {f}: {e}") from None
    sample = pd.concat(batches, ignore_index=True) if batches else pd.DataFrame()
    return schema_table(schemas), sample


@dataclass
class GateInputs:
    """What the gate of one day reads; each input that is missing or broken is an availability
    finding ``(False, why)`` instead of an exception."""

    availability: dict[str, tuple[bool, str]] = field(default_factory=dict)
    fingerprints: dict[str, str] = field(default_factory=dict)
    manifest: Manifest | None = None
    schema: pd.DataFrame | None = None
    raw_sample: pd.DataFrame | None = None
    previous_date: str | None = None          # the last accepted day before it (new IDs)
    stats: dict | None = None                 # the day's statistics, new-ID rates included
    day_over_day: dict | None = None          # the new-ID rates alone (``day_over_day``)
    reference_dates: list[str] = field(default_factory=list)
    reference: list[dict] = field(default_factory=list)
    sample: pd.DataFrame | None = None        # dense fields of a feature-row sample, as bucket k
    notes: list[str] = field(default_factory=list)

    def attempt(self, name: str, read, errors: tuple = (OSError, ValueError)):
        """``read()``, its failure recorded as the availability check ``name`` (None then)."""
        try:
            value = read()
        except errors as e:
            self.availability[name] = (False, f"{type(e).__name__}: {e}" if name == "stats_complete" else str(e))
            return None
        self.availability[name] = (True, "")
        return value


def _feature_day(spec: DatasetSpec, lake: Lake, date: str) -> Manifest:
    """The manifest, once the feature day is complete and holds the bytes its record vouches for."""
    manifest = Manifest.of(lake, spec.name)
    features = lake.features(spec.name, date)
    if read_record(features) is None:
        raise FileNotFoundError(f"no complete feature day at {features} (the feature stage did not write this "
                                "day: see its error, often the raw schema)")
    problems = verify_checksums(features)
    if problems:
        raise ValueError(f"the feature day changed since it was written: {problems[0]}"
                         + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""))
    return manifest


def _fp(path: Path) -> str:
    try:
        return fingerprint(path)
    except FileNotFoundError:
        return "absent"


def gather_inputs(spec: DatasetSpec, lake: Lake, date: str, cfg: GateConfig) -> GateInputs:
    """Locate the day's inputs: raw day (schema, sample), manifest and feature day (its files'
    SHA-256 verified, not parsed), the previous accepted day, the reference window's statistics."""
    g = GateInputs()
    g.schema, g.raw_sample = g.attempt("raw_complete", lambda: _raw_inputs(spec, lake, date, cfg.sample_rows)) \
        or (None, None)
    g.manifest = g.attempt("features_complete", lambda: _feature_day(spec, lake, date))
    accepted = accepted_days(lake, spec.name, date)
    g.previous_date = _day_before(accepted, date)
    g.reference_dates, g.reference = reference_window(spec, lake, date, cfg, accepted)
    read = {d for d in [g.previous_date, *g.reference_dates, *(r["previous_date"] for r in g.reference)] if d}
    usable = "" if g.availability["features_complete"][0] else "+unusable"
    g.fingerprints = {"raw": _fp(lake.raw(spec.name, date)), "features": _fp(lake.features(spec.name, date)) + usable,
                      "manifest": g.manifest.digest if g.manifest else "absent",
                      "stats": _fp(lake.stats(spec.name, date)), "previous": g.previous_date or "none",
                      **{f"stats:{d}": _fp(lake.stats(spec.name, d)) for d in sorted(read)}}
    note = _without_stats(spec, lake, accepted, cfg)
    g.notes += [note] if note else []
    return g


def read_statistics(g: GateInputs, spec: DatasetSpec, lake: Lake, date: str, cfg: GateConfig) -> None:
    """The day's statistics with its new-ID rates, and the bucket sample of its feature table."""
    if not g.availability["features_complete"][0]:
        g.availability["stats_complete"] = (False, "no feature day")
        return

    def read() -> tuple[dict, dict, pd.DataFrame | None]:
        stats = _in_order(current_stats(lake, spec.name, date, cfg), g.manifest.fields)
        dod = day_over_day(lake, spec.name, date, g.previous_date, stats["rows"])
        sample = bucket_sample(lake.day_files("features", spec.name, date), stats, cfg.sample_rows, cfg.seed)
        return with_new_ids(stats, dod), dod, sample

    # any failure here is a finding of the gate, not a crash
    g.stats, g.day_over_day, g.sample = g.attempt("stats_complete", read, errors=(Exception,)) or (None, None, None)
    if g.stats is None:
        log.error("gate %s %s: statistics unusable: %s", spec.name, date, g.availability["stats_complete"][1])


# --- checks → GX → verdict -------------------------------------------------------------------------

def _run_gx(tmp: Path, spec: DatasetSpec, checks: list[Check], tables: dict, reports: bool) -> Path | None:
    """Run the pending checks through GX in ``tmp``; a GX failure becomes a failing ``gate_error``."""
    try:
        from validation.expectations import run_suites  # GX: imported only when a gate runs

        return run_suites(tmp, spec.name, checks, tables, docs=reports)
    except Exception as e:  # noqa: BLE001 — the verdict must be written even when GX breaks
        log.exception("gate %s: Great Expectations failed", spec.name)
        checks.append(Check("gate_error", "gate_error", "gate", "error", None, status="error",
                            note=f"{type(e).__name__}: {e}"))
        return None


def _plots(g: GateInputs, checks: list[Check], tmp: Path, out: Path) -> list[Path]:
    """Rank-frequency and dense-bucket plots (a failing one is a note, not a lost verdict)."""
    from validation.report import plot_dense_buckets, plot_rank_frequency

    failing = {c.field for c in checks if c.status in ("fail", "error") and c.field}
    plots = []
    for name, plot in (("rank_frequency.png", plot_rank_frequency), ("dense_buckets.png", plot_dense_buckets)):
        try:
            if plot(g.stats, g.reference, tmp / name, failing):
                plots.append(out / name)
        except Exception as e:  # noqa: BLE001 — a plot is not worth losing the verdict
            log.exception("gate: plot %s failed", name)
            g.notes.append(f"plot {name} failed: {type(e).__name__}: {e}")
    return plots


def _standing_override(out, fingerprints: dict[str, str], where: str) -> str | None:
    """The reason of an override applied to this very data (same input fingerprints): a later run
    without one keeps it (``dea validate --override`` then ``dea run``), until the data changes."""
    old = read_record(out)
    if old is None or old.get("inputs") != dict(sorted(fingerprints.items())) or not (out / VERDICT_FILE).exists():
        return None
    ov = json.loads((out / VERDICT_FILE).read_text()).get("override") or {}
    if ov.get("applied"):
        log.info("%s: the override recorded for this data stands (%s, %s): %s", where, ov["user"], ov["at"], ov["reason"])
        return ov["reason"]
    return None


def _override(override: str | None, checks_verdict: str, g: GateInputs, where: str) -> dict | None:
    """The override record: applied to a failed day whose data exists, never to missing data."""
    if not override:
        return None
    missing = [f"{name}: {why}" for name, (ok, why) in g.availability.items() if not ok]
    ov = {"reason": override, "user": getpass.getuser(), "at": dt.datetime.now(dt.timezone.utc).isoformat(),
          "applied": checks_verdict == "fail" and not missing}
    if missing:
        g.notes.append("override not applied: an override accepts a day whose data exists and failed its "
                       "checks; it never turns missing or unreadable data into a pass")
    log.warning("%s: manual override (%s) of verdict %s: %s%s", where, ov["user"], checks_verdict, override,
                " (not applied: the day has no usable data)" if missing else "")
    return ov


def _verdict_doc(spec: DatasetSpec, date: str, g: GateInputs, checks: list[Check], checks_verdict: str,
                 ov: dict | None, reports: dict) -> dict:
    final = "warn" if ov and ov["applied"] else checks_verdict
    statuses = [c.status for c in checks]
    return {
        "dataset": spec.name, "date": date, "verdict": final, "checks_verdict": checks_verdict,
        "blocked": final == "fail", "override": ov, "reference_dates": g.reference_dates, "notes": g.notes,
        "counts": {"pass": statuses.count("pass"), "fail": statuses.count("fail") + statuses.count("error"),
                   "fail_error": sum(c.status in ("fail", "error") and c.severity == "error" for c in checks),
                   "skipped": statuses.count("skipped")},
        "checks": [c.to_dict() for c in checks], "day_over_day": g.day_over_day, "reports": reports,
        "inputs": g.fingerprints, "created_at": dt.datetime.now(dt.timezone.utc).isoformat(),
    }


def _stored(out: Path, start: float, where: str) -> GateResult:
    doc = json.loads((out / VERDICT_FILE).read_text())
    log.info("%s is up to date (verdict %s): nothing to do", where, doc["verdict"])
    return GateResult(doc, out, time.perf_counter() - start, skipped=True, summary=(out / SUMMARY_FILE).read_text(),
                      plots=[Path(p) for p in doc.get("reports", {}).get("plots", [])])


def run_gate(spec: DatasetSpec, lake: Lake, date: str, *, override: str | None = None, reports: bool = True,
             force: bool = False) -> GateResult:
    """Validate one day and write its verdict, summary, Data Docs and plots (see the module docstring).

    ``reports=False`` skips Data Docs and plots (the verdict and summary are always written).
    """
    start, date, cfg = time.perf_counter(), parse_date(date).isoformat(), gate_config(spec)
    out, where = lake.validation(spec.name, date), f"gate {spec.name} {date}"
    g = gather_inputs(spec, lake, date, cfg)
    override = override or _standing_override(out, g.fingerprints, where)
    settings = json.dumps({"gate": cfg.model_dump(mode="json"), "override": override, "reports": reports}, sort_keys=True)
    record = make_record("validate", g.fingerprints, hashlib.sha256(settings.encode()).hexdigest()[:16])
    if not force and up_to_date(out, record):
        return _stored(out, start, where)
    timings = {"inputs": time.perf_counter() - start}
    read_statistics(g, spec, lake, date, cfg)
    timings["stats"] = time.perf_counter() - start - sum(timings.values())
    checks, row = build_checks(spec, cfg, schema=g.schema, raw_sample=g.raw_sample, stats=g.stats,
                               reference=g.reference, bucket_sample=g.sample, availability=g.availability)
    tables = {"metrics": pd.DataFrame([row]), "schema": g.schema, "raw_sample": g.raw_sample, "buckets": g.sample}
    g.notes[:0] = [f"{name}: {why}" for name, (ok, why) in g.availability.items() if not ok]
    with staged_dir(out) as tmp:       # GX and matplotlib write local files, published to the lake
        docs = _run_gx(tmp, spec, checks, tables, reports)
        timings["great_expectations"] = time.perf_counter() - start - sum(timings.values())
        checks_verdict = verdict(checks, has_reference=bool(g.reference))
        if not g.reference:
            g.notes.append("no reference window (first day): only absolute bounds were checked")
        plots = _plots(g, checks, tmp, out) if reports and g.stats is not None else []
        timings["plots"] = time.perf_counter() - start - sum(timings.values())
        doc = _verdict_doc(spec, date, g, checks, checks_verdict, _override(override, checks_verdict, g, where),
                           {"data_docs": str(out / DOCS_INDEX) if docs else None, "summary": str(out / SUMMARY_FILE),
                            "plots": [str(p) for p in plots]})
        doc.update(seconds=round(time.perf_counter() - start, 3), timings={k: round(v, 3) for k, v in timings.items()})
        (tmp / SUMMARY_FILE).write_text(summary := _summary(doc))
        write_json_atomic(tmp / VERDICT_FILE, doc)
        write_record(tmp, {**record, "verdict": doc["verdict"]})
    log.info("%s: %s (%d checks, %d failing) in %.1f s -> %s", where, doc["verdict"].upper(), len(checks),
             doc["counts"]["fail"], time.perf_counter() - start, out)
    return GateResult(doc, out, time.perf_counter() - start, summary=summary, plots=plots)


def _summary(doc: dict) -> str:
    from validation.report import summary_markdown

    return summary_markdown(doc)
