"""The Dask client of a flow: the one its parent flow opened, else a new one from ``DaskParams``."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Iterator

from flows.params import DaskParams

if TYPE_CHECKING:
    import distributed


@contextlib.contextmanager
def flow_client(params: DaskParams) -> Iterator["distributed.Client"]:
    """Reuse the process's active Dask client (``dea-daily`` opens one for all its stages), or
    open one with ``features.cluster.dask_client`` (a LocalCluster, or ``params.address``)."""
    from distributed import default_client

    from features.cluster import dask_client

    try:
        client = default_client()
    except ValueError:  # no client yet: this flow owns one (opened outside the except block, so an
        client = None   # error inside the flow is not chained to "No clients found")
    if client is not None:
        yield client
        return
    with dask_client(params.address, n_workers=params.n_workers) as client:
        yield client
