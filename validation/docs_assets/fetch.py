"""Fetch the JavaScript, CSS and fonts Great Expectations' Data Docs load from public CDNs.

GX's page templates load Bootstrap, jQuery, bootstrap-table, Font Awesome, Vega... from unpkg,
jsdelivr, cdnjs and others; ``validation.offline_docs.make_offline`` copies these files into each
built site and points the pages at them, so the reports render (and their result tables fill) with
no network. This script is the only place the versions are chosen:

    python validation/docs_assets/fetch.py            # download from registry.npmjs.org, (re)write the files + MANIFEST.json
    python validation/docs_assets/fetch.py --check    # offline: every file on disk matches MANIFEST.json

``PINS`` lists each npm package at an exact version, the files the pages load (or a vendored CSS
file loads: Font Awesome's webfonts) and the CDN addresses each file replaces. A file goes to
``<package>@<version>/<its path in the package, less a leading dist/ or build/>``. Every tarball is
checked against the registry's sha512 ``integrity`` before a file is taken from it; each kept file's
sha256 is written to ``MANIFEST.json``, which ``make_offline`` reads (CDN address -> local file).
Re-running it gives the same files and the same manifest; after a GX upgrade adds a CDN address,
add it here and re-run (``make_offline`` refuses pages that load an address it does not know).

Notes: ``vega@5``, ``vega-lite@5``, ``vega-embed@6`` (jsdelivr's "latest 5.x/6.x") are pinned to the
newest release of those lines when this was written; jsdelivr serves a bare package address as the
package.json ``jsdelivr`` file, which is what is vendored. Font Awesome's CSS lists each font as
woff2 then ttf; only the woff2 files are kept (every browser since 2016 loads woff2 and stops there).
popper.js 1.12.9 and vega 5.33.1 ship no licence file: one is written from their package.json's
licence (MIT, BSD-3-Clause) and copyright holder (``WRITTEN_LICENCES``).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import shutil
import sys
import tarfile
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
MANIFEST = HERE / "MANIFEST.json"
REGISTRY = "https://registry.npmjs.org"
LICENCE_NAMES = ("LICENSE", "LICENSE.txt", "LICENSE.md", "LICENCE", "license")


@dataclass(frozen=True)
class Pin:
    """One npm package at an exact version: {file in the package: [CDN addresses it replaces]}."""

    name: str
    version: str
    files: dict[str, list[str]] = field(default_factory=dict)

    @property
    def folder(self) -> str:
        """``bootstrap@4.3.1``; a scoped package drops its scope (``fontawesome-free@6.6.0``)."""
        return f"{self.name.rsplit('/', 1)[-1]}@{self.version}"


UNPKG, JSDELIVR, CDNJS = "https://unpkg.com", "https://cdn.jsdelivr.net/npm", "https://cdnjs.cloudflare.com/ajax/libs"
FA_FONTS = ("fa-brands-400", "fa-regular-400", "fa-solid-900", "fa-v4compatibility")

PINS = [
    Pin("bootstrap", "4.3.1", {
        "dist/css/bootstrap.min.css": ["https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css"],
        "dist/js/bootstrap.min.js": ["https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js"]}),
    Pin("jquery", "3.7.1", {"dist/jquery.min.js": ["https://code.jquery.com/jquery-3.7.1.min.js"]}),
    Pin("popper.js", "1.12.9", {"dist/umd/popper.min.js": [f"{CDNJS}/popper.js/1.12.9/umd/popper.min.js"]}),
    Pin("bootstrap-datepicker", "1.9.0", {
        "dist/js/bootstrap-datepicker.min.js": [f"{CDNJS}/bootstrap-datepicker/1.9.0/js/bootstrap-datepicker.min.js"],
        "dist/css/bootstrap-datepicker.min.css": [f"{CDNJS}/bootstrap-datepicker/1.9.0/css/bootstrap-datepicker.min.css"]}),
    Pin("bootstrap-table", "1.19.1", {
        "dist/bootstrap-table.min.js": [f"{UNPKG}/bootstrap-table@1.19.1/dist/bootstrap-table.min.js"],
        "dist/bootstrap-table.min.css": [f"{UNPKG}/bootstrap-table@1.19.1/dist/bootstrap-table.min.css"],
        "dist/extensions/filter-control/bootstrap-table-filter-control.min.js":
            [f"{UNPKG}/bootstrap-table@1.19.1/dist/extensions/filter-control/bootstrap-table-filter-control.min.js"]}),
    Pin("bootstrap-table", "1.19.0", {   # GX's templates load the filter-control CSS of 1.19.0
        "dist/extensions/filter-control/bootstrap-table-filter-control.css":
            [f"{UNPKG}/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.css"],
        "dist/extensions/filter-control/bootstrap-table-filter-control.min.css":
            [f"{UNPKG}/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.min.css"]}),
    Pin("vega", "5.33.1", {"build/vega.min.js": [f"{JSDELIVR}/vega@5"]}),
    Pin("vega-lite", "5.23.0", {"build/vega-lite.min.js": [f"{JSDELIVR}/vega-lite@5"]}),
    Pin("vega-embed", "6.29.0", {"build/vega-embed.min.js": [f"{JSDELIVR}/vega-embed@6"]}),
    Pin("@fortawesome/fontawesome-free", "6.6.0", {
        "css/all.min.css": [f"{CDNJS}/font-awesome/6.6.0/css/all.min.css"],
        **{f"webfonts/{font}.woff2": [] for font in FA_FONTS}}),
    Pin("@forevolve/bootstrap-dark", "1.1.0", {
        "dist/css/bootstrap-prefers-dark.css": [f"{JSDELIVR}/@forevolve/bootstrap-dark@1.1.0/dist/css/bootstrap-prefers-dark.css"]}),
]

MIT = """MIT License

{copyright}

Permission is hereby granted, free of charge, to any person obtaining a copy of this software and
associated documentation files (the "Software"), to deal in the Software without restriction,
including without limitation the rights to use, copy, modify, merge, publish, distribute,
sublicense, and/or sell copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all copies or
substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING BUT
NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND
NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES
OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN
CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.
"""
BSD3 = """{copyright}
All rights reserved.

Redistribution and use in source and binary forms, with or without modification, are permitted
provided that the following conditions are met:

1. Redistributions of source code must retain the above copyright notice, this list of conditions
   and the following disclaimer.

2. Redistributions in binary form must reproduce the above copyright notice, this list of
   conditions and the following disclaimer in the documentation and/or other materials provided
   with the distribution.

3. Neither the name of the copyright holder nor the names of its contributors may be used to
   endorse or promote products derived from this software without specific prior written
   permission.

THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS "AS IS" AND ANY EXPRESS OR
IMPLIED WARRANTIES, INCLUDING, BUT NOT LIMITED TO, THE IMPLIED WARRANTIES OF MERCHANTABILITY AND
FITNESS FOR A PARTICULAR PURPOSE ARE DISCLAIMED. IN NO EVENT SHALL THE COPYRIGHT OWNER OR
CONTRIBUTORS BE LIABLE FOR ANY DIRECT, INDIRECT, INCIDENTAL, SPECIAL, EXEMPLARY, OR CONSEQUENTIAL
DAMAGES (INCLUDING, BUT NOT LIMITED TO, PROCUREMENT OF SUBSTITUTE GOODS OR SERVICES; LOSS OF USE,
DATA, OR PROFITS; OR BUSINESS INTERRUPTION) HOWEVER CAUSED AND ON ANY THEORY OF LIABILITY, WHETHER
IN CONTRACT, STRICT LIABILITY, OR TORT (INCLUDING NEGLIGENCE OR OTHERWISE) ARISING IN ANY WAY OUT OF
THE USE OF THIS SOFTWARE, EVEN IF ADVISED OF THE POSSIBILITY OF SUCH DAMAGE.
"""
WRITTEN_LICENCES = {  # tarballs without a licence file: the licence text of their package.json's licence
    ("popper.js", "1.12.9"): (MIT, "Copyright (C) Federico Zivolo 2017 (the header of dist/umd/popper.min.js)"),
    ("vega", "5.33.1"): (BSD3, "Copyright (c) 2015-2023, University of Washington Interactive Data Lab."),
}


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as response:
        return response.read()


def _tarball(pin: Pin) -> tuple[dict, tarfile.TarFile]:
    """The registry's metadata of the version and its tarball, checked against ``dist.integrity``."""
    meta = json.loads(_get(f"{REGISTRY}/{pin.name}/{pin.version}"))
    data = _get(meta["dist"]["tarball"])
    algo, _, want = meta["dist"]["integrity"].partition("-")
    got = base64.b64encode(hashlib.new(algo, data).digest()).decode()
    if got != want:
        raise SystemExit(f"{pin.name}@{pin.version}: tarball {algo} {got} != registry integrity {want}")
    return meta, tarfile.open(fileobj=io.BytesIO(data), mode="r:gz")


def _local(path: str) -> str:
    """Where a package file goes under its folder: the package path less its build-output folder
    (``dist/``, ``build/``; the repository's .gitignore ignores ``build/``). Files that refer to each
    other (Font Awesome's CSS and its ../webfonts/) keep their relative places."""
    for prefix in ("dist/", "build/"):
        if path.startswith(prefix):
            return path[len(prefix):]
    return path


def _member(tar: tarfile.TarFile, path: str) -> bytes | None:
    try:
        f = tar.extractfile(f"package/{path}")
    except KeyError:
        return None
    return f.read() if f else None


def fetch() -> dict:
    """Download every pin, write its files under ``<folder>/`` here, return the manifest."""
    for old in HERE.glob("*@*"):          # a re-run starts clean: no file of an older pin survives
        shutil.rmtree(old)
    packages, files = [], {}
    for pin in PINS:
        meta, tar = _tarball(pin)
        kept = {}
        for path, urls in pin.files.items():
            data = _member(tar, path)
            if data is None:
                raise SystemExit(f"{pin.name}@{pin.version}: no {path} in the tarball")
            kept[path] = (data, urls)
        for name in LICENCE_NAMES:
            if (data := _member(tar, name)) is not None:
                licence = name
                break
        else:
            if (pin.name, pin.version) not in WRITTEN_LICENCES:
                raise SystemExit(f"{pin.name}@{pin.version}: no licence file in the tarball")
            text, holder = WRITTEN_LICENCES[pin.name, pin.version]
            licence, data = "LICENSE", text.format(copyright=holder).encode()
        kept[licence] = (data, [])
        for path, (data, urls) in kept.items():
            local = f"{pin.folder}/{_local(path)}"
            (HERE / local).parent.mkdir(parents=True, exist_ok=True)
            (HERE / local).write_bytes(data)
            files[local] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data), "urls": urls,
                            "from": f"{pin.name}@{pin.version}/{path}"}
        packages.append({"name": pin.name, "version": pin.version, "license": meta.get("license"),
                         "folder": pin.folder, "licence_file": f"{pin.folder}/{_local(licence)}",
                         "tarball": meta["dist"]["tarball"], "integrity": meta["dist"]["integrity"]})
        print(f"{pin.name}@{pin.version}: {len(kept)} files, {sum(len(d) for d, _ in kept.values()) / 1e3:,.0f} kB")
    manifest = {"about": "Written by fetch.py (do not edit): the CDN files GX's Data Docs load, vendored "
                         "from registry.npmjs.org; files: path -> sha256, size, the CDN addresses it replaces, "
                         "the package file it is.",
                "packages": packages, "files": dict(sorted(files.items()))}
    MANIFEST.write_text(json.dumps(manifest, indent=1) + "\n")
    total = sum(f["bytes"] for f in files.values())
    print(f"{len(files)} files, {total / 1e6:.2f} MB -> {MANIFEST}")
    return manifest


def check() -> list[str]:
    """Files that are missing or differ from MANIFEST.json (no network)."""
    manifest = json.loads(MANIFEST.read_text())
    problems = []
    for path, f in manifest["files"].items():
        p = HERE / path
        if not p.is_file():
            problems.append(f"missing {path}")
        elif hashlib.sha256(p.read_bytes()).hexdigest() != f["sha256"]:
            problems.append(f"sha256 differs: {path}")
    return problems


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="verify the files against MANIFEST.json, offline")
    if parser.parse_args().check:
        problems = check()
        print("\n".join(problems) or "all files match MANIFEST.json")
        sys.exit(1 if problems else 0)
    fetch()
