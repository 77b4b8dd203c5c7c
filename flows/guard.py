"""A lock per dataset, so two runs never write the same outputs at once.

Per dataset rather than per date: runs of different dates share raw and feature days of their
windows and the dataset's one feature manifest, so they must not interleave either.
``locks/<dataset>.lock`` in the lake, held with ``features.storage.lock``: ``fcntl.flock`` on a
local lake (the kernel releases it when the holder exits, so a crashed run never leaves a stale
lock), a renewed lease object on an object store (a dead holder's lease expires). It works the same
in ephemeral mode and with a server (every worker flow run is its own process), on one machine, a
shared POSIX file system or an object store. A second run waits for the first, then finds its outputs up to date and skips. Within one
process the lock is re-entrant, so ``dea-daily`` holds it while its stage subflows take it again.
Every writer of a dataset's folders holds its lock (the flows and the ``dea`` stage commands), so
whoever takes it first removes the temporary folders that dead runs left behind.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import Iterator

from upath import UPath

from features.lake import Lake, remove_temporaries, stale_temporaries
from features.storage import LockTimeout, lock

__all__ = ["LockTimeout", "dataset_lock", "lock_path"]

log = logging.getLogger(__name__)

_held: dict[UPath, int] = {}        # path -> depth, for re-entry within this process
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


def lock_path(lake: Lake, dataset: str) -> UPath:
    return lake.root / "locks" / f"{dataset}.lock"


@contextlib.contextmanager
def dataset_lock(lake: Lake, dataset: str, *, timeout: float = 3600.0, poll: float = 0.5) -> Iterator[UPath]:
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

    def waiting(holder: str) -> None:
        log.info("dataset %r is being processed by another run (%s); waiting for %s", dataset, holder, path)

    with lock(path, timeout=timeout, poll=poll, on_wait=waiting, what=f"dataset {dataset!r}: another run"):
        with _mutex:
            _held[path] = 1
        try:
            _remove_leftovers(lake, dataset)
            yield path
        finally:
            with _mutex:
                del _held[path]
