"""Where the lake lives: a local folder or any fsspec URL (``s3://bucket/prefix``, ``gs://``, ``file://``).

Lake paths are ``upath.UPath`` objects: the ``pathlib`` API over fsspec, so a path on S3 reads,
globs and opens like a local one, and pickles with its storage options to Dask workers on other
hosts. This module owns the operations whose meaning differs between a POSIX folder and an object
store:

- ``atomic_dir``: build a folder under a unique hidden temporary name next to its final place, then
  publish it. Locally that is a rename. An object store has no rename: the temporary prefix is
  copied to the final one server-side, the completion record (``_COMPLETE.json``) last, after the
  old folder's record and files were removed. Readers trust only folders whose record exists, so
  they never read half a folder; tools that read the table directly skip ``.``/``_`` names.
- ``staged_dir``: the same, for writers that can only write local files (GX Data Docs, matplotlib,
  ``torch.save``): they write a local scratch folder that is uploaded to the temporary prefix.
- ``write_json_atomic``: a rename locally; one PUT on an object store (atomic by itself).
- Parquet through pyarrow with the path's filesystem (``read_table``, ``parquet_file``,
  ``write_table``); credentials and endpoint come from the usual environment (``AWS_*``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.dataset as pds
import pyarrow.parquet as pq
from upath import UPath

log = logging.getLogger(__name__)

COMPLETE = "_COMPLETE.json"
TEMPORARY_PREFIXES = (".tmp-", ".old-")     # atomic_dir / write_json_atomic / remove_tree / registry
LOCAL = ("", "file", "local")


def lake_path(location: str | os.PathLike) -> UPath:
    """A lake path from a local path or a URL; local paths are made absolute, ``file://`` is local.

    Object stores list their folders fresh every time (no fsspec listings cache): the lake is
    written by other processes (Dask workers, other runs) whose objects a cached listing would hide.
    """
    if isinstance(location, UPath) and not is_local(location):
        return location
    text = os.fspath(location) if not isinstance(location, str) else location
    if "://" not in text or text.startswith("file://"):
        return UPath(Path(text.removeprefix("file://")).expanduser().resolve())
    return UPath(text, use_listings_cache=False)


def is_local(path: os.PathLike | str) -> bool:
    if isinstance(path, UPath):
        return path.protocol in LOCAL
    text = os.fspath(path)
    return "://" not in text or text.startswith("file://")


def _fs_path(path: UPath) -> tuple[str, Any]:
    """``(path, filesystem)`` for pyarrow: the native local filesystem, else the fsspec one."""
    return (os.fspath(path), None) if is_local(path) else (path.path, path.fs)


def read_table(path: UPath, **kwargs) -> pa.Table:
    source, fs = _fs_path(path)
    return pq.read_table(source, filesystem=fs, **kwargs)


def parquet_file(path: UPath, **kwargs) -> pq.ParquetFile:
    source, fs = _fs_path(path)
    return pq.ParquetFile(source, filesystem=fs, **kwargs)


def dataset(paths: list[UPath]) -> "pds.Dataset":
    """One Arrow dataset over Parquet files of one lake (``to_table(columns=...)`` reads them whole)."""
    if not paths or is_local(paths[0]):
        return pds.dataset([os.fspath(p) for p in paths], format="parquet")
    return pds.dataset([p.path for p in paths], format="parquet", filesystem=paths[0].fs)


def write_table(table: pa.Table, path: UPath, **kwargs) -> None:
    target, fs = _fs_path(path)
    pq.write_table(table, target, filesystem=fs, **kwargs)


def _sibling(final: UPath, kind: str) -> UPath:
    return final.with_name(f"{kind}{final.name}-{uuid.uuid4().hex[:8]}")


# --- atomic folders ------------------------------------------------------------------------------

@contextlib.contextmanager
def atomic_dir(final: os.PathLike) -> Iterator[UPath]:
    """Yield a temporary sibling folder; on success it replaces ``final``, on error it is removed.

    Readers never see a half-written folder: they trust only folders holding ``_COMPLETE.json``,
    which the caller writes last (``features.lake.write_record``); see the module docstring for how
    the swap is done locally and on an object store.
    """
    final = lake_path(final)
    tmp = _sibling(final, ".tmp-")
    tmp.mkdir(parents=True)
    try:
        yield tmp
    except BaseException:
        _remove_while_written(tmp)
        raise
    publish(tmp, final)


@contextlib.contextmanager
def staged_dir(final: os.PathLike) -> Iterator[Path]:
    """``atomic_dir`` for writers of local files: a local folder, uploaded and published on success."""
    final = lake_path(final)
    if is_local(final):
        with atomic_dir(final) as tmp:
            yield tmp
        return
    with tempfile.TemporaryDirectory(prefix="dea-stage-") as scratch:
        yield Path(scratch)
        tmp = _sibling(final, ".tmp-")
        try:
            tmp.fs.put(scratch.rstrip("/") + "/", tmp.path, recursive=True)
        except BaseException:
            _remove_while_written(tmp)
            raise
        publish(tmp, final)


def publish(tmp: UPath, final: UPath, *, replace: bool = True) -> None:
    """Replace ``final`` by the complete temporary folder ``tmp`` (``atomic_dir``'s commit); with
    ``replace=False`` on an object store, add to ``final`` (``claim``'s folder) without removing it."""
    if is_local(final):
        old = None
        if final.exists():
            old = _sibling(final, ".old-")
            final.rename(old)
        tmp.rename(final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return
    fs = final.fs
    if replace and fs.exists(final.path):
        remove_tree(final)
    record = f"{tmp.path}/{COMPLETE}"
    sources = [f for f in fs.find(tmp.path) if f != record]
    targets = [final.path + f[len(tmp.path):] for f in sources]
    if sources:
        fs.copy(sources, targets)                  # server-side copies, concurrently
    if fs.exists(record):
        fs.copy(record, f"{final.path}/{COMPLETE}")   # the record last
    fs.rm(tmp.path, recursive=True)


def claim(tmp: UPath, final: UPath) -> bool:
    """Publish the folder ``tmp`` as ``final`` only if nobody has taken that name (a registry version
    number): a rename that fails on a non-empty target locally, a conditional create of
    ``final/.claim`` on an object store. False when the name is taken (nothing was changed)."""
    if is_local(final):
        try:
            os.rename(tmp, final)
            return True
        except OSError:
            return False
    if not create_exclusive(final / ".claim", ""):
        return False
    publish(tmp, final, replace=False)
    return True


def copy_tree(src: UPath, dst: UPath) -> None:
    """Copy the visible files of folder ``src`` (no ``.``-names, no completion record) into ``dst``:
    hard links where the filesystem allows (no second copy of the bytes), server-side copies on an
    object store."""
    src, dst = lake_path(src), lake_path(dst)
    if is_local(src) and is_local(dst):
        shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".*", COMPLETE), copy_function=_link_or_copy,
                        dirs_exist_ok=True)
        return
    for rel in visible_files(src):
        copy_file(src / rel, dst / rel)


def visible_files(folder: UPath) -> dict[str, int]:
    """``{relative path: bytes}`` of the files under ``folder`` that a completion record vouches for
    (no ``.``-names, not the record itself), from one listing."""
    base = folder.path.rstrip("/") + "/"
    found = {f[len(base):]: info["size"] for f, info in folder.fs.find(folder.path, detail=True).items()}
    return {rel: size for rel, size in sorted(found.items())
            if rel != COMPLETE and not any(part.startswith(".") for part in rel.split("/"))}


def _link_or_copy(src: str, dst: str) -> str:
    try:
        os.link(src, dst)
    except OSError:                      # another filesystem, or one without hard links
        shutil.copy2(src, dst)
    return dst


def copy_file(src: os.PathLike, dst: os.PathLike) -> None:
    """Copy one file between any two places (local, or a lake URL)."""
    src, dst = lake_path(src), lake_path(dst)
    if is_local(src) and is_local(dst):
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
    elif is_local(src):
        dst.fs.put_file(os.fspath(src), dst.path)
    elif is_local(dst):
        src.fs.get_file(src.path, os.fspath(dst))
    elif src.protocol == dst.protocol:
        src.fs.copy(src.path, dst.path)
    else:
        with src.open("rb") as r, dst.open("wb") as w:
            shutil.copyfileobj(r, w)


def _remove_while_written(folder: UPath, timeout: float = 10.0) -> None:
    """Remove a failed write's temporary folder, again while writers still in flight add to it (the
    other Dask tasks of a compute that raised finish their file), until it is gone."""
    deadline = time.monotonic() + timeout
    remove_quietly(folder)
    while folder.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
        remove_quietly(folder)


def remove_quietly(path: UPath) -> None:
    """Remove a folder or file, gone already is fine."""
    if is_local(path):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.fs.rm(path.path, recursive=True)


def remove_tree(path: os.PathLike) -> None:
    """Remove a folder (or a file) crash-safely. Locally it is renamed to a hidden ``.old-*`` sibling
    first, so a crash mid-way leaves a temporary the next run of the dataset removes, never a
    half-deleted folder; on an object store its completion record goes first, so a crash mid-way
    leaves an incomplete folder that readers ignore and the next write replaces."""
    path = lake_path(path)
    if not is_local(path):
        record = f"{path.path}/{COMPLETE}"
        if path.fs.isdir(path.path) and path.fs.exists(record):
            path.fs.rm(record)
        path.fs.rm(path.path, recursive=True)
        return
    hidden = _sibling(path, ".old-")
    os.rename(path, hidden)
    if hidden.is_dir() and not hidden.is_symlink():
        shutil.rmtree(hidden)
    else:
        hidden.unlink()


def link_tree(src: UPath, dst: UPath) -> None:
    """Make ``dst`` show the folder ``src``: a symlink locally, a server-side copy on an object store."""
    if is_local(dst):
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(src, dst, target_is_directory=True)
    else:
        dst.fs.copy(src.path, dst.path, recursive=True)


def write_json_atomic(path: os.PathLike, obj: Any) -> None:
    """Write JSON to ``path``: through a temporary file and ``os.replace`` locally, as one PUT on an
    object store (both atomic: a reader sees the old or the new document, never a part)."""
    path = lake_path(path)
    text = json.dumps(obj, indent=2, sort_keys=True, default=str)
    if not is_local(path):
        path.write_text(text)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _sibling(path, ".tmp-")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except BaseException:                      # an error, Ctrl-C or SIGTERM mid-write: no temporary left
        tmp.unlink(missing_ok=True)
        raise


def walk_temporaries(top: UPath) -> list[UPath]:
    """Hidden temporary folders and files (``.tmp-*``, ``.old-*``) under ``top``, not looking inside them."""
    found = []
    base = top.path.rstrip("/")
    for folder, dirs, files in top.fs.walk(top.path):
        for name in [*dirs, *files]:
            if name.startswith(TEMPORARY_PREFIXES):
                found.append(top.joinpath(*f"{folder}/{name}"[len(base) + 1:].split("/")))
        dirs[:] = [d for d in dirs if not d.startswith(TEMPORARY_PREFIXES)]   # not into them
    return sorted(found, key=str)


def tree_bytes(path: UPath) -> int:
    """Bytes of the files under ``path`` (or of the file), symlinks not followed."""
    if is_local(path):
        if path.is_symlink() or path.is_file():
            return path.lstat().st_size
        return sum(f.lstat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())
    return sum(path.fs.du(path.path, total=False).values()) if path.exists() else 0


# --- locks ---------------------------------------------------------------------------------------

class LockTimeout(TimeoutError):
    """Another holder kept the lock for longer than the timeout."""


LEASE_SECONDS = 60.0     # an object-store lock not renewed for this long belongs to a dead holder


def create_exclusive(path: UPath, body: str) -> bool:
    """Create ``path`` holding ``body`` unless it exists (a conditional PUT on S3); True if created."""
    try:
        with path.open("x" if is_local(path) else "xb") as f:
            f.write(body if is_local(path) else body.encode())
        return True
    except FileExistsError:
        return False


@contextlib.contextmanager
def lock(path: os.PathLike, *, timeout: float = 3600.0, poll: float = 0.5, lease: float = LEASE_SECONDS,
         on_wait=None, what: str = "another holder") -> Iterator[UPath]:
    """Hold the exclusive lock ``path`` for the block, waiting up to ``timeout`` seconds for it.

    Local: ``fcntl.flock`` on the file (the kernel releases it when the holder dies). Object store:
    a lease object ``{owner, expires}`` created with a conditional PUT and renewed every
    ``lease / 3`` s by a thread; a waiter takes over a lease that expired (its holder died without
    releasing it). Hosts sharing an object-store lake need clocks in sync to well under ``lease``.
    ``on_wait(holder)`` is called once when the lock is busy; ``what`` names the holder in a timeout.
    """
    path = lake_path(path)
    acquire = _flock if is_local(path) else lease_lock
    with acquire(path, timeout, poll, lease, on_wait or (lambda holder: None), what):
        yield path


@contextlib.contextmanager
def _flock(path: UPath, timeout: float, poll: float, lease: float, on_wait, what: str) -> Iterator[None]:
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        _wait(lambda: _try_flock(fcntl, fd), path, timeout, poll, on_wait, what, lambda: f"the process in {path}")
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()}\n".encode())
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the flock


def _try_flock(fcntl, fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def _wait(try_once, path: UPath, timeout: float, poll: float, on_wait, what: str, holder) -> None:
    deadline = time.monotonic() + timeout
    waited = False
    while not try_once():
        if not waited:
            on_wait(holder())
            waited = True
        if time.monotonic() > deadline:
            raise LockTimeout(f"{what} has held {path} ({holder()}) for more than {timeout:.0f} s") from None
        time.sleep(poll)


@contextlib.contextmanager
def lease_lock(path: UPath, timeout: float, poll: float, lease: float, on_wait, what: str) -> Iterator[None]:
    """``lock`` on an object store (works on any filesystem with exclusive create): see ``lock``."""
    import socket
    import threading

    owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    body = lambda: json.dumps({"owner": owner, "expires": time.time() + lease})   # noqa: E731
    _wait(lambda: create_exclusive(path, body()) or _break_expired(path), path, timeout, poll, on_wait,
          what, lambda: (_read_lease(path) or {}).get("owner", "a holder that just left"))
    stop = threading.Event()
    renewer = threading.Thread(target=_renew, args=(path, owner, body, lease / 3, stop), daemon=True,
                               name=f"lease {path.name}")
    renewer.start()
    try:
        yield
    finally:
        stop.set()
        renewer.join()
        if (_read_lease(path) or {}).get("owner") == owner:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def _read_lease(path: UPath) -> dict | None:
    """The lease document, or None when there is none (one GET: no ETag precondition that a
    concurrent renewal would break)."""
    try:
        return json.loads(path.fs.cat_file(path.path))
    except (FileNotFoundError, ValueError):
        return None


def _break_expired(path: UPath) -> bool:
    """Remove a lease whose holder stopped renewing it (never True: the caller retries the create)."""
    held = _read_lease(path)
    if held is not None and held.get("expires", 0) < time.time() and _read_lease(path) == held:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    return False


def _renew(path: UPath, owner: str, body, every: float, stop) -> None:
    while not stop.wait(every):
        try:
            if (_read_lease(path) or {}).get("owner") != owner:
                return                   # taken over after an expiry: nothing left to renew
            path.write_text(body())
        except OSError as e:             # a store hiccup: the lease has two more periods to be renewed
            log.warning("could not renew the lock lease %s (%s); retrying in %.0f s", path, e, every)
