"""A lock per dataset, so two runs never write the same outputs at once.

Per dataset rather than per date: runs of different dates share raw and feature days of their
windows and the dataset's one feature manifest, so they must not interleave either.
``locks/<dataset>.lock`` in the lake, held with ``fcntl.flock``: the kernel releases it when the
holder exits, so a crashed run never leaves a stale lock. It works the same in ephemeral mode and
with a server (every worker flow run is its own process) on one machine or a shared POSIX file
system. A second run waits for the first, then finds its outputs up to date and skips. Within one
process the lock is re-entrant, so ``dea-daily`` holds it while its stage subflows take it again.
Every writer of a dataset's folders holds its lock (the flows and the ``dea`` stage commands), so
whoever takes it first removes the temporary folders that dead runs left behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
import time
from pathlib import Path
from typing import Iterator

from features.lake import Lake, remove_temporaries, stale_temporaries

log = logging.getLogger(__name__)

_held: dict[Path, int] = {}        # path -> depth, for re-entry within this process
_mutex = threading.Lock()


def _remove_leftovers(lake: Lake, dataset: str) -> None:
    """Temporary folders of runs that died (``kill -9``, a lost machine): with the lock held no run of
    the dataset is alive, so every ``.tmp-*`` / ``.old-*`` under its folders is stale."""
    stale = stale_temporaries(lake, dataset)
    if stale:
        freed = remove_temporaries(stale)
        log.warning("dataset %r: removed %d temporary folder(s)/file(s) left by dead runs (%.1f MB): %s", dataset,
                    len(stale), freed / 1e6, ", ".join(str(p.relative_to(lake.root)) for p in stale[:5])
                    + (" ..." if len(stale) > 5 else ""))


class LockTimeout(TimeoutError):
    """Another run held the day's lock for longer than the timeout."""


def lock_path(lake: Lake, dataset: str) -> Path:
    return lake.root / "locks" / f"{dataset}.lock"


@contextlib.contextmanager
def dataset_lock(lake: Lake, dataset: str, *, timeout: float = 3600.0, poll: float = 0.5) -> Iterator[Path]:
    """Hold the lock of ``dataset`` for the block; wait up to ``timeout`` seconds for it."""
    path = lock_path(lake, dataset)
    with _mutex:
        if path in _held:
            _held[path] += 1
            reentered = True
        else:
            reentered = False
    if reentered:
        try:
            yield path
        finally:
            with _mutex:
                _held[path] -= 1
        return

    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout
        waited = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not waited:
                    log.info("dataset %r is being processed by another run; waiting for %s", dataset, path)
                    waited = True
                if time.monotonic() > deadline:
                    raise LockTimeout(f"dataset {dataset!r}: another run has held {path} for "
                                      f"more than {timeout:.0f} s") from None
                time.sleep(poll)
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()}\n".encode())
        with _mutex:
            _held[path] = 1
        _remove_leftovers(lake, dataset)
        try:
            yield path
        finally:
            with _mutex:
                del _held[path]
    finally:
        os.close(fd)  # closing the descriptor releases the flock
