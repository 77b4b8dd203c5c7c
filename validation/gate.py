"""The data-quality gate of one day: statistics → generated checks → GX → verdict and reports.

``run_gate(spec, lake, date)`` always writes ``validation/<dataset>/dt=<date>/``::

    verdict.json          verdict (pass | warn | fail), every check {expectation, observed, bound,
                          severity, status}, reference dates, override, input fingerprints
    summary.md            the same as a markdown table (published as a Prefect artifact by the flows)
    rank_frequency.png    per-field rank-frequency curves, today over the reference
    dense_buckets.png     per dense field, bucket shares today against the reference
    gx/                   the GX file context; Data Docs at gx/uncommitted/data_docs/local_site/index.html

Semantics:
- Every check has a severity: a failing ``error`` makes the verdict ``fail`` (the day is blocked),
  a failing ``warning`` makes it ``warn`` (reported, not blocked).
- Missing or broken inputs (no raw day, no feature day, statistics that cannot be computed) are
  failing ``error`` checks of their own (``raw_complete``, ``features_complete``,
  ``stats_complete``) whose note says why; the verdict JSON is written all the same.
- Reference window: the previous ``reference_days`` complete stats days before the date whose own
  gate did not end ``fail`` (an overridden day counts: a person judged it acceptable). Feature days
  in that window without statistics get them computed first. Day-over-day checks (new IDs) compare
  with the last such day too (``last_accepted_day``), never with a failed one.
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

import datetime as dt
import getpass
import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from features.lake import (Lake, atomic_dir, fingerprint, make_record, parse_date, read_record, up_to_date,
                           write_json_atomic, write_record)
from features.spec import DatasetSpec
from features.stats import read_day_stats, write_day_stats
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
        return Path(p) if p else None


# --- inputs ---------------------------------------------------------------------------------------

def _raw_inputs(spec: DatasetSpec, lake: Lake, date: str, rows: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Schema table (one row per raw file) and the first ``rows`` rows of the raw day."""
    import pyarrow.parquet as pq

    folder = lake.raw(spec.name, date)
    if read_record(folder) is None:
        raise FileNotFoundError(f"no complete raw day at {folder}")
    files = sorted(folder.glob("*.parquet"))
    if not files:
        raise ValueError(f"raw day {folder} holds no Parquet files")
    schemas, batches, taken = [], [], 0
    for f in files:
        try:
            pf = pq.ParquetFile(f)
            schemas.append(pf.schema_arrow)
            if taken < rows and pf.metadata.num_rows:
                batch = next(pf.iter_batches(batch_size=rows - taken))
                batches.append(batch.to_pandas())
                taken += batch.num_rows
        except Exception as e:  # corrupt file: say which
            raise ValueError(f"cannot read raw Parquet file {f}: {e}") from None
    sample = pd.concat(batches, ignore_index=True) if batches else pd.DataFrame()
    return schema_table(schemas), sample


def _manifest(spec: DatasetSpec, lake: Lake) -> dict:
    path = lake.manifest(spec.name)
    if not path.exists():
        raise FileNotFoundError(f"no feature manifest at {path} (run `dea features` first)")
    return json.loads(path.read_text())


def gate_failed(lake: Lake, dataset: str, date: str) -> bool:
    """True when the day's own gate ended ``fail`` (not overridden): it is no reference for later
    days (drift, new IDs) and no training day."""
    return (read_verdict(lake, dataset, date) or {}).get("verdict") == "fail"


def last_accepted_day(lake: Lake, dataset: str, date: str) -> str | None:
    """The latest complete feature day before ``date`` whose gate did not fail: "yesterday" for
    the day-over-day checks (new IDs), so a failed day never becomes the next day's yardstick."""
    for d in reversed(lake.dates("features", dataset)):
        if d < date and not gate_failed(lake, dataset, d):
            return d
    return None


def reference_window(spec: DatasetSpec, lake: Lake, date: str, cfg: GateConfig, manifest: dict | None,
                     client=None) -> tuple[list[str], list[dict]]:
    """The previous ``reference_days`` stats days not failed by their own gate, and their stats.

    Feature days among the ``reference_days`` before ``date`` that have no statistics yet get them.
    """
    if manifest is not None:
        for d in [d for d in lake.dates("features", spec.name) if d < date][-cfg.reference_days:]:
            if read_day_stats(lake, spec.name, d) is None:
                try:
                    write_day_stats(spec, manifest, lake, d, previous_date=last_accepted_day(lake, spec.name, d),
                                    min_count=cfg.min_count, client=client)
                except Exception as e:  # a broken old day is simply not a reference
                    log.warning("gate %s %s: no statistics for reference day %s: %s", spec.name, date, d, e)
    chosen, stats = [], []
    for d in reversed([d for d in lake.dates("stats", spec.name) if d < date]):
        if len(chosen) == cfg.reference_days:
            break
        try:
            if gate_failed(lake, spec.name, d):
                continue
            day = read_day_stats(lake, spec.name, d)
        except (OSError, ValueError) as e:  # unreadable verdict or stats: not a reference
            log.warning("gate %s %s: reference day %s skipped: %s", spec.name, date, d, e)
            continue
        chosen.insert(0, d)
        stats.insert(0, day)
    return chosen, stats


def _fp(path: Path) -> str:
    try:
        return fingerprint(path)
    except FileNotFoundError:
        return "absent"


# --- the gate -------------------------------------------------------------------------------------

def run_gate(spec: DatasetSpec, lake: Lake, date: str, *, override: str | None = None, client=None,
             reports: bool = True, force: bool = False) -> GateResult:
    """Validate one day and write its verdict, summary, Data Docs and plots (see the module docstring).

    ``reports=False`` skips Data Docs and plots (the verdict and summary are always written).
    """
    start = time.perf_counter()
    date = parse_date(date).isoformat()
    cfg = gate_config(spec)
    out = lake.validation(spec.name, date)
    where = f"gate {spec.name} {date}"

    # 1. inputs, each failure recorded as an availability check instead of raised
    availability: dict[str, tuple[bool, str]] = {}
    schema = raw_sample = manifest = stats = sample = None
    try:
        schema, raw_sample = _raw_inputs(spec, lake, date, cfg.sample_rows)
        availability["raw_complete"] = (True, "")
    except (OSError, ValueError) as e:
        availability["raw_complete"] = (False, str(e))
    features = lake.features(spec.name, date)
    try:
        manifest = _manifest(spec, lake)
        if read_record(features) is None:
            raise FileNotFoundError(f"no complete feature day at {features} (the feature stage did not "
                                    "write this day: see its error, often the raw schema)")
        availability["features_complete"] = (True, "")
    except (OSError, ValueError) as e:
        availability["features_complete"] = (False, str(e))

    reference_dates, reference = reference_window(spec, lake, date, cfg, manifest, client)
    inputs = {"raw": _fp(lake.raw(spec.name, date)), "features": _fp(features),
              "manifest": (manifest or {}).get("record", {}).get("digest", "absent"),
              **{f"ref:{d}": _fp(lake.stats(spec.name, d)) for d in reference_dates}}
    settings = {"gate": cfg.model_dump(mode="json"), "override": override, "reports": reports}
    settings_hash = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
    record = make_record("validate", inputs, settings_hash)
    if not force and up_to_date(out, record):
        doc = json.loads((out / VERDICT_FILE).read_text())
        log.info("%s is up to date (verdict %s): nothing to do", where, doc["verdict"])
        return GateResult(doc, out, time.perf_counter() - start, skipped=True,
                          summary=(out / SUMMARY_FILE).read_text(),
                          plots=[Path(p) for p in doc.get("reports", {}).get("plots", [])])

    timings = {"inputs": time.perf_counter() - start}
    if availability["features_complete"][0]:
        try:
            stats = write_day_stats(spec, manifest, lake, date, previous_date=last_accepted_day(lake, spec.name, date),
                                    min_count=cfg.min_count, client=client).stats
            sample = bucket_sample(features, stats, cfg.sample_rows, cfg.seed)
            availability["stats_complete"] = (True, "")
        except Exception as e:  # noqa: BLE001 — any failure here is a finding of the gate, not a crash
            log.exception("%s: statistics failed", where)
            availability["stats_complete"] = (False, f"{type(e).__name__}: {e}")
    else:
        availability["stats_complete"] = (False, "no feature day")
    timings["stats"] = time.perf_counter() - start - sum(timings.values())

    # 2. checks, run through GX
    checks, row = build_checks(spec, manifest, cfg, schema=schema, raw_sample=raw_sample, stats=stats,
                               reference=reference, bucket_sample=sample, availability=availability)
    tables = {"metrics": pd.DataFrame([row]), "schema": schema, "raw_sample": raw_sample, "buckets": sample}
    notes = [f"{name}: {why}" for name, (ok, why) in availability.items() if not ok]
    with atomic_dir(out) as tmp:
        docs = None
        try:
            from validation.expectations import run_suites  # GX: imported only when a gate runs

            docs = run_suites(tmp, spec.name, checks, tables, docs=reports)
            timings["great_expectations"] = time.perf_counter() - start - sum(timings.values())
        except Exception as e:  # noqa: BLE001 — the verdict must be written even when GX breaks
            log.exception("%s: Great Expectations failed", where)
            checks.append(Check("gate_error", "gate_error", "gate", "error", None, status="error",
                                note=f"{type(e).__name__}: {e}"))
        checks_verdict = verdict(checks, has_reference=bool(reference))
        if not reference:
            notes.append("no reference window (first day): only absolute bounds were checked")
        failing = {c.field for c in checks if c.status in ("fail", "error") and c.field}
        plots = []
        if reports and stats is not None:
            from validation.report import plot_dense_buckets, plot_rank_frequency

            for name, plot in (("rank_frequency.png", plot_rank_frequency), ("dense_buckets.png", plot_dense_buckets)):
                try:
                    if plot(stats, reference, tmp / name, failing):
                        plots.append(out / name)
                except Exception as e:  # noqa: BLE001 — a plot is not worth losing the verdict
                    log.exception("%s: plot %s failed", where, name)
                    notes.append(f"plot {name} failed: {type(e).__name__}: {e}")
        timings["plots"] = time.perf_counter() - start - sum(timings.values())
        ov = None
        if override:
            missing = [f"{name}: {why}" for name, (ok, why) in availability.items() if not ok]
            ov = {"reason": override, "user": getpass.getuser(), "at": dt.datetime.now(dt.timezone.utc).isoformat(),
                  "applied": checks_verdict == "fail" and not missing}
            if missing:
                notes.append("override not applied: an override accepts a day whose data exists and failed its "
                             "checks; it never turns missing or unreadable data into a pass")
            log.warning("%s: manual override (%s) of verdict %s: %s%s", where, ov["user"], checks_verdict, override,
                        " (not applied: the day has no usable data)" if missing else "")
        final = "warn" if ov and ov["applied"] else checks_verdict
        statuses = [c.status for c in checks]
        doc = {
            "dataset": spec.name, "date": date, "verdict": final, "checks_verdict": checks_verdict,
            "blocked": final == "fail", "override": ov, "reference_dates": reference_dates, "notes": notes,
            "counts": {"pass": statuses.count("pass"), "fail": statuses.count("fail") + statuses.count("error"),
                       "fail_error": sum(c.status in ("fail", "error") and c.severity == "error" for c in checks),
                       "skipped": statuses.count("skipped")},
            "checks": [c.to_dict() for c in checks],
            "reports": {"data_docs": str(out / DOCS_INDEX) if docs else None,
                        "summary": str(out / SUMMARY_FILE), "plots": [str(p) for p in plots]},
            "inputs": inputs, "seconds": round(time.perf_counter() - start, 3),
            "timings": {k: round(v, 3) for k, v in timings.items()},
            "created_at": dt.datetime.now(dt.timezone.utc).isoformat(),
        }
        summary = _summary(doc)
        (tmp / SUMMARY_FILE).write_text(summary)
        write_json_atomic(tmp / VERDICT_FILE, doc)
        write_record(tmp, {**record, "verdict": final})
    seconds = time.perf_counter() - start
    log.info("%s: %s (%d checks, %d failing) in %.1f s -> %s", where, final.upper(), len(checks),
             doc["counts"]["fail"], seconds, out)
    return GateResult(doc, out, seconds, summary=summary, plots=plots)


def _summary(doc: dict) -> str:
    from validation.report import summary_markdown

    return summary_markdown(doc)


def read_verdict(lake: Lake, dataset: str, date: str) -> dict | None:
    """The stored verdict JSON of a day, or None."""
    path = lake.validation(dataset, parse_date(date).isoformat()) / VERDICT_FILE
    return json.loads(path.read_text()) if path.exists() else None
