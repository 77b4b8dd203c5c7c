"""The lake: one root, fixed paths per stage, atomic outputs and completion records.

The root (``DEA_HOME``, default ``./.dea``) is a local folder or an fsspec URL such as
``s3://bucket/dea`` (``features.storage``). Layout::

    raw/<dataset>/dt=YYYY-MM-DD/*.parquet        landing zone
    features/<dataset>/dt=YYYY-MM-DD/*.parquet   int64 feature IDs per field + label + group
    features/<dataset>/_manifest.json            spec, hash spec version, fitted boundaries
    stats/<dataset>/dt=YYYY-MM-DD/               per-day long-tail and distribution statistics
    validation/<dataset>/dt=YYYY-MM-DD/          gate verdict JSON + Data Docs HTML
    models/<name>/<version>/                     weights, config, metrics, lineage
    models/<name>/aliases.json                   {"champion": version, ...}

Every output folder is built under a hidden temporary name and published only when it is complete
(``features.storage.atomic_dir``), with a ``_COMPLETE.json`` record written last (inputs'
fingerprints, config hash, code version, the SHA-256 of every file). Readers read only the files a
record names. A stage whose record matches its inputs does no work; anything else recomputes.

``features/<dataset>`` is a Hive-partitioned Parquet table (``dt=`` folders, no ``dt`` column in the
files; ``_``/``.`` names skipped), which pandas, ``pyarrow.dataset``, Dask and Spark read whole.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from upath import UPath

from features.storage import (COMPLETE, TEMPORARY_PREFIXES, remove_quietly, atomic_dir, lake_path, remove_tree, staged_dir,
                              is_local, tree_bytes, visible_files, walk_temporaries,
                              write_json_atomic)

__all__ = ["COMPLETE", "TEMPORARY_PREFIXES", "Lake", "atomic_dir", "staged_dir", "remove_tree", "write_json_atomic",
           "parse_date", "date_range", "window_before", "code_version", "fingerprint", "make_record", "write_record",
           "read_record", "up_to_date", "checksums", "verify_checksums", "dataset_folders", "stale_temporaries",
           "remove_temporaries"]
MANIFEST = "_manifest.json"     # in features/<dataset>/, skipped by Parquet readers (a ``_`` name)
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

    root: UPath

    def __post_init__(self) -> None:              # Lake(Path(...)) or Lake("s3://...") work too
        object.__setattr__(self, "root", lake_path(self.root))

    @classmethod
    def default(cls, root: str | os.PathLike | None = None) -> "Lake":
        return cls(lake_path(root or os.environ.get("DEA_HOME", ".dea")))

    def raw(self, dataset: str, date: str | None = None) -> UPath:
        return self._day(self.root / "raw" / dataset, date)

    def features(self, dataset: str, date: str | None = None) -> UPath:
        return self._day(self.root / "features" / dataset, date)

    def manifest(self, dataset: str) -> UPath:
        return self.root / "features" / dataset / MANIFEST

    def stats(self, dataset: str, date: str | None = None) -> UPath:
        return self._day(self.root / "stats" / dataset, date)

    def validation(self, dataset: str, date: str | None = None) -> UPath:
        return self._day(self.root / "validation" / dataset, date)

    def predictions(self, dataset: str, date: str | None = None) -> UPath:
        return self._day(self.root / "predictions" / dataset, date)

    def models(self, name: str) -> UPath:
        return self.root / "models" / name

    def runs(self) -> UPath:
        """Scratch space for training runs before they are registered."""
        return self.root / "runs"

    @staticmethod
    def _day(base: UPath, date: str | None) -> UPath:
        return base if date is None else base / f"dt={parse_date(date).isoformat()}"

    def day_files(self, stage: str, dataset: str, date: str) -> list[UPath]:
        """The Parquet files of a complete day of ``stage`` (``raw``, ``features``), sorted: those its
        completion record names (no listing; nothing uncommitted), or a listing for records older
        than checksums. An error naming the dataset, date, folder and what to run when the day is
        missing, incomplete or empty."""
        folder = self._day(self.root / stage / dataset, date)
        where = f"dataset {dataset!r}, date {date}"
        record = read_record(folder)
        if record is None:
            have = self.dates(stage, dataset)
            shown = have if len(have) <= 6 else have[:3] + ["..."] + have[-3:]
            noun, command = DAYS.get(stage, (stage, f"the {stage} stage"))
            raise FileNotFoundError(f"{where}: no complete {noun} day at {folder} (run `{command}` first); "
                                    f"complete days: {shown}")
        names = record.get("checksums")
        files = ([folder / n for n in sorted(names) if n.endswith(".parquet") and "/" not in n] if names is not None
                 else sorted(folder.glob("*.parquet")))
        if not files:
            raise ValueError(f"{where}: {DAYS.get(stage, (stage,))[0]} day {folder} holds no Parquet files")
        return files

    def dates(self, stage: str, dataset: str) -> list[str]:
        """Complete days of a stage (``raw``, ``features``, ``stats``, ``validation``), sorted."""
        base = self.root / stage / dataset
        if not base.exists():
            return []
        return sorted({p.parent.name[3:] for p in base.glob(f"dt=*/{COMPLETE}")})


# --- temporaries ---------------------------------------------------------------------------------

def dataset_folders(lake: Lake, dataset: str) -> list[UPath]:
    """Every folder that holds outputs of ``dataset`` (what its runs write under its lock)."""
    stages = [lake.raw(dataset), lake.features(dataset), lake.stats(dataset), lake.validation(dataset),
              lake.runs() / dataset, lake.predictions(dataset), lake.models(dataset)]
    return [p for p in stages if p.is_dir()]


def stale_temporaries(lake: Lake, dataset: str) -> list[UPath]:
    """Hidden temporary folders and files (``.tmp-*``, ``.old-*``) under the dataset's folders.

    They are only stale when no run of the dataset is alive: call under its lock
    (``flows.guard.dataset_lock`` removes them when it is taken).
    """
    return sorted((p for top in dataset_folders(lake, dataset) for p in walk_temporaries(top)), key=str)


def remove_temporaries(paths: list[UPath]) -> int:
    """Remove what ``stale_temporaries`` found; returns the bytes freed."""
    freed = 0
    for p in paths:
        freed += tree_bytes(p)
        remove_quietly(p)
    return freed


# --- completion records -----------------------------------------------------------------------

def fingerprint(path: os.PathLike) -> str:
    """Identity of an input: its completion record's digest when it has one, else its files' stats.

    With a record: ``rec:<digest>+<content>``, the digest of the inputs and config that made the
    folder and the digest of the bytes it holds, so a folder rewritten with other contents (a forced
    recompute over a raw day changed in place) is a new input to everything downstream.
    For a folder without a record: sha256 over (relative path, size, mtime) of its files, like
    ``make``. For a file: the same over the one file.
    """
    path = lake_path(path)
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


def _sha256(path: UPath) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def checksums(folder: os.PathLike) -> dict[str, dict]:
    """``{relative path: {"bytes", "sha256"}}`` of every visible file under ``folder`` (files are read
    concurrently: on an object store each is a round trip)."""
    folder = lake_path(folder)
    sizes = visible_files(folder)
    with ThreadPoolExecutor(max_workers=1 if is_local(folder) else 16) as pool:
        digests = list(pool.map(lambda rel: _sha256(folder / rel), sizes))
    return {rel: {"bytes": size, "sha256": digest} for (rel, size), digest in zip(sizes.items(), digests)}


def write_record(folder: os.PathLike, record: dict) -> None:
    """Write the completion record, last: ``record`` plus the SHA-256 of every file the folder holds
    (``checksums``) and their digest (``content``)."""
    sums = checksums(folder)
    content = hashlib.sha256(json.dumps(sums, sort_keys=True).encode()).hexdigest()[:16]
    write_json_atomic(lake_path(folder) / COMPLETE, {**record, "checksums": sums, "content": content})


def verify_checksums(folder: os.PathLike, names: list[str] | None = None) -> list[str]:
    """Problems with the files a record vouches for (all, or ``names``): missing, resized, altered.

    Empty when they match, or when the record predates checksums (nothing to compare with).
    """
    folder = lake_path(folder)
    record = read_record(folder) or {}
    sums = record.get("checksums")
    if sums is None:
        return []
    problems = []
    for name in names or list(sums):
        path = folder / name
        want = sums.get(name)
        if want is None:
            problems.append(f"{path} is not in the completion record {folder / COMPLETE}")
        elif not path.is_file():
            problems.append(f"{path} is missing")
        elif (got := _sha256(path)) != want["sha256"]:
            problems.append(f"{path} has SHA-256 {got[:16]}…, but {want['sha256'][:16]}… was recorded "
                            f"when it was written ({want['bytes']:,} bytes; now {path.stat().st_size:,})")
    return problems


def read_record(folder: os.PathLike) -> dict | None:
    path = lake_path(folder) / COMPLETE
    try:
        text = path.read_text()
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        return json.loads(text)
    except ValueError as e:
        raise ValueError(f"completion record {path} is not valid JSON ({e}); remove the folder "
                         f"{path.parent} and re-run the stage that writes it") from None


def up_to_date(folder: os.PathLike, record: dict) -> bool:
    """True when ``folder`` is complete and was made from the same inputs, config and code."""
    old = read_record(folder)
    return old is not None and old.get("digest") == record["digest"]
