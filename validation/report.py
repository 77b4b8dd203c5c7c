"""What a person reads: the markdown summary of a verdict and the PNG plots next to it.

``rank_frequency.png``  per field, the log-log rank-frequency curve of today (bold) over the
                        reference days (thin): a flattened head, a new plateau or a cut tail shows.
``dense_buckets.png``   per dense field, today's bucket shares (bars) against the pooled reference
                        (step line); the first bar is "missing".

Plots use matplotlib's Agg canvas directly (no pyplot state, no display needed).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from validation.checks import bucket_shares, fmt_number, reference_histogram

STATUS_ORDER = {"fail": 0, "error": 0, "pass": 2, "skipped": 3}
ICON = {"fail": "✗ fail", "error": "✗ error", "pass": "✓ pass", "skipped": "· skipped"}


def summary_markdown(doc: dict) -> str:
    """Verdict, reasons and the table expectation | observed | bound | status, failures first."""
    lines = [f"# Data-quality gate — `{doc['dataset']}` {doc['date']}: **{doc['verdict'].upper()}**", ""]
    if doc.get("override"):
        o = doc["override"]
        lines.append(f"> Manual override by `{o['user']}` at {o['at']}: {o['reason']} "
                     f"(the checks said **{doc['checks_verdict']}**)")
        lines.append("")
    ref = doc.get("reference_dates") or []
    lines.append(f"- reference window: {len(ref)} day(s)" + (
        f", {ref[0]} … {ref[-1]}" if ref else " — first day: relative bounds skipped, verdict at best warn"))
    counts = doc["counts"]
    lines.append(f"- checks: {counts.get('pass', 0)} passed, {counts.get('fail', 0)} failed "
                 f"({counts.get('fail_error', 0)} blocking), {counts.get('skipped', 0)} skipped")
    for note in doc.get("notes", []):
        lines.append(f"- {note}")
    reports = doc.get("reports", {})
    if reports.get("data_docs"):
        lines.append(f"- Data Docs: `{reports['data_docs']}`")
    for p in reports.get("plots", []):
        lines.append(f"- plot: `{p}`")
    lines += ["", "| status | severity | expectation | observed | bound |", "|---|---|---|---|---|"]
    rows = sorted(doc["checks"], key=lambda c: (STATUS_ORDER.get(c["status"], 1) + (c["severity"] == "warning") * 0.5,
                                               c["expectation"]))
    for c in rows:
        status = ICON.get(c["status"], c["status"])
        if c["status"] == "fail" and c["severity"] == "warning":
            status = "⚠ warn"
        observed = fmt_value(c["observed"])
        if c.get("details", {}).get("top1_value") is not None:
            observed = f"{observed} ({c['field']}={c['details']['top1_value']})"
        if c.get("note") and c["status"] != "pass":
            observed = f"{observed} ({c['note']})" if observed != "—" else c["note"]
        lines.append(f"| {status} | {c['severity']} | `{c['expectation']}` | {observed} | {c['bound']} |")
    return "\n".join(lines) + "\n"


def fmt_value(v) -> str:
    """An observed value as the reports print it (4 significant digits, lists cut at 6)."""
    if v is None:
        return "—"
    if isinstance(v, float):
        return fmt_number(v)
    if isinstance(v, list):
        return ", ".join(map(str, v[:6])) + (", …" if len(v) > 6 else "")
    return str(v).replace("|", "\\|")


def _grid(n: int, cols: int = 4):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = max(1, math.ceil(n / cols))
    height = 2.6 * rows + 0.6                                     # inches, with room for the title
    fig = Figure(figsize=(3.2 * cols, height))
    fig.subplots_adjust(left=0.06, right=0.98, bottom=0.55 / height, top=1 - 0.75 / height, wspace=0.3,
                        hspace=0.55)
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes


def plot_rank_frequency(stats: dict, reference: list[dict], path: Path, failing: set[str] = frozenset()) -> Path | None:
    """Log-log rank-frequency curves of every sparse and cross field on one chart.

    One colour per field: today solid (thick where a check on the field failed), the reference days
    thin and faint in the same colour. One axes for any number of fields keeps it cheap to draw.
    """
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = [f for f, s in stats["fields"].items() if s["kind"] != "dense"]
    if not names:
        return None
    fig = Figure(figsize=(10, 6))
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.07, 0.09, 0.68, 0.83))
    cmap = colormaps["tab20"]
    for i, f in enumerate(names):
        color = cmap(i % 20)
        for r in reference:
            rf = r["fields"].get(f, {}).get("rank_frequency")
            if rf and rf["rank"]:
                ax.plot(rf["rank"], np.asarray(rf["freq"]) / r["rows"], color=color, lw=0.7, alpha=0.35)
        rf = stats["fields"][f]["rank_frequency"]
        if rf["rank"]:
            bad = f in failing
            ax.plot(rf["rank"], np.asarray(rf["freq"]) / stats["rows"], color=color, lw=3 if bad else 1.5,
                    marker="o" if bad else ".", label=f"{f} ✗" if bad else f)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("rank of the ID (1 = most frequent)")
    ax.set_ylabel("share of rows holding the ID at that rank")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, ncol=1 + len(names) // 25,
              title="field (✗ = failing check)", title_fontsize=8)
    ax.set_title(f"{stats['dataset']} {stats['date']}: rank-frequency, today (solid) over the reference days (faint)",
                 fontsize=10)
    fig.savefig(path, dpi=80)
    return path


def plot_dense_buckets(stats: dict, reference: list[dict], path: Path, failing: set[str] = frozenset()) -> Path | None:
    """Bucket shares of every dense field today (bars) against the pooled reference (steps)."""
    names = list(stats.get("dense", {}))
    if not names:
        return None
    fig, axes = _grid(len(names))
    for ax, f in zip(axes, names):
        today = bucket_shares(stats["dense"][f])
        edges = np.arange(-1.5, len(today) - 1)                  # bucket k spans [k − 0.5, k + 0.5]
        ax.stairs(today / max(today.sum(), 1), edges, fill=True, color="C3" if f in failing else "C0", alpha=0.6,
                  label="today")
        ref = reference_histogram(f, stats, reference)
        if ref is not None:
            ax.stairs(ref / ref.sum(), edges, color="black", lw=1.2, label="reference")
        ax.set_title(f, fontsize=9, color="C3" if f in failing else "black")
        ax.set_xlabel("bucket (−1 = missing)", fontsize=7)
        ax.set_ylabel("share of rows", fontsize=7)
        ax.tick_params(labelsize=6)
        ax.legend(fontsize=6)
    fig.suptitle(f"{stats['dataset']} {stats['date']}: dense buckets today vs reference", fontsize=10)
    fig.savefig(path, dpi=80)
    return path
