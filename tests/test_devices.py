"""Every model off the CPU, without a GPU: a train step and an eval forward on the meta device.

Off the CPU the layers take the path CUDA takes (plain autograd ops instead of the CPU Functions,
``F.embedding``); on the meta device every op runs on shapes alone, and a tensor that a forward
makes on the CPU, or a host sync (``.item()``, ``.tolist()``, ``bool(tensor)``), raises. A model
that passes here keeps every tensor on its device and does not stall a GPU once per step.
"""

import numpy as np
import pytest
import torch

from dea_model import calibration, vocabulary
from dea_model.models import available, build_model
from dea_model.optim import sparse_tables
from test_model_zoo import SMALL as ZOO
from test_models import N_FIELDS
from test_models import SMALL as CORE

HPARAMS = {**CORE, **ZOO,
           # MGDIN fixes its field densities from its first training batch, once, on the host: give them
           "mgdin": {**ZOO["mgdin"], "density": [float(i) for i in range(N_FIELDS)]}}
DEA_VARIANTS = [dict(symmetric=True), dict(gate_on="codeword"), dict(siamese=0), dict(diag="neg_inf"),
                dict(collapse=False), dict(combo=False, diag="neg_inf"), dict(fusion="gate"),
                dict(parallel_dnn=True), dict(codebook_size=64)]        # 16·30 pairs ≥ 64 rows: whole tables


def meta_train_and_eval(model: torch.nn.Module, sparse: bool = False) -> None:
    sparse_tables(model, sparse, batch_size=16)
    model.to("meta").train()
    ids = torch.empty(16, N_FIELDS, dtype=torch.int64, device="meta")
    logits = model(ids)
    assert logits.shape == (16,) and logits.device.type == "meta"
    logits.sum().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and g.device.type == "meta" for g in grads)
    assert model.eval()(ids).shape == (16,)


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
