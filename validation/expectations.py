"""Great Expectations side of the gate: build the suites from ``Check``s, run them, read results.

Imported lazily by ``validation.gate`` (GX takes 2–4 s to import). One file context per day under
``validation/<dataset>/dt=<date>/gx/``, a pandas data source over the gate's small tables, one
suite and validation definition per table, Data Docs built once at the end.
"""

from __future__ import annotations

import logging
from pathlib import Path

logging.getLogger("great_expectations").setLevel(logging.WARNING)  # its import logs hundreds of INFO lines

import great_expectations as gx  # noqa: E402
import great_expectations.expectations as gxe  # noqa: E402
import pandas as pd  # noqa: E402
from great_expectations.data_context.types.base import ProgressBarsConfig  # noqa: E402

from validation.checks import Check  # noqa: E402
from validation.offline_docs import ASSETS, OfflineDocsError, make_offline  # noqa: E402

log = logging.getLogger(__name__)

SEVERITY = {"error": "critical", "warning": "warning"}


class ExpectColumnBucketPsiToBeLessThan(gxe.ExpectColumnMaxToBeBetween):
    """Custom expectation: the PSI of a dense field's bucket histogram is below a bound.

    PSI = Σ_k (p_k − q_k) ln(p_k / q_k) over the full day's buckets (today p, reference window q),
    computed from the Dask statistics; GX holds only the one-row metrics table, so the expectation
    reads the PSI column (GX has no PSI, and its KL expectation needs rows, not histograms).
    """

    min_value: float | None = 0.0
    description: str | None = ("population stability index of the dense field's bucket histogram "
                               "against the reference window (> 0.25: the distribution moved)")


CUSTOM = {"ExpectColumnBucketPsiToBeLessThan": ExpectColumnBucketPsiToBeLessThan}


def expectation(check: Check):
    """The GX expectation object of one check, tagged with the check's name and severity."""
    cls = CUSTOM.get(check.gx_type) or getattr(gxe, check.gx_type)
    return cls(**check.kwargs, severity=SEVERITY[check.severity],
               meta={"check": check.name, "basis": check.basis, "description": check.description})


def open_context(folder: Path):
    """A fresh GX file context in ``folder`` (``folder/gx/...``), progress bars off."""
    context = gx.get_context(mode="file", project_root_dir=str(folder))
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    context.variables.save()
    return context


def run_suites(folder: Path, suite_prefix: str, checks: list[Check], tables: dict[str, pd.DataFrame | None], *,
               docs: bool = True) -> Path | None:
    """Run every pending check through GX on its table; fill ``status``, ``observed``, ``note``.

    Returns the Data Docs ``index.html`` (None when ``docs`` is off).
    """
    context = open_context(folder)
    source = context.data_sources.add_pandas("gate")
    pending: dict[str, list[Check]] = {}
    for c in checks:
        if c.status == "pending":
            pending.setdefault(c.table, []).append(c)
    for table, group in pending.items():
        frame = tables.get(table)
        if frame is None:
            for c in group:
                c.status, c.note = "skipped", f"no {table} table"
            continue
        batch = source.add_dataframe_asset(table).add_batch_definition_whole_dataframe(table)
        suite = context.suites.add(gx.ExpectationSuite(name=f"{suite_prefix}.{table}",
                                                       expectations=[expectation(c) for c in group]))
        definition = context.validation_definitions.add(
            gx.ValidationDefinition(name=f"{suite_prefix}.{table}", data=batch, suite=suite))
        result = definition.run(batch_parameters={"dataframe": frame})
        by_name = {c.name: c for c in group}
        for r in result.results:
            c = by_name[r.expectation_config.meta["check"]]
            info = r.exception_info or {}
            if info.get("raised_exception"):
                c.status, c.note = "error", str(info.get("exception_message"))[:300]
                continue
            c.status = "pass" if r.success else "fail"
            observed = (r.result or {}).get("observed_value")
            if observed is not None and c.table in ("metrics", "buckets"):
                c.observed = observed.item() if hasattr(observed, "item") else observed
    if not docs:
        return None
    context.build_data_docs()
    site = folder / "gx" / "uncommitted" / "data_docs" / "local_site"
    if not (site / "index.html").exists():
        return None
    try:                                 # vendored JS/CSS instead of CDNs: the pages render with no network
        make_offline(site)
    except OfflineDocsError as e:        # a new CDN address (GX upgraded): worth a warning, not the day's verdict
        log.warning("Data Docs at %s still load from outside hosts (%s); add the address to %s and re-run it",
                    site, e, ASSETS / "fetch.py")
    return site / "index.html"
