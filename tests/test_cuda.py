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

from dea_model import train as T
from dea_model.config import TrainConfig
from dea_model.layers.hashing import combo_hash
from dea_model.models import build_model
from features.hashing import combo_hash as combo_hash_numpy
from test_data import write_feature_days
from test_devices import HPARAMS
from test_models import N_FIELDS, ids_batch

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


@pytest.mark.parametrize("name", sorted(HPARAMS))
def test_every_model_on_the_device_computes_the_cpu_logits_and_gradients(name):
    torch.manual_seed(0)
    on_cpu = build_model(name, N_FIELDS, **HPARAMS[name])
    with torch.no_grad():                                      # wake zero-initialised parts (fusion W, …)
        for p in on_cpu.parameters():
            p.add_(0.1 * torch.randn_like(p))
    on_device = copy.deepcopy(on_cpu).to(DEVICE)
    ids = ids_batch(b=64)
    for model, x in ((on_cpu, ids), (on_device, ids.to(DEVICE))):
        model.train()
        model(x).square().mean().backward()
    torch.testing.assert_close(on_device.eval()(ids.to(DEVICE)).cpu(), on_cpu.eval()(ids), rtol=1e-4, atol=1e-5)
    for (key, p_cpu), p_dev in zip(on_cpu.named_parameters(), on_device.parameters()):
        if p_cpu.grad is not None:
            torch.testing.assert_close(p_dev.grad.cpu(), p_cpu.grad, rtol=1e-3, atol=1e-6, msg=key)


def test_training_on_the_device_reloads_and_scores_on_the_cpu(tmp_path):
    lake, dates = write_feature_days(tmp_path / "lake", days=3, rows=1500, seed=0)
    hparams = dict(embedding_dim=8, embedding_rows=512, codebook_size=4096, attention_dim=16, pair_hidden=16,
                   dnn_hidden=[64])
    cfg = TrainConfig(model="dea", hparams=hparams, epochs=4, batch_size=128, lr=0.01, device=DEVICE.type,
                      progress=False, plot=False, seed=7, min_id_count=1)     # vocabulary and calibration too
    r = T.train(cfg, lake, "toy", dates[:1], dates[1], tmp_path / "run", test_date=dates[2])
    assert r.metrics["test"]["auc"] > 0.7 and r.metrics["calibration"]["fitted"]
    p_device = T.predict(r.out_dir, lake, "toy", dates[2], device=DEVICE.type)
    p_cpu, y, _ = T.predict_batches(T.load_model(r.out_dir, torch.device("cpu"))[0],
                                    T.open_days(lake, "toy", [dates[2]]), torch.device("cpu"), bf16=False)
    assert np.abs(p_device - p_cpu).max() < 0.02                        # bf16 on CUDA against fp32 on the CPU
    assert roc_auc_score(y, p_cpu) == pytest.approx(r.metrics["test"]["auc"], abs=0.01)
