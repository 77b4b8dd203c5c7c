"""Platt scaling of the logit: the fit, the hook and buffers every model carries, and the trainer's use."""

import numpy as np
import pytest
import torch
from torch import nn

from dea_model import calibration
from dea_model import metrics, scoring, train as T
from dea_model.data import open_days
from dea_model.config import TrainConfig
from dea_model.models import build_model
from helpers import write_feature_days


def test_fit_recovers_a_planted_affine_map():
    rng = np.random.default_rng(0)
    z = rng.normal(0, 2, 200_000)
    y = rng.random(z.size) < 1 / (1 + np.exp(-(0.5 * z - 1.0)))      # truth: σ(0.5 z − 1)
    a, b = calibration.fit(z.astype(np.float32), y)
    assert a == pytest.approx(0.5, abs=0.02) and b == pytest.approx(-1.0, abs=0.02)


def test_fit_refuses_one_class_non_finite_logits_and_a_reversed_ranking():
    rng = np.random.default_rng(1)
    z = rng.normal(0, 1, 5000)
    assert calibration.fit(z, np.zeros(z.size)) is None
    assert calibration.fit(z, np.ones(z.size)) is None
    assert calibration.fit(z[:0], np.zeros(0)) is None
    assert calibration.fit(np.r_[z[:-1], np.inf], rng.random(z.size) < 0.5) is None
    assert calibration.fit(z, rng.random(z.size) < 1 / (1 + np.exp(2 * z))) is None     # anti-correlated


def test_every_model_applies_its_calibration_and_saves_it():
    torch.manual_seed(0)
    model = build_model("fm", 3, embedding_dim=4, embedding_rows=64).eval()
    ids = torch.randint(0, 10**6, (32, 3))
    raw = model(ids)
    assert {"logit_scale", "logit_shift"} <= set(model.state_dict())
    calibration.set_calibration(model, 0.25, -1.5)
    torch.testing.assert_close(model(ids), 0.25 * raw - 1.5)
    assert calibration.calibration_of(model) == (0.25, -1.5)

    reloaded = build_model("fm", 3, embedding_dim=4, embedding_rows=64).eval()
    reloaded.load_state_dict(model.state_dict())                    # the registry's path: buffers travel
    torch.testing.assert_close(reloaded(ids), model(ids), rtol=0, atol=0)


def test_weights_saved_before_calibration_load_as_uncalibrated():
    model = build_model("fm", 3, embedding_dim=4, embedding_rows=64).eval()
    old = {k: v for k, v in model.state_dict().items() if not k.startswith("logit_")}
    calibration.set_calibration(model, 3.0, 1.0)
    model.load_state_dict(old)                                       # strict: no missing-key error
    assert calibration.calibration_of(model) == (1.0, 0.0)


def test_install_on_any_module_is_idempotent():
    net = calibration.install(calibration.install(nn.Linear(2, 1)))
    assert len(net._forward_hooks) == 1
    calibration.set_calibration(net, 2.0, 0.5)
    x = torch.randn(4, 2)
    torch.testing.assert_close(net(x), 2 * (x @ net.weight.T + net.bias) + 0.5)


def test_trainer_calibrates_an_overconfident_model_without_changing_its_ranking(tmp_path):
    lake, dates = write_feature_days(tmp_path, days=3, rows=1500, seed=0)
    cfg = TrainConfig(model="fm", hparams={"embedding_dim": 32, "embedding_rows": 4001}, epochs=12, lr=0.2,
                      patience=12, batch_size=128, device="cpu", progress=False, plot=False, seed=7)
    r = T.train(cfg, lake, "toy", dates[:1], dates[1], tmp_path / "fm", test_date=dates[2])
    cal = r.metrics["calibration"]
    assert cal["fitted"] and 0 < cal["scale"] < 0.8                  # overfit logits are shrunk (0.57)
    assert r.metrics["valid"]["logloss"] < cal["valid_logloss_uncalibrated"] - 0.03       # 0.447 -> 0.387

    calibrated = scoring.evaluate(r.out_dir, lake, "toy", dates[2])
    assert calibrated["logloss"] == pytest.approx(r.metrics["test"]["logloss"], abs=1e-12)
    calibration.set_calibration(r.model, 1.0, 0.0)
    p, y, g = scoring.predict_batches(r.model, open_days(lake, "toy", [dates[2]]), torch.device("cpu"))
    raw = metrics.ctr_metrics(y, p, g)
    assert calibrated["logloss"] < raw["logloss"] - 0.03              # the unseen test day too: 0.501 -> 0.419
    assert calibrated["calibration"] == pytest.approx(1.0, abs=0.1)
    assert calibrated["auc"] == pytest.approx(raw["auc"], abs=1e-4)

    off = T.train(cfg.model_copy(update={"calibrate": False}), lake, "toy", dates[:1], dates[1], tmp_path / "raw")
    assert "calibration" not in off.metrics and calibration.calibration_of(off.model) == (1.0, 0.0)
    assert off.metrics["valid"]["logloss"] == pytest.approx(cal["valid_logloss_uncalibrated"], abs=1e-12)
