"""A read-only HTTP server of a lake's reports (``dea reports``): gate Data Docs, summaries, plots.

The flows' Prefect artifacts link to ``settings.reports_url(lake, file)`` (by default
``http://127.0.0.1:4201/<path in the lake>``); this server answers those addresses. It serves two
trees of the lake and a generated index, nothing else:

    /                       index: dataset -> day (newest first) -> Data Docs, summary, plots, runs
    /validation/...         the gate's days (validation/<dataset>/dt=<date>/: Data Docs, summary.md, PNGs)
    /runs/...               training runs (curves, metrics, evaluations)

GET and HEAD only (anything else: 501); 404 for every other path, a hidden file, or a path that
leaves those trees (``..``, a symbolic link pointing outside). ``.md`` is served as text/plain,
text as utf-8, no caching (a re-run gate replaces its day). The Data Docs are self-contained
(``validation.offline_docs``), so the pages load nothing from outside the server.

Standard library only (``http.server``); it does not need Prefect.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import logging
import os
from functools import partial
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, unquote

log = logging.getLogger(__name__)

TREES = ("validation", "runs")
DOCS_INDEX = "gx/uncommitted/data_docs/local_site/index.html"     # under validation/<dataset>/dt=<date>/
TEXT = {".md": "text/plain", ".txt": "text/plain", ".log": "text/plain", ".json": "application/json",
        ".html": "text/html", ".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml",
        ".yml": "text/plain", ".yaml": "text/plain"}


class ReportHandler(SimpleHTTPRequestHandler):
    """Serves ``validation/`` and ``runs/`` of the lake at ``directory``, and the index at ``/``."""

    server_version = "dea-reports"
    extensions_map = {**SimpleHTTPRequestHandler.extensions_map,
                      **{ext: f"{kind}; charset=utf-8" for ext, kind in TEXT.items()}, ".woff2": "font/woff2"}

    def do_GET(self) -> None:
        if self._route():
            super().do_GET()

    def do_HEAD(self) -> None:
        if self._route():
            super().do_HEAD()

    def _route(self) -> bool:
        """True when the request is for a served file (``SimpleHTTPRequestHandler`` answers it);
        else this answers it (the index, or 404) and returns False."""
        path = unquote(self.path.split("?", 1)[0].split("#", 1)[0])    # as translate_path() reads it
        if path in ("/", "/index.html"):
            body = index_page(Path(self.directory)).encode()
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command == "GET":
                self.wfile.write(body)
            return False
        if not served(Path(self.directory), path):
            self.send_error(HTTPStatus.NOT_FOUND, "not a report of this lake")
            return False
        return True

    def list_directory(self, path):            # folders are not listed (names of hidden files, links)
        self.send_error(HTTPStatus.NOT_FOUND, "folders are not listed: start at /")
        return None

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-cache")
        self.send_header("X-Content-Type-Options", "nosniff")
        super().end_headers()

    def log_message(self, format: str, *args) -> None:     # to logging (shown with `dea -v`), not stderr
        log.info("%s %s", self.address_string(), format % args)


def served(root: Path, url_path: str) -> bool:
    """Whether ``url_path`` names a file or folder inside the lake's served trees (no hidden part,
    no way out by ``..`` or a symbolic link)."""
    parts = [p for p in url_path.split("/") if p]
    if not parts or parts[0] not in TREES or any(p.startswith(".") or "\\" in p for p in parts):
        return False
    try:
        tree = (root / parts[0]).resolve()
        target = (root / Path(*parts)).resolve()
    except (ValueError, OSError):              # a NUL byte, a symlink loop: not a report
        return False
    return target == tree or tree in target.parents


def _href(root: Path, path: Path) -> str:
    return "/" + quote(path.relative_to(root).as_posix(), safe="/=@")


def _link(root: Path, path: Path, text: str) -> str:
    return f'<a href="{html.escape(_href(root, path))}">{html.escape(text)}</a>'


def _verdict(day: Path) -> str:
    try:
        return str(json.loads((day / "verdict.json").read_text())["verdict"])
    except (OSError, ValueError, KeyError, TypeError):
        return ""


def _days(root: Path) -> dict[str, dict[str, dict[str, Path]]]:
    """{dataset: {date: {tree: folder}}} of every ``<tree>/<dataset>/dt=<date>/`` folder."""
    found: dict[str, dict[str, dict[str, Path]]] = {}
    for tree in TREES:
        for day in sorted((root / tree).glob("*/dt=*")):
            if day.is_dir() and not day.parent.name.startswith("."):
                found.setdefault(day.parent.name, {}).setdefault(day.name[3:], {})[tree] = day
    return found


def _day_row(root: Path, date: str, trees: dict[str, Path]) -> str:
    cells, thumbs = [], []
    gate = trees.get("validation")
    if gate is not None:
        verdict = _verdict(gate)
        cells.append(f'<span class="v {html.escape(verdict)}">{html.escape(verdict or "no verdict")}</span>')
        if (gate / DOCS_INDEX).is_file():
            cells.append(_link(root, gate / DOCS_INDEX, "Data Docs"))
        for name in ("summary.md", "verdict.json"):
            if (gate / name).is_file():
                cells.append(_link(root, gate / name, name))
        for png in sorted(gate.glob("*.png")):
            thumbs.append(f'<a href="{html.escape(_href(root, png))}"><img src="{html.escape(_href(root, png))}" '
                          f'alt="{html.escape(png.stem)}" title="{html.escape(png.stem)}" loading="lazy"></a>')
    runs = trees.get("runs")
    if runs is not None:
        cells.append(_link(root, runs, "runs/"))
        for curve in sorted(runs.glob("*/curve.png")):
            cells.append(_link(root, curve, f"curve {curve.parent.name}"))
    return (f'<tr><th>{html.escape(date)}</th><td>{" · ".join(cells)}</td>'
            f'<td class="plots">{"".join(thumbs)}</td></tr>')


def index_page(root: Path) -> str:
    """The ``/`` page: each dataset, its days newest first, the links of each day."""
    sections = []
    for dataset, days in sorted(_days(root).items()):
        rows = "\n".join(_day_row(root, date, trees) for date, trees in sorted(days.items(), reverse=True))
        sections.append(f'<h2 id="{html.escape(dataset)}">{html.escape(dataset)}</h2>\n'
                        f'<table>\n<tr><th>day</th><th>gate and runs</th><th>gate plots</th></tr>\n{rows}\n</table>')
    body = "\n".join(sections) or "<p>No reports yet: the gate writes them (<code>dea validate</code>, <code>dea run</code>).</p>"
    now = dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>DEA reports</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5rem 2rem; color: #222; }}
table {{ border-collapse: collapse; margin-bottom: 2rem; }}
th, td {{ border-bottom: 1px solid #ddd; padding: .35rem .8rem; text-align: left; vertical-align: middle; }}
.plots img {{ height: 64px; margin-right: .4rem; border: 1px solid #ccc; }}
.v {{ font-weight: 600; text-transform: uppercase; }} .pass {{ color: #1a7f37; }} .warn {{ color: #9a6700; }} .fail {{ color: #cf222e; }}
small {{ color: #666; }}
</style></head>
<body>
<h1>DEA reports</h1>
<p><small>lake {html.escape(str(root))} · {now}</small></p>
{body}
</body></html>
"""


def make_server(lake_root: str | os.PathLike, host: str, port: int) -> ThreadingHTTPServer:
    """A server of ``lake_root``'s reports bound to ``host:port`` (port 0: a free one); call
    ``serve_forever()``, then ``server_close()``."""
    root = Path(lake_root).resolve()           # may not exist yet: the index then lists no days
    server = ThreadingHTTPServer((host, port), partial(ReportHandler, directory=str(root)))
    server.daemon_threads = True
    return server
