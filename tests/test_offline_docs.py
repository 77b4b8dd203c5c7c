"""``validation.offline_docs``: a built Data Docs site loads nothing from outside, each vendored file
a page loads is in the site, an unknown CDN address is refused by name; the vendored files are the ones
``MANIFEST.json`` lists, byte for byte the CDN's (the Subresource Integrity hashes GX pins agree).

A real site: one tiny GX suite run through ``validation.expectations.run_suites`` (which calls
``make_offline`` after ``build_data_docs``). GX's own page templates are checked too, so a GX
upgrade that adds a CDN address fails here, before any gate runs.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pandas as pd
import pytest

from validation.offline_docs import ASSETS, VENDOR, OfflineDocsError, make_offline, rewrite

CSS_URL = re.compile(r"""url\(\s*["']?([^"')]+)""")


class Loads(HTMLParser):
    """Every address a page loads: src/href of tags other than <a>, and url(...) of its styles."""

    def __init__(self) -> None:
        super().__init__()
        self.loads: list[str] = []
        self.links: list[str] = []
        self._style = False

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("src", "href", "srcset", "poster", "data", "action") and value:
                (self.links if tag == "a" else self.loads).append(value)
            if name == "style" and value:
                self.loads += CSS_URL.findall(value)
        self._style = tag == "style"

    def handle_endtag(self, tag):
        self._style = False

    def handle_data(self, data):
        if self._style:
            self.loads += CSS_URL.findall(data)


def loads_of(page: Path) -> Loads:
    parser = Loads()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """A Data Docs site built by the gate's GX code on a one-row table, made offline there."""
    from validation.checks import Check
    from validation.expectations import run_suites

    folder = tmp_path_factory.mktemp("docs")
    check = Check(name="rows", kind="rows", table="metrics", severity="error",
                  gx_type="ExpectColumnValuesToBeBetween", kwargs={"column": "rows", "min_value": 1})
    index = run_suites(folder, "toy", [check], {"metrics": pd.DataFrame({"rows": [5]})})
    assert check.status == "pass" and index is not None
    return index.parent


def _pages(site: Path) -> list[Path]:
    return [p for p in site.rglob("*.html") if (site / VENDOR) not in p.parents]


def test_a_built_site_loads_nothing_from_outside_and_its_vendored_files_are_in_it(site):
    pages = _pages(site)
    assert len(pages) >= 3                                  # the index, a suite, a validation result
    for page in pages:
        parsed = loads_of(page)
        text = page.read_text(encoding="utf-8")
        for address in parsed.loads:
            parts = urlsplit(address)
            assert not parts.scheme and not parts.netloc, f"{page}: loads {address}"
            if "static/vendor/" in address or "logo-long.png" in address:       # what make_offline wrote
                assert (page.parent / unquote(parts.path)).resolve().is_file(), f"{page}: {address} is not in the site"
        assert any("static/vendor/bootstrap@4.3.1/" in a for a in parsed.loads)
        assert "dataContextId" not in text and "newsletter" not in text and "crossorigin" not in text
        for link in parsed.links:                             # hyperlinks stay: they load nothing
            assert urlsplit(link).scheme in ("", "https", "javascript"), link
    # the site's copy of the stylesheet too (GX inlines it in the pages; the file ships beside them)
    for css in (site / "static/styles").glob("*.css"):
        assert not re.search(r"url\(\s*['\"]?(https?:)?//", css.read_text()), css


def test_make_offline_again_changes_nothing(site, tmp_path):
    copy = shutil.copytree(site, tmp_path / "site")
    before = {p: p.read_bytes() for p in _pages(copy)}
    assert make_offline(copy) == []
    assert {p: p.read_bytes() for p in _pages(copy)} == before


@pytest.mark.parametrize("snippet, address", [
    ('<script src="https://cdn.example.com/lib@1/lib.min.js"></script>', "https://cdn.example.com/lib@1/lib.min.js"),
    ("<link rel='stylesheet' href='//cdn.example.com/x.css'>", "//cdn.example.com/x.css"),
    ("<style>.a { background: url(https://cdn.example.com/x.png) }</style>", "https://cdn.example.com/x.png"),
    ('<img\n  class="x"\n  src="http://tracker.example.com/p.gif?id=1">', "http://tracker.example.com/p.gif?id=1"),
    ('<script src="https://cdn.jsdelivr.net/npm/vega@6"></script>', "https://cdn.jsdelivr.net/npm/vega@6"),
])
def test_an_unknown_outside_address_is_refused_by_file_and_address(tmp_path, snippet, address):
    page = tmp_path / "page.html"
    with pytest.raises(OfflineDocsError) as e:
        rewrite(f"<html><head>{snippet}</head></html>", page, tmp_path)
    assert str(page) in str(e.value) and address in str(e.value) and "fetch.py" in str(e.value)


def test_hyperlinks_and_addresses_in_text_are_left_alone(tmp_path):
    text = ('<a class="btn" href="https://docs.greatexpectations.io/docs/x">docs</a>'
            "<td>https://example.com/in/the/data</td><script>var d = {'u': 'https://example.com/v'};</script>")
    assert rewrite(text, tmp_path / "p.html", tmp_path) == text


def test_known_addresses_become_relative_paths_and_lose_their_cors_attributes(tmp_path):
    page = tmp_path / "validations" / "a" / "p.html"
    text = ('<script src="https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js" '
            'integrity="sha384-x" crossorigin="anonymous"></script>'
            '<img class="NO-CACHE" src="https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/'
            'logo-long.png?d=1&dataContextId=2" alt="GX"/>'
            '<footer>\n<p>Stay current <a href="https://greatexpectations.io/newsletter?utm_source=x">Subscribe</a></p>\n</footer>\n')
    assert rewrite(text, page, tmp_path) == (
        '<script src="../../static/vendor/bootstrap@4.3.1/js/bootstrap.min.js"></script>'
        '<img class="NO-CACHE" src="../../static/images/logo-long.png" alt="GX"/>')


def test_every_cdn_address_in_gx_templates_has_a_vendored_copy(tmp_path):
    """GX's page templates, as installed: rewriting them raises on an address this does not know."""
    import great_expectations

    view = Path(great_expectations.__file__).parent / "render" / "view"
    templates = sorted(view.glob("templates/*.j2")) + sorted(view.glob("static/styles/*.css"))
    assert len(templates) > 20
    rewritten = [t.name for t in templates if rewrite(t.read_text(), tmp_path / t.name, tmp_path) != t.read_text()]
    assert {"js_script_imports.j2", "page.j2", "index_page.j2", "data_docs_default_styles.css"} <= set(rewritten)


def test_vendored_files_match_the_manifest_and_the_cdn_bytes_gx_pins():
    manifest = json.loads((ASSETS / "MANIFEST.json").read_text())
    for path, f in manifest["files"].items():
        data = (ASSETS / path).read_bytes()
        assert hashlib.sha256(data).hexdigest() == f["sha256"] and len(data) == f["bytes"], path
    for package in manifest["packages"]:                      # each package keeps its licence
        assert package["licence_file"] in manifest["files"], package["name"]
    # GX pins two CDN files by Subresource Integrity: the npm files vendored here are those bytes
    import great_expectations

    template = Path(great_expectations.__file__).parent / "render/view/templates/js_script_imports.j2"
    pinned = re.findall(r'src="([^"]+)" integrity="sha384-([^"]+)"', template.read_text())
    assert len(pinned) == 2
    by_url = {url: path for path, f in manifest["files"].items() for url in f["urls"]}
    for url, digest in pinned:
        data = (ASSETS / by_url[url]).read_bytes()
        assert base64.b64encode(hashlib.sha384(data).digest()).decode() == digest, url
    # and every font Font Awesome's stylesheet loads first (woff2) is here
    fa = next(p for p in manifest["files"] if p.endswith("all.min.css"))
    fonts = {m for m in re.findall(r"url\(([^)]+\.woff2)\)", (ASSETS / fa).read_text())}
    assert fonts and all((ASSETS / fa).parent.joinpath(font).resolve().is_file() for font in fonts)


def test_an_unknown_address_after_a_gx_upgrade_warns_but_never_blocks_the_gate(tmp_path, monkeypatch, caplog):
    """The checks' verdict stands when the Data Docs cannot be made offline (they then still load
    from CDNs): a new GX template is worth a warning, not a failed day."""
    from validation import expectations
    from validation.checks import Check
    from validation.offline_docs import OfflineDocsError

    def refuse(site):
        raise OfflineDocsError(f"{site}/index.html loads https://cdn.example/new.js")

    monkeypatch.setattr(expectations, "make_offline", refuse)
    check = Check(name="rows", kind="rows", table="metrics", severity="error",
                  gx_type="ExpectColumnValuesToBeBetween", kwargs={"column": "rows", "min_value": 1})
    index = expectations.run_suites(tmp_path, "toy", [check], {"metrics": pd.DataFrame({"rows": [5]})})
    assert check.status == "pass" and index is not None and index.exists()
    assert "still load from outside hosts" in caplog.text and "cdn.example/new.js" in caplog.text
