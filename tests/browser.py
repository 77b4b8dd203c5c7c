"""A headless Chromium for tests that open a page of ours (the reports, the Prefect UI) and check
what a person would see, with every request to an outside host blocked and recorded.

    from browser import chromium, require_chromium

    def test_page():
        require_chromium()                         # optional: the same skip, before costly set-up
        with chromium() as browser:                # skips the test when Chromium or Playwright is absent
            page = browser.new_page()              # 1280x800; outside requests blocked and recorded
            page.goto("http://127.0.0.1:4201/")
            ...
            assert browser.outside_requests == []  # every address on a non-loopback host it tried
            assert browser.page_errors == []       # uncaught JavaScript errors of its pages

Python Playwright drives the system's Chromium (``/usr/bin/chromium``, Debian's ``chromium``
package; ``$DEA_CHROMIUM`` names another), so no ``playwright install`` download is needed. The
browser is closed when the block ends, also when the test fails. A plain module, imported as
``from browser import ...`` (pytest puts tests/ on ``sys.path``), like helpers.py.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit

import pytest

CHROMIUM = Path(os.environ.get("DEA_CHROMIUM", "/usr/bin/chromium"))
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--dns-prefetch-disable"]
LOCAL_SCHEMES = {"file", "data", "blob", "about", "chrome", "chrome-extension", "devtools"}
VIEWPORT = {"width": 1280, "height": 800}


def is_outside(url: str) -> bool:
    """True for an address on a host other than this machine's loopback (127.0.0.0/8, ::1, localhost)."""
    parts = urlsplit(url)
    if parts.scheme in LOCAL_SCHEMES:
        return False
    host = (parts.hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True                                    # a host name: outside


class Browser:
    """One Chromium with one context (``context``: its pages share cookies and storage)."""

    def __init__(self, browser, timeout_ms: int) -> None:
        self.browser = browser
        self.context = browser.new_context(viewport=VIEWPORT)
        self.context.set_default_timeout(timeout_ms)
        self.context.route("**/*", self._route)
        self.outside_requests: list[str] = []   # every outside address a page tried (each was aborted)
        self.page_errors: list[str] = []        # uncaught exceptions in its pages' JavaScript

    def _route(self, route) -> None:
        url = route.request.url
        if is_outside(url):
            self.outside_requests.append(url)
            route.abort("blockedbyclient")
        else:
            route.continue_()

    def _websocket(self, ws) -> None:           # page.route does not see WebSockets: record them here
        if is_outside(ws.url):
            self.outside_requests.append(ws.url)

    def new_page(self):
        """A new Playwright ``Page`` in this browser's context."""
        page = self.context.new_page()
        page.on("websocket", self._websocket)
        page.on("pageerror", lambda error: self.page_errors.append(f"{page.url}: {error}"))
        return page


def require_chromium() -> None:
    """Skip the calling test (or fixture: call it before costly set-up) when Chromium or Playwright
    is missing."""
    if not CHROMIUM.exists():
        pytest.skip(f"SKIPPED: no Chromium at {CHROMIUM} (apt-get install chromium; or set $DEA_CHROMIUM)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("SKIPPED: Python Playwright is not installed (pip install -c constraints.txt -e '.[test]')")


@contextlib.contextmanager
def chromium(timeout_ms: int = 15_000) -> Iterator[Browser]:
    """A headless Chromium for the block; skips the calling test when Chromium or Playwright is
    missing. ``timeout_ms``: Playwright's default wait for each action and navigation."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        try:
            yield Browser(browser, timeout_ms)
        finally:
            browser.close()
