import json
import platform
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from sklearn.metrics import roc_auc_score
from torch import nn

from dea_model import device, models, runs, scoring, train as T
from dea_model.data import open_days
from dea_model.config import TrainConfig
from dea_model.models import available
from dea_model.optim import make_optimizer, param_groups
from features.lake import write_json_atomic
from features.spec import load_spec
from helpers import write_feature_days


class Tiny(nn.Module):
    """Hashed embeddings -> MLP: enough to learn the fixture's (user, item) pair signal."""

    def __init__(self, n_fields, dim=8, buckets=211, hidden=32, nan_at_call=None):
        super().__init__()
        self.hparams = dict(dim=dim, buckets=buckets, hidden=hidden)
        self.buckets, self.nan_at_call, self.calls = buckets, nan_at_call, 0
        self.embedding = nn.Embedding(buckets, dim)
        self.codebook = nn.Parameter(torch.zeros(3, dim))
        self.mlp = nn.Sequential(nn.Linear(n_fields * dim, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, ids):                                   # ids [B, n] -> logits [B]
        e = self.embedding(torch.remainder(ids, self.buckets)) + self.codebook.sum()
        out = self.mlp(e.flatten(1)).squeeze(-1)
        self.calls += self.training
        if self.nan_at_call is not None and self.calls == self.nan_at_call:
            out = out * float("nan")
        return out


REAL_BUILD = models.build_model


@pytest.fixture(autouse=True, scope="module")
def tiny_registry():
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(models, "build_model", lambda name, n_fields, bags=None, **hp: Tiny(n_fields, **hp))
        yield


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    return write_feature_days(tmp_path_factory.mktemp("lake"), days=3, rows=1500, seed=0)


CFG = TrainConfig(model="tiny", epochs=6, batch_size=128, lr=0.02, device="cpu", progress=False,
                  plot=False, seed=7)


@pytest.fixture(scope="module")
def trained(lake, tmp_path_factory):
    (lk, dates) = lake
    out = tmp_path_factory.mktemp("runs") / "tiny"
    return T.train(CFG.model_copy(update={"plot": True}), lk, "toy", dates[:1], dates[1], out, test_date=dates[2])


def test_train_writes_a_complete_folder_and_learns_the_planted_signal(lake, trained):
    lk, dates = lake
    out = trained.out_dir
    assert {p.name for p in out.iterdir()} == {"model.pt", "config.json", "metrics.json", "curve.json",
                                               "curve.png", "_COMPLETE.json"}
    m = json.loads((out / "metrics.json").read_text())
    p_true = pq.read_table(lk.features("toy", dates[2])).column("p_true").to_numpy()
    y = pq.read_table(lk.features("toy", dates[2])).column("label").to_numpy()
    oracle = roc_auc_score(y, p_true)
    assert m["test"]["auc"] > oracle - 0.03 and m["test"]["auc"] > 0.75
    assert 0.5 < m["test"]["gauc"] < 1 and m["test"]["rows"] == 1500
    curve = json.loads((out / "curve.json").read_text())
    assert len(curve) == m["epochs_run"] and curve[0]["train_loss"] > curve[-1]["train_loss"]
    best = curve[m["best_epoch"] - 1]
    assert best["valid_auc"] == max(c["valid_auc"] for c in curve)
    # metrics.json scores the calibrated model: a float32 a·z + b may tie or untie rows, nothing more
    assert m["valid"]["auc"] == pytest.approx(best["valid_auc"], abs=1e-5)
    assert m["calibration"]["fitted"] and m["calibration"]["scale"] > 0
    assert m["calibration"]["valid_logloss_uncalibrated"] == pytest.approx(best["valid_logloss"], abs=1e-12)
    assert m["valid"]["logloss"] < best["valid_logloss"]
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["fields"] == ["user", "item", "cat"] and cfg["hparams"] == {"dim": 8, "buckets": 211, "hidden": 32}
    assert cfg["train_dates"] == dates[:1] and cfg["valid_date"] == dates[1]
    state = torch.load(out / "model.pt", weights_only=True)
    assert set(state) == set(trained.model.state_dict())


def test_evaluate_and_predict_reload_the_best_state(lake, trained):
    lk, dates = lake
    ev = scoring.evaluate(trained.out_dir, lk, "toy", dates[1])
    assert ev["auc"] == pytest.approx(trained.metrics["valid"]["auc"], abs=1e-12)
    assert ev["gauc"] == pytest.approx(trained.metrics["valid"]["gauc"], abs=1e-12)
    p = scoring.predict(trained.out_dir, lk, "toy", dates[2])
    ids = torch.from_numpy(np.stack([pq.read_table(lk.features("toy", dates[2])).column(f).to_numpy()
                                     for f in ["user", "item", "cat"]], 1))
    with torch.no_grad():
        direct = torch.sigmoid(trained.model(ids)).double().numpy()
    np.testing.assert_allclose(p, direct, rtol=1e-6)
    model, config = scoring.load_model(trained.out_dir)
    assert not model.training and config["model"] == "tiny"


def test_cpu_training_is_deterministic_for_a_seed(lake, tmp_path):
    lk, dates = lake
    cfg = CFG.model_copy(update={"epochs": 2})
    a = T.train(cfg, lk, "toy", dates[:1], dates[1], tmp_path / "a").model.state_dict()
    b = T.train(cfg, lk, "toy", dates[:1], dates[1], tmp_path / "b").model.state_dict()
    c = T.train(cfg.model_copy(update={"seed": 8}), lk, "toy", dates[:1], dates[1], tmp_path / "c").model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["mlp.0.weight"], c["mlp.0.weight"])


def test_early_stopping_keeps_the_best_state(lake, tmp_path):
    lk, dates = lake
    cfg = CFG.model_copy(update={"epochs": 40, "lr": 0.05, "patience": 2,
                                 "hparams": {"dim": 32, "buckets": 4001, "hidden": 128}})
    r = T.train(cfg, lk, "toy", dates[:1], dates[1], tmp_path / "es")   # memorises day 1, then overfits
    assert r.metrics["epochs_run"] < 40
    assert r.metrics["epochs_run"] == r.metrics["best_epoch"] + 2
    ev = scoring.evaluate(r.out_dir, lk, "toy", dates[1])
    assert ev["auc"] == pytest.approx(r.metrics["valid"]["auc"], abs=1e-12)
    assert r.curve[-1]["valid_auc"] < r.metrics["valid"]["auc"]


def test_tiny_dataset_is_overfit(tmp_path):
    lk, dates = write_feature_days(tmp_path, days=2, rows=256, vocab=(10**6,) * 3)   # unique rows, noisy labels
    cfg = CFG.model_copy(update={"epochs": 20, "lr": 0.03, "patience": 20, "batch_size": 64,
                                 "hparams": {"dim": 16, "buckets": 4099, "hidden": 64}})
    r = T.train(cfg, lk, "toy", dates[:1], dates[1], tmp_path / "of")
    assert scoring.evaluate(r.out_dir, lk, "toy", dates[0])["auc"] > 0.99


def test_nan_loss_stops_with_a_clear_error_and_writes_nothing(lake, tmp_path, monkeypatch):
    lk, dates = lake
    monkeypatch.setattr(models, "build_model", lambda name, n_fields, bags=None, **hp: Tiny(n_fields, nan_at_call=17))
    cfg = CFG.model_copy(update={"check_every": 5})
    with pytest.raises(T.NonFiniteLossError, match=r"loss is nan at epoch 2, step 4"):  # 12 steps per epoch
        T.train(cfg, lk, "toy", dates[:1], dates[1], tmp_path / "runs" / "x")
    assert not (tmp_path / "runs").exists() or list((tmp_path / "runs").iterdir()) == []


def test_streaming_training_path(lake, tmp_path):
    lk, dates = lake
    cfg = CFG.model_copy(update={"epochs": 3, "memory_budget_gb": 1e-6, "shuffle_buffer_rows": 500})
    r = T.train(cfg, lk, "toy", dates[:2], dates[2], tmp_path / "st")
    assert r.metrics["train_rows"] == 3000 and r.metrics["valid"]["auc"] > 0.75


def test_weight_decay_groups():
    model = Tiny(3)
    cfg = TrainConfig(weight_decay=1e-4, embedding_weight_decay=1e-6, codebook_weight_decay=1e-5)
    groups = {g["name"]: g for g in param_groups(model, cfg)}
    assert groups["embedding"]["params"] == [model.embedding.weight]
    assert groups["codebook"]["params"] == [model.codebook]
    assert groups["decay"]["params"] == [model.mlp[0].weight, model.mlp[2].weight]
    assert groups["no_decay"]["params"] == [model.mlp[0].bias, model.mlp[2].bias]
    assert [groups[k]["weight_decay"] for k in ("embedding", "codebook", "decay", "no_decay")] == [1e-6, 1e-5, 1e-4, 0]
    opt = make_optimizer(model, cfg.model_copy(update={"optimizer": "adamw", "sparse_embeddings": False}))
    assert isinstance(opt, torch.optim.AdamW) and len(opt.param_groups) == 4
    opt = make_optimizer(model, cfg.model_copy(update={"optimizer": "adamw"}))   # tables: SparseAdam
    assert isinstance(opt.dense, torch.optim.AdamW) and len(opt.dense.param_groups) == 3
    assert opt.sparse.param_groups[0]["params"] == [model.embedding.weight] and model.embedding.sparse


def test_loading_against_changed_features_is_a_clear_error(lake, trained, tmp_path):
    lk, dates = lake
    manifest = json.loads(lk.manifest("toy").read_text())
    try:
        write_json_atomic(lk.manifest("toy"), {**manifest, "dense": {"price": {"boundaries": [1.0, 2.0]}}})
        with pytest.raises(ValueError, match=r"dataset 'toy' now has .*bucket boundaries changed"):
            scoring.evaluate(trained.out_dir, lk, "toy", dates[2])
        write_json_atomic(lk.manifest("toy"), {**manifest, "fields": ["user", "cat", "item"]})
        with pytest.raises(ValueError, match=r"trained on fields \['user', 'item', 'cat'\]"):
            scoring.predict(trained.out_dir, lk, "toy", dates[2])
    finally:
        write_json_atomic(lk.manifest("toy"), manifest)


def test_overlapping_days_are_refused(lake, tmp_path):
    lk, dates = lake
    with pytest.raises(ValueError, match="overlap"):
        T.train(CFG, lk, "toy", dates[:2], dates[1], tmp_path / "o")


def test_cli_train_then_evaluate(lake, tmp_path, capsys):
    from flows.cli import main

    lk, dates = lake
    out = tmp_path / "cli"
    assert main(["--home", str(lk.root), "train", "--dataset", "toy", "--model", "tiny", "--epochs", "2",
                 "--no-progress", "--device", "cpu", "--set", "hparams.dim=4", "--set", "plot=false",
                 "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"train {dates[0]}..{dates[0]} (1 day(s)), valid {dates[1]}, test {dates[2]}" in text
    assert "test" in text and f"-> {out}" in text
    assert json.loads((out / "config.json").read_text())["hparams"]["dim"] == 4
    assert main(["--home", str(lk.root), "evaluate", "--model-dir", str(out), "--json"]) == 0
    m = json.loads(capsys.readouterr().out)
    assert m["date"] == dates[2] and m["auc"] == pytest.approx(
        json.loads((out / "metrics.json").read_text())["test"]["auc"], abs=1e-12)
    assert main(["--home", str(lk.root), "train", "--dataset", "toy", "--set", "lrr=1"]) == 2
    assert "lrr: unknown key" in capsys.readouterr().err


def _quality_benchmark():
    import quality        # benchmarks/ is on sys.path (tests/conftest.py)

    return quality


def test_quality_benchmark_splits_test_rows_by_seen_users(tmp_path):
    lk, dates = write_feature_days(tmp_path, days=2, rows=200, vocab=(200, 9, 5))
    train_users = pq.read_table(lk.features("toy", dates[0])).column("group").to_numpy()
    test = pq.read_table(lk.features("toy", dates[1]))
    unseen = ~np.isin(test.column("group").to_numpy(), train_users)
    assert 0.1 < unseen.mean() < 0.6
    torch.manual_seed(0)
    model = Tiny(3)
    p, y, g = scoring.predict_batches(model, open_days(lk, "toy", [dates[1]]), torch.device("cpu"))
    m = _quality_benchmark().seen_group_metrics((p, y, g), lk, "toy", dates[:1])
    assert m["unseen_group_share"] == pytest.approx(unseen.mean(), abs=1e-12)
    assert m["auc_unseen"] == pytest.approx(roc_auc_score(y[unseen], p[unseen]), abs=1e-12)
    assert m["auc_seen"] == pytest.approx(roc_auc_score(y[~unseen], p[~unseen]), abs=1e-12)


def test_quality_variants_set_hparams_or_train_config_fields():
    variant = _quality_benchmark().model_variant
    assert variant("dea:symmetric=true:min_id_count=1") == ("dea", ["hparams.symmetric=true", "min_id_count=1"])
    with pytest.raises(ValueError, match="'seed=3' is set by the benchmark itself"):
        variant("dea:seed=3")


def test_quality_reuses_a_kept_synthetic_lake_only_for_the_same_world(tmp_path):
    quality = _quality_benchmark()
    small = quality.synthetic_spec("synthetic_small", rows_per_day=200, days=3)
    assert small.source.options["generator"]["users"] == 20_000
    assert quality.synthetic_spec("synthetic") == load_spec("synthetic")      # the default world as configured
    lk, dates = write_feature_days(tmp_path, dataset="synthetic_small", days=3)
    manifest = json.loads(lk.manifest("synthetic_small").read_text())
    manifest["spec"] = {"source": small.source.model_dump(mode="json")}
    lk.manifest("synthetic_small").write_text(json.dumps(manifest))
    assert quality.prepare(lk, "synthetic_small", workers=1, spec=small) == dates
    other = quality.synthetic_spec("synthetic_small", rows_per_day=300, days=3)
    with pytest.raises(ValueError, match=r"dataset 'synthetic_small' was made from the source .*'rows_per_day': 200"):
        quality.prepare(lk, "synthetic_small", workers=1, spec=other)


def test_deepctr_peer_maps_hashed_ids_to_training_vocabulary():
    pytest.importorskip("deepctr_torch")
    quality = _quality_benchmark()
    peer = quality.DeepCTRPeer("deepctr_autoint", [np.array([50, -7, 3]), np.array([10])], embedding_dim=4)
    ids = torch.tensor([[3, 10], [99, 10], [-7, 11]])
    assert peer(ids).shape == (3,)
    seen = []
    peer.net.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    peer(ids)
    assert seen[0].tolist() == [[2, 1], [0, 1], [1, 0]]        # sorted vocab position + 1, unseen -> 0


@pytest.mark.parametrize("name, hparams", [
    ("fm", {"embedding_dim": 4, "embedding_rows": 512}),
    ("dea", {"embedding_dim": 4, "embedding_rows": 512, "codebook_size": 1024, "layers": 1, "attention_dim": 8,
             "dnn_hidden": [16]}),
])
def test_registry_models_train_save_and_reload(lake, tmp_path, monkeypatch, name, hparams):
    lk, dates = lake
    monkeypatch.setattr(models, "build_model", REAL_BUILD)
    cfg = CFG.model_copy(update={"model": name, "hparams": hparams, "epochs": 4, "lr": 0.02})
    r = T.train(cfg, lk, "toy", dates[:1], dates[1], tmp_path / name, test_date=dates[2])
    assert r.metrics["test"]["auc"] > 0.6
    model, config = scoring.load_model(r.out_dir)
    assert type(model).__name__ == type(r.model).__name__ and config["hparams"] == r.model.hparams
    saved, trained = model.state_dict(), r.model.state_dict()
    assert saved.keys() == trained.keys() and all(torch.equal(saved[k], trained[k]) for k in saved)
    served = scoring.predict(r.out_dir, lk, "toy", dates[2])
    day = open_days(lk, "toy", [dates[2]])
    for batch_size in (13, 500, 4096):                       # eval is batch-independent (no batch statistics)
        p_b, y_b, _ = scoring.predict_batches(model, day, torch.device("cpu"), batch_size, bf16=False)
        assert len(p_b) == len(served) == 1500
        np.testing.assert_allclose(p_b, served, rtol=1e-6, atol=1e-9, err_msg=f"eval batch size {batch_size}")
    ev = scoring.evaluate(r.out_dir, lk, "toy", dates[2])
    assert ev["auc"] == pytest.approx(r.metrics["test"]["auc"], abs=1e-9)
    p, y, g = r.test_scores                                 # the test day's rows as train() scored them
    np.testing.assert_allclose(p, served, rtol=1e-6)        # in memory == reloaded from model.pt
    assert len(y) == len(g) == r.metrics["test"]["rows"] and roc_auc_score(y, p) == pytest.approx(ev["auc"], abs=1e-9)


def test_a_dea_saved_before_gate_on_existed_reloads_with_the_gate_on_the_codeword(tmp_path, monkeypatch):
    build_model = REAL_BUILD

    monkeypatch.setattr(models, "build_model", REAL_BUILD)
    hp = {"embedding_dim": 4, "embedding_rows": 64, "codebook_size": 256, "layers": 1, "attention_dim": 8,
          "dnn_hidden": [8]}
    torch.manual_seed(0)
    saved = build_model("dea", 3, gate_on="codeword", **hp).eval()
    with torch.no_grad():
        saved.combo.codebooks.weight.normal_()
        saved.combo.pair_mlp.bias.normal_()                  # b₁ ≠ 0: the placements differ
    old_hparams = {k: v for k, v in saved.hparams.items() if k != "gate_on"}
    (tmp_path / runs.CONFIG).write_text(json.dumps({"model": "dea", "fields": ["a", "b", "c"], "hparams": old_hparams}))
    torch.save(saved.state_dict(), tmp_path / runs.WEIGHTS)
    model, _ = scoring.load_model(tmp_path)
    ids = torch.randint(0, 1000, (16, 3))
    assert model.cfg.gate_on == "codeword"
    torch.testing.assert_close(model(ids), saved(ids))
    score = build_model("dea", 3, **hp).eval()
    score.load_state_dict(saved.state_dict())
    assert not torch.allclose(score(ids), saved(ids))       # what the new default would have served


def test_output_bias_starts_at_the_training_ctr(lake, tmp_path, monkeypatch):
    lk, dates = lake
    monkeypatch.setattr(models, "build_model", REAL_BUILD)
    cfg = CFG.model_copy(update={"model": "fm", "hparams": {"embedding_dim": 4, "embedding_rows": 512},
                                 "epochs": 1, "lr": 1e-9})              # so small that nothing moves
    r = T.train(cfg, lk, "toy", dates[:1], dates[1], tmp_path / "fm")
    ctr = float(pq.read_table(lk.features("toy", dates[0]), columns=["label"]).column("label").to_numpy().mean())
    assert r.model.bias.item() == pytest.approx(np.log(ctr / (1 - ctr)), abs=1e-6)
    assert r.metrics["valid"]["calibration"] == pytest.approx(1.0, abs=0.15)   # sigma(0) = 0.5 would be ~1.7


@pytest.mark.parametrize("name", available())
def test_output_bias_shifts_every_logit(name):
    build_model = REAL_BUILD
    torch.manual_seed(0)
    model = build_model(name, 3, embedding_dim=4, embedding_rows=64).eval()
    ids = torch.randint(0, 1000, (5, 3))
    before = model(ids)
    with torch.no_grad():
        model.output_bias().add_(1.5)
    torch.testing.assert_close(model(ids), before + 1.5)


def test_bf16_autocast_is_on_for_cuda_and_opt_in_for_the_cpu(monkeypatch):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert not device.use_bf16(CFG, cpu) and device.use_bf16(CFG, cuda)
    assert not device.use_bf16(CFG.model_copy(update={"bf16": False}), cuda)
    monkeypatch.setattr(device, "cpu_has_bf16", lambda: True)
    assert device.use_bf16(CFG.model_copy(update={"bf16_cpu": True}), cpu)
    assert device.use_bf16({"bf16_cpu": True}, cpu) and not device.use_bf16({"bf16": True}, cpu)   # saved configs
    monkeypatch.setattr(device, "cpu_has_bf16", lambda: False)
    with pytest.warns(RuntimeWarning, match="neither AVX512-BF16 nor AMX"):
        assert device.use_bf16({"bf16_cpu": True}, cpu)


@pytest.mark.skipif(not Path("/proc/cpuinfo").exists() or platform.machine() != "x86_64", reason="x86 Linux")
def test_cpu_bf16_detection_reads_torch_or_the_cpu_flags(monkeypatch):
    flags = set(Path("/proc/cpuinfo").read_text().split())
    expected = bool(flags & {"avx512_bf16", "amx_bf16"})
    assert device.cpu_has_bf16() == expected                                # torch's probes agree with the flags
    for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):   # torch 2.4 has neither
        monkeypatch.delattr(torch.cpu, probe, raising=False)
    assert device.cpu_has_bf16() == expected


class RecordsAutocast(Tiny):
    """Tiny, noting (training, CPU autocast on) at every forward."""

    seen: set = set()

    def forward(self, ids):
        self.seen.add((self.training, torch.is_autocast_enabled("cpu")))
        return super().forward(ids)


@pytest.mark.parametrize("bf16_cpu", [False, True])
def test_training_and_scoring_autocast_on_the_cpu_only_with_bf16_cpu(lake, tmp_path, monkeypatch, bf16_cpu):
    lk, dates = lake
    monkeypatch.setattr(models, "build_model", lambda name, n_fields, bags=None, **hp: RecordsAutocast(n_fields, **hp))
    monkeypatch.setattr(device, "cpu_has_bf16", lambda: True)
    monkeypatch.setattr(RecordsAutocast, "seen", set())
    r = T.train(CFG.model_copy(update={"bf16_cpu": bf16_cpu}), lk, "toy", dates[:1], dates[1], tmp_path / "m",
                test_date=dates[2])
    assert RecordsAutocast.seen == {(True, bf16_cpu), (False, bf16_cpu)}      # training steps, then scoring
    assert r.metrics["test"]["auc"] > 0.75
    if not bf16_cpu:
        return
    day = open_days(lk, "toy", [dates[2]])
    in_bf16 = scoring.predict_batches(r.model, day, torch.device("cpu"), bf16=True)[0]
    in_fp32 = scoring.predict_batches(r.model, day, torch.device("cpu"), bf16=False)[0]
    assert np.abs(in_bf16 - in_fp32).max() > 1e-4                    # bf16 rounding is visible ...
    np.testing.assert_array_equal(scoring.predict(r.out_dir, lk, "toy", dates[2]), in_bf16)   # ... and reloads keep it
    assert scoring.evaluate(r.out_dir, lk, "toy", dates[2])["auc"] == pytest.approx(r.metrics["test"]["auc"], abs=1e-12)


def test_quality_report_pairs_models_by_seed_and_merges_runs(tmp_path):
    quality = _quality_benchmark()
    row = lambda model, seed, auc: {"dataset": "d", "model": model, "seed": seed, "auc": auc}
    first = [row("logistic", 0, 0.70), row("dea", 0, 0.72), row("dea", 1, 0.73), row("fm", 0, 0.71),
             row("fm", 1, 0.70)]
    later = [row("logistic", 0, 0.70), row("dea", 2, 0.71), row("fm", 2, 0.69), row("fm", 1, 0.725)]
    (tmp_path / "a.json").write_text(json.dumps(first))
    (tmp_path / "b.json").write_text(json.dumps(later))
    rows = quality.merged_rows([str(tmp_path / "a.json"), str(tmp_path / "b.json")])
    assert len(rows) == 7 and [r["auc"] for r in rows if r["model"] == "fm"] == [0.71, 0.725, 0.69]
    table = {line.split(" | ")[1]: line.split(" | ")[2:] for line in quality.paired_table(rows, "dea")[4:]}
    # dea − fm per seed: +0.01, +0.005, +0.02 → mean 0.01167, sd 0.00764, t 2.65
    assert table["fm"] == ["3", "+0.0117 ± 0.0076", "+2.65", "dea better |"]
    # the one logistic row is paired with every dea seed: +0.02, +0.03, +0.01
    assert table["logistic"] == ["3", "+0.0200 ± 0.0100", "+3.46", "dea better |"]
    against_logistic = {line.split(" | ")[1]: line.split(" | ")[2:]
                        for line in quality.paired_table(rows, "logistic")[4:]}
    assert against_logistic["dea"] == ["3", "-0.0200 ± 0.0100", "-3.46", "logistic worse |"]
    assert against_logistic["fm"][:2] == ["3", "-0.0083 ± 0.0176"]
