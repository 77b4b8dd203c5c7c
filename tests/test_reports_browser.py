"""``dea reports`` in a real browser: the reports index, a gate day's Data Docs and one of its
validation results render offline (Bootstrap applied, bootstrap-table's rows built, Font Awesome
loaded, the gate's plots drawn), and no page asks an outside host for anything.

One small gated day (two synthetic days of 4,000 rows; the gate on the second writes its Data Docs
and plots), ``dea reports --port 0`` as a subprocess in its own session (killed with its process
group, also when a test fails), headless Chromium through ``tests/browser.py``. With
``DEA_SCREENSHOTS=1`` the browser test writes docs/screenshots/reports-index.png and data-docs.png.

The server's HTTP rules (what it serves, what it refuses) are checked in process, without a browser.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from browser import chromium, require_chromium
from prefect_server import stop

from flows.report_server import make_server

REPO = Path(__file__).resolve().parents[1]
DEA = str(Path(sys.executable).with_name("dea"))
SHOTS = REPO / "docs" / "screenshots"
DAYS = ["2026-01-01", "2026-01-02"]
DAY = DAYS[-1]


@pytest.fixture(scope="module")
def gated_lake(tmp_path_factory) -> Path:
    """A lake with two synthetic feature days and the gate's reports of the second (for the browser
    test only: skipped first when there is no browser)."""
    require_chromium()
    from features import pipeline
    from features.lake import Lake
    from features.spec import load_spec
    from flows.cli import main
    from validation import run_gate

    root = tmp_path_factory.mktemp("reports") / "lake"
    assert main(["--home", str(root), "synth", "--days", "2", "--rows", "4000", "--start", DAYS[0]]) == 0
    spec, lake = load_spec("synthetic"), Lake(root)
    manifest = pipeline.fit(spec, lake, DAYS[:1])
    for d in DAYS:
        pipeline.transform(spec, lake, d, manifest)
    result = run_gate(spec, lake, DAY)
    assert result.data_docs is not None and len(result.plots) == 2
    return root


@pytest.fixture
def reports(gated_lake, tmp_path):
    """``dea reports --port 0`` on the lake: (base URL, process, its output file)."""
    out = tmp_path / "reports.out"
    with open(out, "w") as log:
        proc = subprocess.Popen([DEA, "reports", "--port", "0", "--home", str(gated_lake)], stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while not (m := re.search(r"http://127\.0\.0\.1:\d+/", out.read_text())):
            assert proc.poll() is None, f"dea reports exited {proc.returncode}: {out.read_text()}"
            assert time.monotonic() < deadline, f"dea reports printed no address in 30 s: {out.read_text()}"
            time.sleep(0.1)
        yield m[0], proc, out
    finally:
        stop(proc)


def _shot(page, name: str) -> None:
    if os.environ.get("DEA_SCREENSHOTS") == "1":
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / name))
        assert (SHOTS / name).stat().st_size < 300_000


@pytest.mark.integration
def test_reports_render_offline_in_a_browser(reports, gated_lake):
    url, proc, out = reports
    with chromium() as browser:
        page = browser.new_page()

        # the index: the day, its verdict, its two gate plots drawn
        page.goto(url)
        row = page.locator("tr", has_text=DAY)
        assert row.locator(".v").inner_text().lower() in ("pass", "warn")
        page.wait_for_function("() => [...document.querySelectorAll('td.plots img')].every(i => i.complete)")
        widths = page.eval_on_selector_all("td.plots img", "imgs => imgs.map(i => i.naturalWidth)")
        assert len(widths) == 2 and min(widths) > 100, widths
        _shot(page, "reports-index.png")

        # one click to the day's Data Docs: its results list is a bootstrap-table built in JavaScript
        row.get_by_role("link", name="Data Docs").click()
        page.wait_for_url("**/gx/uncommitted/data_docs/local_site/index.html")
        results = page.locator("tr", has_text="gate-metrics")
        results.first.wait_for()
        assert page.locator(".bootstrap-table table tbody tr").count() >= 4       # one per validated table

        # a validation result: its tables have rows, Bootstrap and Font Awesome are applied
        results.first.click()
        page.wait_for_url("**/gate-metrics.html")
        page.wait_for_selector(".bootstrap-table table tbody tr")
        page.evaluate("() => document.fonts.ready")
        state = page.evaluate("""() => {
            const row = getComputedStyle(document.querySelector('.row'));
            return {rows: document.querySelectorAll('.bootstrap-table table tbody tr').length,
                    row: row.display + ' ' + row.marginLeft,
                    fa: [...document.fonts].some(f => f.family.includes('Font Awesome') && f.status === 'loaded'),
                    logo: document.querySelector('.navbar-brand img').naturalWidth}
        }""")
        assert state["rows"] > 10, state                          # the metrics suite's checks, one row each
        assert state["row"] == "flex -15px", state                # Bootstrap's grid (a plain div is a block)
        assert state["fa"] and state["logo"] > 0, state           # the icons' webfont; GX's logo, from the site
        assert page.get_by_text("Evaluated Expectations").is_visible()
        _shot(page, "data-docs.png")

        # the same page as a file, without the server: the links are relative
        page.goto(Path(gated_lake, "validation/synthetic", f"dt={DAY}").as_uri() + page.url.split(f"dt={DAY}")[1])
        page.wait_for_selector(".bootstrap-table table tbody tr")
        assert page.locator(".bootstrap-table table tbody tr").count() == state["rows"]

        assert browser.outside_requests == []
        assert browser.page_errors == []

    os.killpg(proc.pid, signal.SIGTERM)                        # a service stop: clean exit, 0
    assert proc.wait(10) == 0
    assert "dea reports: stopped" in out.read_text()


# --- the server's rules, in process ----------------------------------------------------------------

@pytest.fixture
def server(tmp_path):
    """``make_server`` on a small fake lake, in a thread: (lake root, port)."""
    root = tmp_path / "lake"
    day = root / "validation" / "toy" / "dt=2026-01-02"
    (day / "gx/uncommitted/data_docs/local_site").mkdir(parents=True)
    (day / "gx/uncommitted/data_docs/local_site/index.html").write_text("<html>docs</html>")
    (day / "summary.md").write_text("# gate toy 2026-01-02 ✓\n")
    (day / "verdict.json").write_text(json.dumps({"verdict": "warn"}))
    (day / "plot.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (day / ".hidden").write_text("no")
    (root / "validation/toy/dt=2026-01-01").mkdir()
    (root / "runs/toy/dt=2026-01-02/run-1").mkdir(parents=True)
    (root / "runs/toy/dt=2026-01-02/run-1/curve.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (root / "prefect").mkdir()
    (root / "prefect/prefect.db").write_text("secret")
    (root / "validation/toy/escape").symlink_to(root / "prefect")
    srv = make_server(root, "127.0.0.1", 0)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, srv.server_address[1]
    finally:
        srv.shutdown()
        srv.server_close()


def _get(port: int, path: str, method: str = "GET") -> tuple[int, str, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path)
        r = conn.getresponse()
        return r.status, r.getheader("Content-Type", ""), r.read()
    finally:
        conn.close()


def test_reports_index_lists_days_newest_first_with_their_links(server):
    root, port = server
    status, kind, body = _get(port, "/")
    page = body.decode()
    assert status == 200 and kind == "text/html; charset=utf-8"
    assert page.index("2026-01-02") < page.index("2026-01-01")                 # newest first
    for href in ("/validation/toy/dt=2026-01-02/gx/uncommitted/data_docs/local_site/index.html",
                 "/validation/toy/dt=2026-01-02/summary.md", "/validation/toy/dt=2026-01-02/plot.png",
                 "/runs/toy/dt=2026-01-02/run-1/curve.png"):
        assert f'href="{href}"' in page
    assert 'class="v warn"' in page and "https://" not in page and "http://" not in page


def test_reports_serve_the_two_trees_read_only_and_nothing_else(server):
    root, port = server
    status, kind, body = _get(port, "/validation/toy/dt=2026-01-02/summary.md")
    assert (status, kind) == (200, "text/plain; charset=utf-8") and "✓" in body.decode("utf-8")
    assert _get(port, "/validation/toy/dt=2026-01-02/plot.png")[:2] == (200, "image/png")
    assert _get(port, "/validation/toy/dt=2026-01-02/summary.md", "HEAD")[0] == 200
    assert _get(port, "/runs/toy/dt=2026-01-02/run-1/curve.png")[0] == 200
    for path in ("/prefect/prefect.db", "/validation/../prefect/prefect.db", "/validation/%2e%2e/prefect/prefect.db",
                 "//prefect/prefect.db", "/validation/toy/escape/prefect.db", "/validation/toy/dt=2026-01-02/.hidden",
                 "/raw/", "/favicon.ico", "/validation/toy/dt=2026-01-02/none.md", "/validation/",
                 "/validation/toy/dt=2026-01-02/", "/validation/a%00b"):
        assert _get(port, path)[0] == 404, path
    for method in ("POST", "PUT", "DELETE"):
        assert _get(port, "/validation/toy/dt=2026-01-02/summary.md", method)[0] == 501, method
    assert (root / "validation/toy/dt=2026-01-02/summary.md").exists()


def test_reports_start_before_the_first_run_and_list_no_days(tmp_path):
    """The service order of the README: `dea reports` starts before any run has made the lake."""
    srv = make_server(tmp_path / "not-yet", "127.0.0.1", 0)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        status, _, body = _get(srv.server_address[1], "/")
        assert status == 200 and "No reports yet" in body.decode()
        assert _get(srv.server_address[1], "/validation/x/summary.md")[0] == 404
    finally:
        srv.shutdown()
        srv.server_close()
    assert not (tmp_path / "not-yet").exists()                 # a reader: it creates nothing
