"""Make a built Great Expectations Data Docs site self-contained: it renders with no network.

GX's pages load Bootstrap, jQuery, bootstrap-table, Font Awesome and Vega from public CDNs and embed
a tracking image (``logo-long.png?d=...&dataContextId=...``) and a newsletter footer. Offline such a
page is unstyled and its result tables are empty (bootstrap-table fills them in JavaScript).
``make_offline(site)``, run right after ``context.build_data_docs()``:

- copies (hard-links) the vendored files (``validation/docs_assets/``, listed in its
  ``MANIFEST.json``, fetched by its ``fetch.py``) into ``<site>/static/vendor/``;
- in every ``.html`` and ``.css`` file of the site (but the vendored ones), points each CDN address
  at its local copy, by a path relative to the file (the site works over http and as file://), and
  each GX image address (the tracking logo, the dark-mode logo) at the site's own
  ``static/images/logo-long.png``; removes GX's footers (the newsletter, the tutorials buttons);
- raises ``OfflineDocsError`` naming the file and the address when a page would load something from
  an address it does not know (a GX upgrade adding a CDN file): add it to ``fetch.py`` and re-run it.

Plain hyperlinks (``<a href="https://docs.greatexpectations.io/...">``) load nothing and are kept.
One regex pass per file (and one for the footers); the pages are unchanged elsewhere. Running it
again changes nothing. The vendored files are hard links where possible: 2.7 MB once, not per day.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from functools import cache
from pathlib import Path

ASSETS = Path(__file__).resolve().parent / "docs_assets"
VENDOR = Path("static/vendor")                 # under the site
LOGO = Path("static/images/logo-long.png")     # GX copies it into every site
GX_IMAGES = "https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/"

# One pass per file over tags and CSS references. Inside a tag (but <a>: a hyperlink loads nothing)
# or a stylesheet, a loading reference (src=, href=, srcset=, poster=, data=, action=, url(...),
# @import) to an absolute or protocol-relative address is rewritten. Text that merely contains an
# address (a data value shown in a table) is left alone: it loads nothing.
_URL = r"""(?:https?:)?//[^\s"'<>()\\]+"""
LOAD = re.compile(rf"""(?P<lead>\b(?:src|href|srcset|poster|data|action)\s*=\s*["']?|url\(\s*["']?|@import\s+["']?)(?P<url>{_URL})""",
                  re.IGNORECASE)
TAG_OR_CSS = re.compile(rf"""<[a-zA-Z][^>]*>|{LOAD.pattern}""", re.IGNORECASE)
ANCHOR = re.compile(r"<a\s", re.IGNORECASE)
# a local file cannot be fetched in CORS mode from a file:// page, and Subresource Integrity needs
# CORS: both go from a rewritten tag (the vendored bytes are the CDN's: MANIFEST.json's sha256)
CORS = re.compile(r"""\s+(?:integrity|crossorigin)\s*=\s*("[^"]*"|'[^']*'|[^\s>]+)""", re.IGNORECASE)
# GX's footers link outside: the newsletter, and the tutorials call-to-action that covers the foot of
# the page once its JavaScript runs (``show_how_to_buttons``): both go
FOOTER = re.compile(r"<footer\b[^>]*>(?:(?!</footer>).)*?https?://.*?</footer>\n?", re.DOTALL | re.IGNORECASE)


class OfflineDocsError(RuntimeError):
    """A Data Docs page loads an outside address that has no vendored copy."""


@cache
def vendored() -> dict[str, str]:
    """CDN address -> the vendored file's path relative to the site root (``static/vendor/...``)."""
    manifest = json.loads((ASSETS / "MANIFEST.json").read_text())
    return {url: (VENDOR / path).as_posix() for path, f in manifest["files"].items() for url in f["urls"]}


def local_path(url: str) -> str | None:
    """The site-relative file that replaces ``url``, or None when it is unknown."""
    if url.startswith(GX_IMAGES) and url.partition("?")[0].endswith(".png"):
        return LOGO.as_posix()                 # the tracking logo (?d=...&dataContextId=...), the dark-mode logo
    return vendored().get(url)


def copy_assets(site: Path) -> None:
    """The vendored files (MANIFEST.json's list, licences included) into ``<site>/static/vendor/``:
    hard links to the package's copies where the file system allows (every day's site shares them),
    else copies. Nothing writes to them in place."""
    manifest = json.loads((ASSETS / "MANIFEST.json").read_text())
    for path in [*manifest["files"], "MANIFEST.json"]:
        target = site / VENDOR / path
        if target.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(ASSETS / path, target)
        except OSError:                        # another file system, or not ours to link (protected_hardlinks)
            shutil.copyfile(ASSETS / path, target)


def rewrite(text: str, file: Path, site: Path) -> str:
    """``text`` of ``file`` (inside ``site``) with every outside load pointed at a local file."""
    up = Path(os.path.relpath(site, file.parent)).as_posix()

    def local(m: re.Match) -> str:
        path = local_path(m["url"])
        if path is None:
            raise OfflineDocsError(f"{file}: loads {m['url']}, which has no vendored copy; add it to "
                                   f"validation/docs_assets/fetch.py (PINS) and run that script")
        return m["lead"] + f"{up}/{path}"

    def tag_or_css(m: re.Match) -> str:
        if not m[0].startswith("<"):
            return local(m)
        if ANCHOR.match(m[0]):
            return m[0]
        tag = LOAD.sub(local, m[0])
        return tag if tag == m[0] else CORS.sub("", tag)

    return FOOTER.sub("", TAG_OR_CSS.sub(tag_or_css, text))


def make_offline(site_dir: str | os.PathLike) -> list[Path]:
    """Vendor the assets into the Data Docs site ``site_dir`` and rewrite its pages; returns the
    files changed. Raises ``OfflineDocsError`` on an outside address it has no copy of."""
    site = Path(site_dir)
    if not site.is_dir():
        raise FileNotFoundError(f"no Data Docs site at {site}")
    copy_assets(site)
    changed = []
    for file in sorted(p for pattern in ("*.html", "*.css") for p in site.rglob(pattern)):
        if (site / VENDOR) in file.parents:
            continue
        text = file.read_text(encoding="utf-8")
        new = rewrite(text, file, site)
        if new != text:
            file.write_text(new, encoding="utf-8")
            changed.append(file)
    return changed
