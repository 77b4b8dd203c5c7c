"""What a person reads about one ``dea-daily`` run: one line per stage and the run's summary artifact.

The artifact (``dea-daily-<dataset>`` in the UI) holds the verdict, a row per stage (status,
seconds, what it did, a link to the stage's own run page), the candidate beside the champion and
the baselines, and links to the reports ``dea reports`` serves (gate summary, Data Docs, plots,
training curve), the plots drawn inline. The ``dea run`` command prints the same stage lines.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from flows.reports import table

STAGES = ("ingest", "features", "validate", "train", "evaluate", "register")
ICON = {"done": "✓ done", "skipped": "↷ up to date", "failed": "✗ failed", "running": "✗ interrupted",
        "not run": "· not run"}
EVALUATION_COLUMNS = ["model", "auc", "gauc", "logloss", "calibration", "rows"]


def metric(x) -> str:
    """A metric to 4 decimals, '–' when missing or NaN."""
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.4f}"


def stage_detail(name: str, r: dict) -> str:
    """What stage ``name`` did, in one line, from the dict its flow returned."""
    if name == "ingest":
        return (f"{len(r['written'])} day(s) written ({sum(r['written'].values()):,} rows), "
                f"{len(r['skipped'])} up to date")
    if name == "features":
        written = sum(d["status"] == "written" for d in r["days"])
        return (f"manifest {'refitted' if r['refit'] else 'up to date'}, {written} day(s) written, "
                f"{len(r['days']) - written} up to date")
    if name == "validate":
        return f"gate {r['verdict']}{' (up to date)' if r.get('skipped') else ''}"
    if name == "train":
        m = r["metrics"]
        return (f"{m['model']} {'up to date' if r['skipped'] else 'trained'}: valid AUC {metric(m['valid']['auc'])}, "
                f"best epoch {m['best_epoch']} of {m['epochs_run']}")
    if name == "evaluate":
        where = standing(r["candidate"]["auc"], r["baselines"])
        return f"candidate AUC {metric(r['candidate']['auc'])} GAUC {metric(r['candidate']['gauc'])}" + (
            f"; {where}" if where else "")
    return f"{r['version']} {'promoted to champion' if r['promoted'] else 'kept as challenger'}: {r['reason']}"


def standing(auc: float, base: dict) -> str:
    """Where a model of test AUC ``auc`` stands against the baselines ``base`` of its evaluation:
    its margin over the logistic regression and its share of the oracle's lift over the prior,
    (AUC − 0.5) / (AUC_oracle − 0.5), for those the day has ('' for none)."""
    parts = []
    if "logistic" in base:
        parts.append(f"{auc - base['logistic']['auc']:+.4f} AUC vs logistic")
    if "oracle" in base and base["oracle"]["auc"] > 0.5:
        parts.append(f"{(auc - 0.5) / (base['oracle']['auc'] - 0.5):.0%} of the oracle's lift")
    return ", ".join(parts)


def stage_skipped(name: str, r: dict) -> bool:
    """Whether stage ``name`` found everything up to date and wrote nothing."""
    if name == "ingest":
        return not r["written"]
    if name == "features":
        return not r["refit"] and all(d["status"] != "written" for d in r["days"])
    return bool(r.get("skipped"))


def evaluation_rows(result: dict, model: str) -> list[dict]:
    """Candidate, champion (when there is one) and baselines, as rows of ``EVALUATION_COLUMNS``."""
    rows = [{"model": f"candidate ({model})", **result["candidate"]}]
    if result["champion"]:
        rows.append({"model": f"champion {result['champion']['version']}", **result["champion"]})
    return rows + [{"model": name, **m} for name, m in result["baselines"].items()]


@dataclass
class Stage:
    """The outcome of one stage of a run: ``status`` is done, skipped, failed or not run."""

    name: str
    status: str = "not run"
    seconds: float | None = None
    result: dict | None = None
    message: str = ""
    run_url: str | None = None

    @property
    def detail(self) -> str:
        if self.status == "failed":
            return self.message
        return stage_detail(self.name, self.result) if self.result else ""


@dataclass
class DailySummary:
    """The stages of one ``dea-daily`` run, filled in as they finish, and its markdown."""

    dataset: str
    date: str
    model: str
    stages: dict[str, Stage] = field(default_factory=lambda: {s: Stage(s) for s in STAGES})
    interruption: str | None = None        # what stopped the run outside any stage's own failure

    def result(self, name: str) -> dict | None:
        return self.stages[name].result

    @property
    def verdict(self) -> str:
        if self.interruption:
            running = [s.name for s in self.stages.values() if s.status == "running"]
            return f"✗ **stopped{' during ' + running[0] if running else ''}**: {self.interruption}"
        failed = [s for s in self.stages.values() if s.status == "failed"]
        reg = self.result("register")
        if reg:
            return (f"✓ **{reg['version']} promoted to champion**" if reg["promoted"] else
                    f"✓ **{reg['version']} kept as challenger**; champion stays {reg['champion']}")
        if failed:
            return f"✗ **failed at {failed[-1].name}**: {failed[-1].message}"
        return "… **running**"

    def markdown(self, link) -> str:
        """The artifact; ``link(path)`` gives the http address of a lake file (``settings.reports_url``)."""
        parts = [f"# dea-daily `{self.dataset}` {self.date}", "", self.verdict, "", self._stage_table()]
        evaluation = self.result("evaluate")
        if evaluation:
            parts += ["", f"## Candidate vs champion vs baselines on {self.date}", "",
                      table(evaluation_rows(evaluation, self.model), EVALUATION_COLUMNS)]
        parts += ["", "## Reports", "", *self._reports(link)]
        return "\n".join(parts) + "\n"

    def _stage_table(self) -> str:
        rows = [{"stage": f"[{s.name}]({s.run_url})" if s.run_url else s.name, "status": ICON[s.status],
                 "seconds": None if s.seconds is None else f"{s.seconds:.1f}", "what": s.detail} for s in self.stages.values()]
        return table(rows, ["stage", "status", "seconds", "what"])

    def _reports(self, link) -> list[str]:
        lines = []
        gate = self.result("validate")
        if gate:
            docs = f" · [Data Docs]({link(gate['data_docs'])})" if gate.get("data_docs") else ""
            lines.append(f"- data-quality gate: [summary]({link(gate['summary'])}){docs}")
            lines += [f"\n![{Path(p).stem}]({link(p)})" for p in gate.get("plots", [])]
        train = self.result("train")
        if train and train.get("curve_plot"):
            lines.append(f"- training curve of {train['metrics']['model']}: [curve.png]({link(train['curve_plot'])})"
                         f"\n\n![training curve]({link(train['curve_plot'])})")
        reg = self.result("register")
        if reg:
            lines.append(f"- registry: {reg['version']} at `{reg['path']}`; champion **{reg['champion']}**")
        if not lines:
            lines.append("- none yet: the run stopped before the gate (see the failed stage's run)")
        lines.append("\nThe links are served by `dea reports` (`DEA_REPORTS_URL`).")
        return lines
