"""Where a source's files are: ``source.path`` resolved, and its files in reading order.

``source.path`` is a file, or a folder with ``options.files`` (names or globs relative to it, in the
order given; a glob expands in natural order, ``part2`` before ``part10``). Without ``files`` a
folder contributes every non-hidden file except ``*.md`` / ``README*``, in natural order. Relative
paths resolve against the repository root; ``../shared/data/<rest>`` resolves to
``$DEA_DATA_DIR/<rest>`` when that variable is set.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from features.spec import DatasetSpec

from .common import SourceError

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = ("..", "shared", "data")


def data_root() -> Path:
    """The shared data folder: ``$DEA_DATA_DIR``, else ``<repo>/../shared/data``."""
    env = os.environ.get("DEA_DATA_DIR")
    return Path(env).expanduser().resolve() if env else (REPO_ROOT.parent / "shared" / "data").resolve()


def resolve_path(path: str | Path) -> Path:
    """A ``source.path``: absolute as is; ``../shared/data/...`` under ``data_root()``; else repo-relative."""
    p = Path(path).expanduser()
    if p.is_absolute():
        return p
    if p.parts[:3] == SHARED_DATA:
        return data_root().joinpath(*p.parts[3:])
    return (REPO_ROOT / p).resolve()


def _natural(path: Path) -> list:
    return [int(s) if s.isdigit() else s for s in re.split(r"(\d+)", str(path))]


def source_files(spec: DatasetSpec) -> list[Path]:
    """The source's files in reading order (see the module docstring)."""
    src = spec.source
    if src.path is None:
        raise SourceError(f"dataset {spec.name!r}: source.path is not set (kind {src.kind})")
    root = resolve_path(src.path)
    if not root.exists():
        raise FileNotFoundError(f"dataset {spec.name!r}: source {root} does not exist (source.path {src.path!r}; "
                                f"shared data root {data_root()}, override with DEA_DATA_DIR)")
    patterns = src.options.get("files")
    if root.is_file():
        if patterns:
            raise SourceError(f"dataset {spec.name!r}: options.files needs source.path to be a folder, "
                              f"{root} is a file")
        return [root]
    if not patterns:
        found = [p for p in root.rglob("*") if p.is_file() and not p.name.startswith((".", "_", "README"))
                 and p.suffix != ".md"]
        if not found:
            raise FileNotFoundError(f"dataset {spec.name!r}: source folder {root} holds no data files")
        return sorted(found, key=_natural)
    files: list[Path] = []
    for pattern in patterns:
        matched = sorted(root.glob(pattern), key=_natural) if any(c in pattern for c in "*?[") else [root / pattern]
        matched = [p for p in matched if p.is_file()]
        if not matched:
            raise FileNotFoundError(f"dataset {spec.name!r}: source {root / pattern} does not exist "
                                    f"(options.files entry {pattern!r})")
        files += [p for p in matched if p not in files]
    return files
