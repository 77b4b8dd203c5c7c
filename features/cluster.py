"""The Dask cluster the feature stage runs on: a LocalCluster by default, or an existing scheduler."""

from __future__ import annotations

import contextlib
import logging
import os
from typing import TYPE_CHECKING, Iterator

if TYPE_CHECKING:
    import distributed

log = logging.getLogger(__name__)


@contextlib.contextmanager
def dask_client(address: str | None = None, *, n_workers: int | None = None,
                threads_per_worker: int = 1, memory_limit: str = "auto") -> Iterator["distributed.Client"]:
    """A ``distributed.Client`` for the duration of the block; Dask calls inside use it.

    ``address`` (or ``DEA_DASK_ADDRESS``) connects to a running scheduler (``tcp://host:8786``);
    otherwise a ``LocalCluster`` of ``n_workers`` processes (default: the machine's cores, at most 4)
    is started and torn down on exit.
    """
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")  # before distributed's import, and for workers
    import dask
    from distributed import Client, LocalCluster

    quiet = logging.getLogger("distributed")
    if quiet.level < logging.WARNING and not log.isEnabledFor(logging.DEBUG):
        quiet.setLevel(logging.WARNING)  # Dask's lifecycle chatter; its errors still show

    address = address or os.environ.get("DEA_DASK_ADDRESS") or None
    if address:
        log.info("Dask: connecting to %s", address)
        with Client(address) as client:
            yield client
        return
    n_workers = n_workers or max(1, min(4, os.cpu_count() or 1))
    environ = dict(os.environ)
    with dask.config.set({UNTRIMMED: None}), LocalCluster(n_workers=n_workers, threads_per_worker=threads_per_worker, processes=True,
                      memory_limit=memory_limit, dashboard_address=None) as cluster, Client(cluster) as client:
        _restore(environ)  # the nannies set OMP_NUM_THREADS=1 & co. for their workers in *this* process too
        log.info("Dask: LocalCluster with %d worker(s) x %d thread(s)", n_workers, threads_per_worker)
        yield client


#: Dask's nannies set MALLOC_TRIM_THRESHOLD_ for their workers; setting it at all turns off glibc's
#: dynamic mmap threshold, so every large array is a fresh mmap and its page faults: the feature
#: transform ran 1.5x slower (benchmarks/results/features_throughput.json). Unset (None) for ours.
UNTRIMMED = "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_"


def _restore(environ: dict[str, str]) -> None:
    """Put back the environment a LocalCluster changed in the calling process: its ``OMP_NUM_THREADS=1``
    would otherwise make a torch imported later train on one thread."""
    for key in set(os.environ) - set(environ):
        del os.environ[key]
    os.environ.update(environ)
