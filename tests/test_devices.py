"""Every model off the CPU, without a GPU: a train step and an eval forward on the meta device.

Off the CPU the layers take the path CUDA takes (plain autograd ops instead of the CPU Functions,
``F.embedding``); on the meta device every op runs on shapes alone, so a host sync (``.item()``,
``.tolist()``, ``bool(tensor)``, ``.cpu()``) raises. Some ops accept a CPU tensor beside meta ones
where CUDA would fail (``index_select``, ``@``) or copy it to the GPU on every call (indexing with
a CPU index), so the step runs under :class:`CpuTensorGuard`, which fails on any op that mixes a
non-scalar CPU tensor into device work or copies one to the device. A model that passes keeps
every tensor of its forward and backward on its device and never syncs (the optimizer is not
covered: SparseAdam coalesces its gradients, a sync per step on CUDA).
"""

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from dea_model import calibration, vocabulary
from dea_model.models import available, build_model
from dea_model.optim import sparse_tables
from helpers import HPARAMS, N_FIELDS, SMALL as CORE

DEA_VARIANTS = [dict(symmetric=True), dict(gate_on="codeword"), dict(siamese=0), dict(diag="neg_inf"),
                dict(collapse=False), dict(combo=False, diag="neg_inf"), dict(fusion="gate"),
                dict(parallel_dnn=True), dict(codebook_size=64)]        # 16·30 pairs ≥ 64 rows: whole tables


class CpuTensorGuard(TorchDispatchMode):
    """Raises on an op that takes a CPU tensor with elements beside meta tensors, or moves one to meta."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        tensors = [t for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)]
        to_meta = str(kwargs.get("device", "")) == "meta"
        if to_meta or any(t.device.type == "meta" for t in tensors):
            cpu = [tuple(t.shape) for t in tensors if t.device.type == "cpu" and t.dim() > 0]
            if cpu:
                raise AssertionError(f"{func}: CPU tensors of shape {cpu} in device work")
        return func(*args, **kwargs)


def meta_train_and_eval(model: torch.nn.Module, sparse: bool = False) -> None:
    sparse_tables(model, sparse, batch_size=16)
    model.to("meta").train()
    ids = torch.empty(16, N_FIELDS, dtype=torch.int64, device="meta")
    model(ids).sum().backward()                       # warm-up: per-process caches may copy to the device once
    model.zero_grad(set_to_none=True)
    with CpuTensorGuard():
        logits = model(ids)
        assert logits.shape == (16,) and logits.device.type == "meta"
        logits.sum().backward()
        grads = [p.grad for p in model.parameters() if p.requires_grad]
        assert all(g is not None and g.device.type == "meta" for g in grads)
        assert model.eval()(ids).shape == (16,)


def test_the_guard_catches_cpu_tensors_in_device_work():
    table, index = torch.empty(10, 4, device="meta"), torch.tensor([1, 2])
    for op in (lambda: table.index_select(0, index), lambda: table[index], lambda: index.to("meta"),
               lambda: table @ torch.ones(4, 2)):
        with pytest.raises(AssertionError, match="CPU tensors"), CpuTensorGuard():
            op()
    with CpuTensorGuard():
        assert (table * torch.tensor(2.0)).device.type == "meta"          # a CPU scalar is fine on CUDA too


def test_every_registered_model_has_small_hparams_here():
    assert set(HPARAMS) == set(available())


@pytest.mark.parametrize("name", sorted(HPARAMS))
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
def test_every_model_trains_off_the_cpu_without_host_syncs(name, sparse):
    torch.manual_seed(0)
    meta_train_and_eval(build_model(name, N_FIELDS, **HPARAMS[name]), sparse)


@pytest.mark.parametrize("flags", DEA_VARIANTS, ids=lambda f: ",".join(f"{k}={v}" for k, v in f.items()))
def test_dea_variants_train_off_the_cpu(flags):
    torch.manual_seed(0)
    meta_train_and_eval(build_model("dea", N_FIELDS, **{**CORE["dea"], **flags}), sparse=True)


def test_the_vocabulary_and_calibration_hooks_run_off_the_cpu():
    torch.manual_seed(0)
    model = build_model("dea", N_FIELDS, **CORE["dea"])
    vocabulary.set_vocabulary(model, [np.arange(5) + 10 * f for f in range(N_FIELDS)])
    calibration.set_calibration(model, 0.5, -1.0)
    meta_train_and_eval(model)
    assert getattr(model, vocabulary.IDS).device.type == "meta"
