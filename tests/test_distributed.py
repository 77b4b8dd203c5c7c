"""Data-parallel training (dea_model.distributed): the row split, and N processes training the
model one process trains (same global batches), written once by rank 0, reloaded in one process."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
import torch
import torch.distributed as dist

from dea_model import distributed, scoring, train as T
from dea_model.config import TrainConfig
from dea_model.data import FeatureTable
from features.lake import Lake
from helpers import HPARAMS, write_feature_days


# --- the row split (fast) -----------------------------------------------------------------------

def _table(n: int) -> FeatureTable:
    ids = torch.arange(n).unsqueeze(1)                        # row i holds ID i: rows are traceable
    return FeatureTable(ids, torch.zeros(n), torch.zeros(n, dtype=torch.long), ["f"])


@pytest.mark.parametrize("n, batch_size, world", [(1000, 100, 2), (1001, 100, 2), (997, 64, 3), (10, 4, 3),
                                                  (7, 16, 2)])
def test_every_row_is_trained_once_per_epoch_across_ranks_in_equal_steps(n, batch_size, world):
    data, seen, steps = _table(n), [], set()
    for rank in range(world):
        shard = distributed.Shard(data, batch_size, rank, world)
        batches = list(shard.batches(batch_size, shuffle=True, generator=torch.Generator().manual_seed(3)))
        rows = torch.cat([b.ids[:, 0] for b in batches])
        assert len(rows) == len(shard)
        assert all(len(b.ids) <= -(-batch_size // world) for b in batches)
        seen.append(rows)
        steps.add(len(batches))
    assert steps == {-(-n // batch_size)}                     # every rank steps as often as one process
    assert sorted(torch.cat(seen).tolist()) == list(range(n))  # each row exactly once


def test_the_ranks_share_of_a_global_batch_is_its_strided_slice():
    data = _table(1000)
    one = next(data.batches(100, shuffle=True, generator=torch.Generator().manual_seed(5)))
    shard = distributed.Shard(data, 100, 1, 2)
    share = next(shard.batches(100, shuffle=True, generator=torch.Generator().manual_seed(5)))
    assert torch.equal(share.ids, one.ids[1::2])
    with pytest.raises(ValueError, match="global batches of 100 rows, not 50"):
        next(shard.batches(50))


def test_nproc_above_one_counts_in_the_config_hash_and_one_keeps_the_old_hash():
    cfg = TrainConfig()
    assert cfg.model_copy(update={"nproc": 1}).config_hash() == cfg.config_hash()
    assert TrainConfig(nproc=2).config_hash() != cfg.config_hash()
    assert "processes" in TrainConfig.model_fields["nproc"].description


def test_a_torchrun_world_other_than_nproc_is_refused(monkeypatch):
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "4")
    with pytest.raises(ValueError, match="nproc=2, but this process is a rank of a world of 4"):
        with distributed.ranks(2):
            pass


# --- N processes (integration) ------------------------------------------------------------------

@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """Three days of the default synthetic dataset, 20k rows each: train, valid, test."""
    import quality        # benchmarks/ is on sys.path (tests/conftest.py)
    from features import pipeline
    from features.sources import ingest

    lake = Lake(tmp_path_factory.mktemp("lake"))
    spec = quality.synthetic_spec("synthetic", rows_per_day=20_000, days=3)
    ingest(spec, lake)
    days = lake.dates("raw", "synthetic")
    manifest = pipeline.fit(spec, lake, days[:2])
    for d in days:
        pipeline.transform(spec, lake, d, manifest)
    return lake, days


CFG = TrainConfig(model="fm", hparams=HPARAMS["fm"], epochs=2, batch_size=1000, lr=0.003, device="cpu",
                  progress=False, plot=False, seed=11)


@pytest.mark.integration
def test_two_processes_train_the_one_process_model_written_once_by_rank_0(synthetic, tmp_path):
    lake, (train_day, valid_day, test_day) = synthetic
    one = T.train(CFG, lake, "synthetic", [train_day], valid_day, tmp_path / "one", test_date=test_day)
    runs = tmp_path / "two-runs"
    two = T.train(CFG.model_copy(update={"nproc": 2}), lake, "synthetic", [train_day], valid_day, runs / "two",
                  test_date=test_day)
    assert two.metrics["valid"]["auc"] == pytest.approx(one.metrics["valid"]["auc"], abs=0.002)
    assert two.metrics["train_rows"] == one.metrics["train_rows"] == 20_000          # rank 0 reports the whole day
    assert [p.name for p in runs.iterdir()] == ["two"]                               # one folder, no temporaries
    assert json.loads((runs / "two" / "config.json").read_text())["train"]["nproc"] == 2
    model, config = scoring.load_model(runs / "two")                                  # one process, the usual loader
    reloaded = scoring.evaluate(runs / "two", lake, "synthetic", test_day)
    assert reloaded["auc"] == pytest.approx(two.metrics["test"]["auc"], abs=1e-9)
    p, _, _ = two.test_scores
    assert np.allclose(scoring.predict(runs / "two", lake, "synthetic", test_day), p, atol=1e-6)
    assert type(model) is type(two.model) and config["train"]["nproc"] == 2
    pairs = zip(one.model.state_dict().values(), two.model.state_dict().values())
    apart = max((a.double() - b.double()).abs().max().item() for a, b in pairs if a.numel())
    assert apart < 1e-4                                       # the same steps, up to the order of float sums


def fail_on_rank_1() -> None:
    """A rank function: rank 1 raises once the group is up, rank 0 waits for it in a collective."""
    dist.init_process_group("gloo")
    if dist.get_rank() == 1:
        raise RuntimeError("rank 1 cannot read its data")
    dist.barrier()


def _ranks_left(before: set[int]) -> list[psutil.Process]:
    """This process's children started since ``before`` and still running, but multiprocessing's
    resource tracker (started by the first spawn, it lives as long as this process)."""
    time.sleep(0.5)
    return [p for p in psutil.Process().children(recursive=True)
            if p.pid not in before and p.is_running() and "resource_tracker" not in " ".join(p.cmdline())]


@pytest.mark.integration
def test_a_failing_rank_stops_the_others_and_raises_naming_it():
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    with pytest.raises(distributed.RankFailedError,
                       match=r"failed on rank 1 of 2 .*RuntimeError: rank 1 cannot read its data; the other ranks "
                             r"were stopped"):
        distributed.launch(fail_on_rank_1, 2)
    assert _ranks_left(before) == []


@pytest.mark.integration
def test_training_refuses_what_it_cannot_spread(synthetic, tmp_path):
    lake, days = synthetic
    with pytest.raises(ValueError, match="nproc=2 trains registry models only"):
        T.train(CFG.model_copy(update={"nproc": 2}), lake, "synthetic", days[:1], days[1], tmp_path / "x",
                model=torch.nn.Linear(1, 1))


SLEEPING_RANKS = """
import time
from dea_model import distributed
distributed.launch(time.sleep, 2, 120)
"""


@pytest.mark.integration
@pytest.mark.parametrize("how", ["SIGTERM", "SIGINT"])
def test_sigterm_or_ctrl_c_in_the_parent_stops_every_rank(how, tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    parent = subprocess.Popen([sys.executable, "-c", SLEEPING_RANKS], cwd=Path(__file__).resolve().parents[1],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env={**os.environ, "TMPDIR": str(tmp)},
                              preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # as in a terminal
    proc = psutil.Process(parent.pid)
    deadline = time.monotonic() + 60
    while len([c for c in proc.children(recursive=True) if "spawn_main" in " ".join(c.cmdline())]) < 2:
        assert time.monotonic() < deadline and parent.poll() is None, parent.communicate()[0]
        time.sleep(0.2)
    ranks = proc.children(recursive=True)
    parent.send_signal(getattr(signal, how))
    out, _ = parent.communicate(timeout=60)
    assert parent.returncode != 0, out
    if how == "SIGINT":
        assert "KeyboardInterrupt" in out                    # Ctrl-C reaches the caller as Ctrl-C
    gone, alive = psutil.wait_procs(ranks, timeout=30)
    assert alive == [], out
    assert list(tmp.iterdir()) == []                         # the ranks' log folder went with them


@pytest.mark.integration
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs at least 2 GPUs (benchmarks/device_check.sh)")
def test_every_gpu_trains_the_one_gpu_model_with_nccl(tmp_path):
    lake, dates = write_feature_days(tmp_path / "lake", days=3, rows=6000, seed=0)
    gpus = torch.cuda.device_count()
    cfg = TrainConfig(model="fm", hparams=HPARAMS["fm"], epochs=3, batch_size=240 * gpus, lr=0.01, device="cuda",
                      bf16=False, progress=False, plot=False, seed=5)
    one = T.train(cfg, lake, "toy", dates[:1], dates[1], tmp_path / "one", test_date=dates[2])
    many = T.train(cfg.model_copy(update={"nproc": gpus}), lake, "toy", dates[:1], dates[1], tmp_path / "many",
                   test_date=dates[2])
    assert many.metrics["valid"]["auc"] == pytest.approx(one.metrics["valid"]["auc"], abs=0.002)
    assert json.loads((tmp_path / "many" / "config.json").read_text())["train"]["nproc"] == gpus
    reloaded = scoring.evaluate(tmp_path / "many", lake, "toy", dates[2], device="cpu")      # on the CPU
    assert reloaded["auc"] == pytest.approx(many.metrics["test"]["auc"], abs=1e-4)
