"""The lake: one root folder, fixed paths per stage, atomic outputs and completion records.

Layout (root from ``DEA_HOME``, default ``./.dea``)::

    raw/<dataset>/dt=YYYY-MM-DD/*.parquet        landing zone
    features/<dataset>/dt=YYYY-MM-DD/*.parquet   int64 feature IDs per field + label + group + dt
    features/<dataset>/manifest.json             spec, hash spec version, fitted boundaries
    stats/<dataset>/dt=YYYY-MM-DD/               per-day long-tail and distribution statistics
    validation/<dataset>/dt=YYYY-MM-DD/          gate verdict JSON + Data Docs HTML
    models/<name>/<version>/                     weights, config, metrics, lineage
    models/<name>/aliases.json                   {"champion": version, ...}

Every output folder is built under a hidden temporary name and renamed into place only when it is
complete, with a ``_COMPLETE.json`` record (inputs' fingerprints, config hash, code version). A
stage whose record matches its inputs does no work; anything else recomputes.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator

COMPLETE = "_COMPLETE.json"
DAYS = {"raw": ("raw", "dea ingest"), "features": ("feature", "dea features")}   # a stage's day, what writes it


def code_version() -> str:
    try:
        return metadata.version("dea-platform")
    except metadata.PackageNotFoundError:  # running from a source tree without install
        return "0+unknown"


def parse_date(value: str | dt.date) -> dt.date:
    """``YYYY-MM-DD`` -> date, with an error that says what was wrong."""
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise ValueError(f"date {value!r} is not YYYY-MM-DD") from None


def date_range(start: str | dt.date, days: int) -> list[str]:
    first = parse_date(start)
    return [(first + dt.timedelta(days=i)).isoformat() for i in range(days)]


def window_before(date: str | dt.date, days: int) -> list[str]:
    """The ``days`` dates strictly before ``date``, oldest first."""
    end = parse_date(date)
    return [(end - dt.timedelta(days=days - i)).isoformat() for i in range(days)]


@dataclass(frozen=True)
class Lake:
    """Paths of every stage's outputs under one root."""

    root: Path

    @classmethod
    def default(cls, root: str | Path | None = None) -> "Lake":
        return cls(Path(root or os.environ.get("DEA_HOME", ".dea")).resolve())

    def raw(self, dataset: str, date: str | None = None) -> Path:
        return self._day(self.root / "raw" / dataset, date)

    def features(self, dataset: str, date: str | None = None) -> Path:
        return self._day(self.root / "features" / dataset, date)

    def manifest(self, dataset: str) -> Path:
        return self.root / "features" / dataset / "manifest.json"

    def stats(self, dataset: str, date: str | None = None) -> Path:
        return self._day(self.root / "stats" / dataset, date)

    def validation(self, dataset: str, date: str | None = None) -> Path:
        return self._day(self.root / "validation" / dataset, date)

    def predictions(self, dataset: str, date: str | None = None) -> Path:
        return self._day(self.root / "predictions" / dataset, date)

    def models(self, name: str) -> Path:
        return self.root / "models" / name

    def runs(self) -> Path:
        """Scratch space for training runs before they are registered."""
        return self.root / "runs"

    @staticmethod
    def _day(base: Path, date: str | None) -> Path:
        return base if date is None else base / f"dt={parse_date(date).isoformat()}"

    def day_files(self, stage: str, dataset: str, date: str) -> list[Path]:
        """The Parquet files of a complete day of ``stage`` (``raw``, ``features``), sorted; an error
        naming the dataset, date, folder and what to run when the day is missing, incomplete or empty."""
        folder = self._day(self.root / stage / dataset, date)
        where = f"dataset {dataset!r}, date {date}"
        if not (folder / COMPLETE).exists():
            have = self.dates(stage, dataset)
            shown = have if len(have) <= 6 else have[:3] + ["..."] + have[-3:]
            noun, command = DAYS.get(stage, (stage, f"the {stage} stage"))
            raise FileNotFoundError(f"{where}: no complete {noun} day at {folder} (run `{command}` first); "
                                    f"complete days: {shown}")
        files = sorted(folder.glob("*.parquet"))
        if not files:
            raise ValueError(f"{where}: {DAYS.get(stage, (stage,))[0]} day {folder} holds no Parquet files")
        return files

    def dates(self, stage: str, dataset: str) -> list[str]:
        """Complete days of a stage (``raw``, ``features``, ``stats``, ``validation``), sorted."""
        base = self.root / stage / dataset
        if not base.exists():
            return []
        return sorted(p.name[3:] for p in base.glob("dt=*") if (p / COMPLETE).exists())


# --- atomic outputs ---------------------------------------------------------------------------

@contextlib.contextmanager
def atomic_dir(final: Path) -> Iterator[Path]:
    """Yield a temporary sibling folder; on success it replaces ``final``, on error it is removed.

    Readers never see a half-written folder: they only trust folders holding ``_COMPLETE.json``,
    which the caller writes last (``write_record``), and the swap is two renames.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".tmp-{final.name}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        _remove_while_written(tmp)
        raise
    old = None
    if final.exists():
        old = final.parent / f".old-{final.name}-{uuid.uuid4().hex[:8]}"
        final.rename(old)
    tmp.rename(final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _remove_while_written(folder: Path, timeout: float = 10.0) -> None:
    """Remove a failed write's temporary folder, again while writers still in flight add to it (the
    other Dask tasks of a compute that raised finish their file), until it is gone."""
    deadline = time.monotonic() + timeout
    shutil.rmtree(folder, ignore_errors=True)
    while folder.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
        shutil.rmtree(folder, ignore_errors=True)


def remove_tree(path: Path) -> None:
    """Remove a folder (or a file) crash-safely: renamed to a hidden ``.old-*`` sibling first, so a
    crash mid-way leaves a temporary the next run of the dataset removes, never a half-deleted folder."""
    hidden = Path(path).with_name(f".old-{Path(path).name}-{uuid.uuid4().hex[:8]}")
    os.rename(path, hidden)
    if hidden.is_dir() and not hidden.is_symlink():
        shutil.rmtree(hidden)
    else:
        hidden.unlink()


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON to ``path`` through a temporary file and ``os.replace`` (atomic on POSIX)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".tmp-{path.name}-{uuid.uuid4().hex[:8]}"
    try:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str))
        os.replace(tmp, path)
    except BaseException:                      # an error, Ctrl-C or SIGTERM mid-write: no temporary left
        tmp.unlink(missing_ok=True)
        raise


TEMPORARY_PREFIXES = (".tmp-", ".old-")     # atomic_dir / write_json_atomic / Registry.register


def dataset_folders(lake: Lake, dataset: str) -> list[Path]:
    """Every folder that holds outputs of ``dataset`` (what its runs write under its lock)."""
    stages = [lake.raw(dataset), lake.features(dataset), lake.stats(dataset), lake.validation(dataset),
              lake.runs() / dataset, lake.predictions(dataset), lake.models(dataset)]
    return [p for p in stages if p.is_dir()]


def stale_temporaries(lake: Lake, dataset: str) -> list[Path]:
    """Hidden temporary folders and files (``.tmp-*``, ``.old-*``) under the dataset's folders.

    They are only stale when no run of the dataset is alive: call under its lock
    (``flows.guard.dataset_lock`` removes them when it is taken).
    """
    found = []
    for top in dataset_folders(lake, dataset):
        for folder, dirs, files in os.walk(top):
            for name in [*dirs, *files]:
                if name.startswith(TEMPORARY_PREFIXES):
                    found.append(Path(folder) / name)
            dirs[:] = [d for d in dirs if not d.startswith(TEMPORARY_PREFIXES)]   # not into them
    return sorted(found)


def remove_temporaries(paths: list[Path]) -> int:
    """Remove what ``stale_temporaries`` found; returns the bytes freed."""
    freed = 0
    for p in paths:
        if p.is_dir() and not p.is_symlink():
            freed += sum(f.stat().st_size for f in p.rglob("*") if f.is_file() and not f.is_symlink())
            shutil.rmtree(p, ignore_errors=True)
        elif p.exists() or p.is_symlink():
            freed += p.lstat().st_size
            p.unlink(missing_ok=True)
    return freed


# --- completion records -----------------------------------------------------------------------

def fingerprint(path: Path) -> str:
    """Identity of an input: its completion record's digest when it has one, else its files' stats.

    With a record: ``rec:<digest>+<content>``, the digest of the inputs and config that made the
    folder and the digest of the bytes it holds, so a folder rewritten with other contents (a forced
    recompute over a raw day changed in place) is a new input to everything downstream.
    For a folder without a record: sha256 over (relative path, size, mtime) of its files, like
    ``make``. For a file: the same over the one file.
    """
    path = Path(path)
    record = read_record(path)
    if record is not None:  # what made it, and (records since checksums) what it holds
        return f"rec:{record['digest']}" + (f"+{record['content']}" if "content" in record else "")
    if not path.exists():
        raise FileNotFoundError(f"input {path} does not exist")
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
    h = hashlib.sha256()
    for f in files:
        st = f.stat()
        h.update(f"{f.relative_to(path.parent)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return "stat:" + h.hexdigest()[:16]


def make_record(stage: str, inputs: dict[str, str], config_hash: str, **extra: Any) -> dict:
    """A completion record. ``key`` is what decides up-to-dateness; ``digest`` identifies it."""
    key = {"stage": stage, "inputs": dict(sorted(inputs.items())), "config_hash": config_hash,
           "code_version": code_version()}
    from features.hashing import HASH_SPEC_VERSION  # local: lake is imported by hashing's users

    key["hash_spec_version"] = HASH_SPEC_VERSION
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return {**key, "digest": digest, "created_at": dt.datetime.now(dt.timezone.utc).isoformat(), **extra}


def checksums(folder: Path) -> dict[str, dict]:
    """``{relative path: {"bytes", "sha256"}}`` of every visible file under ``folder``."""
    folder = Path(folder)
    out = {}
    for f in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")):
        rel = f.relative_to(folder)
        if rel.parts[0] == COMPLETE or any(part.startswith(".") for part in rel.parts):
            continue
        with open(f, "rb") as fh:
            out[rel.as_posix()] = {"bytes": f.stat().st_size, "sha256": hashlib.file_digest(fh, "sha256").hexdigest()}
    return out


def write_record(folder: Path, record: dict) -> None:
    """Write the completion record, last: ``record`` plus the SHA-256 of every file the folder holds
    (``checksums``) and their digest (``content``)."""
    sums = checksums(folder)
    content = hashlib.sha256(json.dumps(sums, sort_keys=True).encode()).hexdigest()[:16]
    write_json_atomic(Path(folder) / COMPLETE, {**record, "checksums": sums, "content": content})


def verify_checksums(folder: Path, names: list[str] | None = None) -> list[str]:
    """Problems with the files a record vouches for (all, or ``names``): missing, resized, altered.

    Empty when they match, or when the record predates checksums (nothing to compare with).
    """
    record = read_record(folder) or {}
    sums = record.get("checksums")
    if sums is None:
        return []
    problems = []
    for name in names or list(sums):
        path = Path(folder) / name
        want = sums.get(name)
        if want is None:
            problems.append(f"{path} is not in the completion record {Path(folder) / COMPLETE}")
        elif not path.is_file():
            problems.append(f"{path} is missing")
        else:
            with open(path, "rb") as fh:
                got = hashlib.file_digest(fh, "sha256").hexdigest()
            if got != want["sha256"]:
                problems.append(f"{path} has SHA-256 {got[:16]}…, but {want['sha256'][:16]}… was recorded "
                                f"when it was written ({want['bytes']:,} bytes; now {path.stat().st_size:,})")
    return problems


def read_record(folder: Path) -> dict | None:
    path = Path(folder) / COMPLETE
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError as e:
        raise ValueError(f"completion record {path} is not valid JSON ({e}); remove the folder "
                         f"{Path(folder)} and re-run the stage that writes it") from None


def up_to_date(folder: Path, record: dict) -> bool:
    """True when ``folder`` is complete and was made from the same inputs, config and code."""
    old = read_record(folder)
    return old is not None and old.get("digest") == record["digest"]
