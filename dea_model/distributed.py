"""Data-parallel training on several processes with ``torch.distributed``: gloo on CPU, NCCL on CUDA.

Two ways in:

* ``launch(fn, nproc, *args)`` runs ``fn(*args)`` on ``nproc`` ranks of this host through torch's
  elastic launcher (what ``torchrun`` runs): rendezvous on 127.0.0.1 at a port the OS picks, no
  restarts. A failing rank stops the others and raises ``RankFailedError`` naming it; SIGTERM or
  Ctrl-C in the parent stops every rank, then reaches the parent's own handler as if sent to it.
* A process started by ``torchrun`` (any number of hosts) is a rank already: ``ranks()`` joins the
  group from RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT in its environment.

Why N ranks train the single-process model. Every rank draws the same shuffled order (same seed)
and cuts the same global batches of ``batch_size`` rows; rank r trains on rows r, r+N, r+2N, … of
each (``Shard``). A rank's loss is the *sum* over its rows; ``Group.sync_grads`` sums the gradients
over the ranks and divides by the global batch's row count, so every rank steps with the gradient
of the global batch's mean loss: the one-process step, up to the order of float sums (and batch
statistics that layers take over a rank's share, e.g. DEA's collapse threshold τ). Row-sparse
gradients (embedding tables, small codebooks) are all-gathered as (indices, values) and stay
sparse, so ``SparseAdam`` steps only the rows some rank looked up.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import tempfile
import threading
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import torch
import torch.distributed as dist
from torch import nn

from dea_model.data import Batch, Batches

log = logging.getLogger(__name__)

#: the signals torch's launcher takes over while ranks run (restored afterwards)
_SIGNALS = ("SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT")


class RankFailedError(RuntimeError):
    """A rank of a data-parallel run failed; the message names the rank and its error."""


# --- the row split ------------------------------------------------------------------------------

class Shard:
    """Rank ``rank``'s rows of every global batch of ``batch_size`` rows of ``data``: rows rank,
    rank + world, rank + 2·world, … of each (a strided slice of the shuffled order).

    All ranks iterate ``data`` in the same seeded order, so across ranks every row is trained
    exactly once per epoch and every rank takes the same number of steps; when ``world`` does not
    divide ``batch_size`` the shares differ by one row (a share of the last, short batch may be
    empty). Each rank holds (or streams) all of ``data``.
    """

    def __init__(self, data: Batches, batch_size: int, rank: int, world: int):
        self.data, self.batch_size, self.rank, self.world = data, batch_size, rank, world
        self.fields = data.fields

    def _share(self, rows: int) -> int:
        return len(range(self.rank, rows, self.world))

    def __len__(self) -> int:
        """This rank's rows per epoch (every global batch is full but the last)."""
        full, rest = divmod(len(self.data), self.batch_size)
        return full * self._share(self.batch_size) + self._share(rest)

    def batches(self, batch_size: int, *, shuffle: bool = False,
                generator: torch.Generator | None = None) -> Iterator[Batch]:
        if batch_size != self.batch_size:
            raise ValueError(f"this shard cuts global batches of {self.batch_size} rows, not {batch_size}")
        for batch in self.data.batches(batch_size, shuffle=shuffle, generator=generator):
            yield Batch(*(t[self.rank::self.world].contiguous() for t in batch))


# --- the collectives a training step needs --------------------------------------------------------

@dataclass
class Group:
    """This process's place in a data-parallel run: its rank, the number of ranks, its device."""

    rank: int
    world: int
    device: torch.device

    @property
    def main(self) -> bool:
        """Rank 0: the one that validates, early-stops and writes."""
        return self.rank == 0

    def shard(self, data: Batches, batch_size: int) -> Shard:
        return Shard(data, batch_size, self.rank, self.world)

    def sync_grads(self, optimizer, rows: int) -> None:
        """Gradients of the global batch's mean loss on every rank, from each rank's gradient of its
        *summed* loss over its ``rows`` rows: summed over the ranks, divided by the global rows.

        A parameter no rank gave a gradient keeps none (Adam skips it, as in one process); one that
        only other ranks did gets theirs. Row-sparse gradients are gathered and stay sparse.
        """
        params = [p for g in optimizer.param_groups for p in g["params"]]
        sparse = {id(p) for p in _sparse_params(optimizer)}
        meta = torch.tensor([p.grad is not None for p in params] + [rows], dtype=torch.float64, device=self.device)
        dist.all_reduce(meta)                                     # one sync: which grads exist, global rows
        *used, total = meta.tolist()
        live = [p for p, u in zip(params, used) if u]
        dense = [p for p in live if id(p) not in sparse]
        for p in dense:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        if dense:
            flat = torch.cat([p.grad.reshape(-1) for p in dense])
            dist.all_reduce(flat)
            for p, g in zip(dense, flat.div_(total).split([p.numel() for p in dense])):
                p.grad.copy_(g.view_as(p))
        for p in live:
            if id(p) in sparse:
                p.grad = self._gather_sparse(p.grad, p, total)

    def _gather_sparse(self, grad: torch.Tensor | None, p: nn.Parameter, total: float) -> torch.Tensor:
        """Every rank's row-sparse gradient of ``p`` in one sparse tensor (duplicate rows are summed by
        the optimizer's coalesce), divided by ``total``. all_gather needs equal sizes: padded."""
        if grad is None:
            grad = torch.sparse_coo_tensor(torch.empty(1, 0, dtype=torch.long, device=p.device),
                                           p.new_empty(0, *p.shape[1:]), p.shape)
        grad = grad.coalesce()
        idx, val = grad.indices(), grad.values()
        sizes = [torch.zeros(1, dtype=torch.long, device=self.device) for _ in range(self.world)]
        dist.all_gather(sizes, torch.tensor([idx.shape[1]], device=self.device))
        sizes = [int(s) for s in sizes]
        pad = max(sizes) - idx.shape[1]
        idx = torch.cat([idx, idx.new_zeros(idx.shape[0], pad)], 1)
        val = torch.cat([val, val.new_zeros(pad, *val.shape[1:])])
        idx_all, val_all = [torch.empty_like(idx) for _ in sizes], [torch.empty_like(val) for _ in sizes]
        dist.all_gather(idx_all, idx)
        dist.all_gather(val_all, val)
        indices = torch.cat([i[:, :n] for i, n in zip(idx_all, sizes)], 1)
        values = torch.cat([v[:n] for v, n in zip(val_all, sizes)]).div_(total)
        return torch.sparse_coo_tensor(indices, values, grad.shape, check_invariants=False)

    def broadcast_state(self, model: nn.Module) -> None:
        """Rank 0's parameters and buffers on every rank: replicas stay one model even where a layer
        keeps statistics of its own rows (DEA's running τ, MGDIN's first-batch densities)."""
        for t in model.state_dict().values():
            if isinstance(t, torch.Tensor):
                dist.broadcast(t.view(torch.uint8) if t.dtype == torch.bool else t, src=0)

    def decide(self, flag: bool) -> bool:
        """Rank 0's ``flag`` on every rank (an early stop is taken by all ranks or none)."""
        t = torch.tensor([int(flag)], device=self.device)
        dist.broadcast(t, src=0)
        return bool(t.item())

    def mean(self, x: float) -> float:
        """The mean of ``x`` over the ranks."""
        t = torch.tensor([x], dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return t.item() / self.world


def _sparse_params(optimizer) -> list[nn.Parameter]:
    """The parameters ``optim.DenseSparseAdam`` steps with SparseAdam (row-sparse gradients)."""
    sparse = getattr(optimizer, "sparse", None)
    return [p for g in sparse.param_groups for p in g["params"]] if sparse is not None else []


# --- joining a group --------------------------------------------------------------------------------

def in_rank() -> bool:
    """Whether a launcher (``launch``, torchrun) started this process as a rank."""
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ


def env_rank() -> int:
    """This process's rank from the environment (0 when no launcher started it)."""
    return int(os.environ.get("RANK", "0"))


def _rank_device(name: str) -> torch.device:
    """``auto``/``cuda`` -> this rank's GPU (cuda:LOCAL_RANK) when there are GPUs, else the CPU."""
    if name == "cpu" or (name == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if local >= torch.cuda.device_count():
        raise ValueError(f"rank with LOCAL_RANK {local} has no GPU of its own ({torch.cuda.device_count()} visible): "
                         f"start at most one rank per GPU on a host, or use device=cpu")
    torch.cuda.set_device(local)
    return torch.device("cuda", local)


@contextlib.contextmanager
def ranks(nproc: int, device: str = "auto") -> Iterator[Group | None]:
    """This process's ``Group`` while in the block; None when it trains alone (no launcher, or a
    world of 1). Joins the process group from the environment (``env://``) unless the caller did,
    and leaves what it joined at exit. ``nproc`` (the config's) must be 1 or the world size."""
    world = int(os.environ.get("WORLD_SIZE", "1")) if in_rank() else 1
    if nproc not in (1, world):
        raise ValueError(f"nproc={nproc}, but this process is a rank of a world of {world} (WORLD_SIZE): under "
                         f"torchrun leave nproc at 1 or set it to {world}")
    if world == 1:
        yield None
        return
    dev = _rank_device(device)
    joined = not dist.is_initialized()
    if joined:
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo", device_id=dev if dev.type == "cuda" else None)
    try:
        yield Group(dist.get_rank(), dist.get_world_size(), dev)
    finally:
        if joined:
            dist.destroy_process_group()


# --- launching ranks on this host ---------------------------------------------------------------------

def launch(fn: Callable[..., Any], nproc: int, *args: Any) -> Any:
    """``fn(*args)`` on ``nproc`` ranks of this host (each a fresh process); returns rank 0's result.

    torch's elastic launcher starts them (rendezvous on 127.0.0.1, the port chosen by the OS, no
    restarts) and stops them all when one fails (``RankFailedError``) or this process gets SIGTERM
    or Ctrl-C (re-delivered here afterwards). Each rank gets cores/nproc torch threads unless
    OMP_NUM_THREADS is set, and dies with this process (PR_SET_PDEATHSIG, Linux).
    """
    from torch.distributed.elastic.multiprocessing.api import DefaultLogsSpecs, SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    with tempfile.TemporaryDirectory(prefix="dea-ranks-") as logs, _signals_kept() as previous:
        config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=f"dea-{uuid.uuid4().hex[:12]}",
                              rdzv_backend="c10d", rdzv_endpoint="127.0.0.1:0", local_addr="127.0.0.1",
                              max_restarts=0, logs_specs=DefaultLogsSpecs(log_dir=logs))
        try:
            return elastic_launch(config, _rank_main)(fn, nproc, *args)[0]
        except ChildFailedError as e:
            raise RankFailedError(_failure(e, nproc)) from None
        except SignalException as e:
            stopped = e
    # the ranks are stopped, their logs removed and the handlers restored: now the signal's own effect
    if previous.get(stopped.sigval) is not None:
        signal.raise_signal(stopped.sigval)
    raise stopped


def _failure(e, nproc: int) -> str:
    """One paragraph from the launcher's ``ChildFailedError``: which rank failed, with what."""
    rank, failure = e.get_first_failure()
    message = failure.message.get("message", "") if isinstance(failure.message, dict) else failure.message
    lines = [line for line in str(message).splitlines() if line.strip()]
    return (f"data-parallel training failed on rank {rank} of {nproc} (exit code {failure.exitcode}): "
            f"{lines[-1].strip() if lines else 'no message'}; the other ranks were stopped. The rank's "
            f"traceback is in the log above; fix that error, or train with nproc=1 to see it in this process")


@contextlib.contextmanager
def _signals_kept() -> Iterator[dict]:
    """The handlers of ``_SIGNALS`` (torch's launcher replaces them for good) back after the block."""
    main = threading.current_thread() is threading.main_thread()      # elsewhere torch sets none
    kept = {getattr(signal, name): signal.getsignal(getattr(signal, name)) for name in _SIGNALS} if main else {}
    env = os.environ.get("TORCHELASTIC_SIGNALS_TO_HANDLE")
    try:
        yield kept
    finally:
        for sig, handler in kept.items():
            if handler is not None:
                signal.signal(sig, handler)
        if env is None:
            os.environ.pop("TORCHELASTIC_SIGNALS_TO_HANDLE", None)


def _rank_main(fn: Callable[..., Any], nproc: int, *args: Any) -> Any:
    """A launched rank: dies with its parent, takes its share of the cores, runs ``fn``."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)    # PR_SET_PDEATHSIG
    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(max(1, len(os.sched_getaffinity(0)) // nproc))
    return fn(*args)
