"""On a GPU: the CUDA path gives the CPU's results. Skipped without a GPU (CI has none).

``DEA_TEST_DEVICE=cpu`` runs these against the CPU itself: that checks the tests, not a GPU.
Without a GPU, tests/test_devices.py still runs every model's CUDA code path on the meta device.
"""

import copy
import os

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from dea_model import scoring, train as T
from dea_model.data import open_days
from dea_model.config import TrainConfig
from dea_model.layers import CollapseAvoiding
from dea_model.layers.hashing import combo_hash
from dea_model.models import build_model
from features.hashing import combo_hash as combo_hash_numpy
from helpers import HPARAMS, N_FIELDS, ids_batch, write_feature_days

DEVICE = torch.device(os.environ.get("DEA_TEST_DEVICE", "cuda"))
pytestmark = pytest.mark.skipif(DEVICE.type == "cuda" and not torch.cuda.is_available(), reason="no GPU")


@pytest.fixture(autouse=True)
def exact_matmuls():
    """fp32 products in full precision on the GPU (no TF32), as on the CPU."""
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    yield
    torch.set_float32_matmul_precision(before)


def test_combo_hash_on_the_device_equals_the_numpy_spec():
    rng = np.random.default_rng(0)
    a = rng.integers(-(2**63), 2**63 - 1, 100_000, dtype=np.int64, endpoint=True)
    b = rng.integers(-(2**63), 2**63 - 1, 100_000, dtype=np.int64, endpoint=True)
    a[:5], b[:5] = [0, -1, 1, -(2**63), 2**63 - 1], [2**63 - 1, -(2**63), 1, -1, 0]
    for seed in (0, 7, 2**31, 2**32 - 1):
        got = combo_hash(torch.from_numpy(a).to(DEVICE), torch.from_numpy(b).to(DEVICE), seed)
        assert got.device.type == DEVICE.type
        np.testing.assert_array_equal(got.cpu().numpy(), combo_hash_numpy(a, b, seed).astype(np.int64))


def near_threshold(model: torch.nn.Module) -> list[float]:
    """Hooks that note, per collapse mask, the smallest relative gap | |S| − τ | / τ off the diagonal:
    a score that close to τ could flip its mask on fp32 rounding alone."""
    gaps = []

    def note(module, args, keep):
        mag = args[0].detach().abs()
        tau = mag.sum((1, 2, 3)) - mag.diagonal(dim1=-2, dim2=-1).sum((1, 2))
        tau = tau / (mag.shape[1] * mag.shape[2] * (mag.shape[2] - 1))
        if not module.training and module.running:
            tau = module.tau_mean
        tau = (module.multiplier * tau).view(-1, 1, 1, 1)
        gap = ((mag - tau).abs() / tau).diagonal_scatter(torch.full_like(mag.diagonal(dim1=-2, dim2=-1), 1.0),
                                                         dim1=-2, dim2=-1)
        gaps.append(float(gap.min()))

    for m in model.modules():
        if isinstance(m, CollapseAvoiding):
            m.register_forward_hook(note)
    return gaps


CASES = {**HPARAMS, "dea:whole_tables": {**HPARAMS["dea"], "codebook_size": 64},    # B·P ≥ s, as at scale
         "mgdin:measured": {k: v for k, v in HPARAMS["mgdin"].items() if k != "density"}}


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_model_on_the_device_computes_the_cpu_logits_and_gradients(case):
    torch.manual_seed(3)           # seed 3: no DEA score within 1e-4 of its τ (asserted below; seeds 0 and 2 have some)
    on_cpu = build_model(case.split(":")[0], N_FIELDS, **CASES[case])
    with torch.no_grad():                          # wake the zero-initialised parts (fusion W, g's output, …)
        for p in on_cpu.parameters():
            p.add_(0.3 * torch.randn_like(p))
    on_device = copy.deepcopy(on_cpu).to(DEVICE)
    gaps = near_threshold(on_cpu)
    ids = ids_batch(b=64, seed=3)
    for model, x in ((on_cpu, ids), (on_device, ids.to(DEVICE))):
        model.train()
        model(x).square().mean().backward()
    torch.testing.assert_close(on_device.eval()(ids.to(DEVICE)).cpu(), on_cpu.eval()(ids), rtol=1e-4, atol=1e-5)
    assert all(gap > 1e-4 for gap in gaps), f"a collapse mask entry within {min(gaps):.1e} of τ"
    for (key, p_cpu), p_dev in zip(on_cpu.named_parameters(), on_device.parameters()):
        if p_cpu.grad is not None:
            scale = float(p_cpu.grad.abs().max())
            torch.testing.assert_close(p_dev.grad.cpu(), p_cpu.grad, rtol=1e-3, atol=1e-5 * scale + 1e-12, msg=key)


def test_training_on_the_device_reloads_and_scores_on_the_cpu(tmp_path):
    lake, dates = write_feature_days(tmp_path / "lake", days=3, rows=1500, seed=0)
    hparams = dict(embedding_dim=8, embedding_rows=512, codebook_size=4096, attention_dim=16, pair_hidden=16,
                   dnn_hidden=[64])
    cfg = TrainConfig(model="dea", hparams=hparams, epochs=4, batch_size=128, lr=0.01, device=DEVICE.type,
                      progress=False, plot=False, seed=7, min_id_count=1)     # vocabulary and calibration too
    r = T.train(cfg, lake, "toy", dates[:1], dates[1], tmp_path / "run", test_date=dates[2])
    assert r.metrics["test"]["auc"] > 0.7 and r.metrics["calibration"]["fitted"]
    p_device = scoring.predict(r.out_dir, lake, "toy", dates[2], device=DEVICE.type)
    p_cpu, y, _ = scoring.predict_batches(scoring.load_model(r.out_dir, torch.device("cpu"))[0],
                                    open_days(lake, "toy", [dates[2]]), torch.device("cpu"), bf16=False)
    assert np.abs(p_device - p_cpu).max() < 0.02                        # bf16 on CUDA against fp32 on the CPU
    assert roc_auc_score(y, p_cpu) == pytest.approx(r.metrics["test"]["auc"], abs=0.01)
