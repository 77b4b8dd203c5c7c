"""Artifacts the flows publish in the Prefect UI: markdown tables, keyed per dataset."""

from __future__ import annotations

import math
import re
from typing import Any, Iterable

from prefect.artifacts import create_markdown_artifact


def artifact_key(*parts: str) -> str:
    """A valid artifact key (lowercase letters, digits, dashes) from its parts."""
    return re.sub(r"[^a-z0-9-]+", "-", "-".join(parts).lower()).strip("-")


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "–" if math.isnan(value) else f"{value:.5f}" if abs(value) < 10 else f"{value:,.1f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return "–" if value is None else str(value).replace("|", "\\|")


def table(rows: Iterable[dict], columns: list[str]) -> str:
    """A markdown table of ``rows`` (dicts), one column per key in ``columns``."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def publish(key: str, markdown: str, description: str) -> None:
    """Create the markdown artifact ``key`` (a new version of it on every run)."""
    create_markdown_artifact(markdown=markdown, key=key, description=description)
