"""Training vocabulary: rare and unseen IDs → one OOV ID per field, in training, evaluation and reload."""

import numpy as np
import pytest
import torch

from dea_model import scoring, train as T
from dea_model import vocabulary as V
from dea_model.config import TrainConfig
from dea_model.data import load_days, open_days
from dea_model.models import build_model
from helpers import write_feature_days


def small(name="fm"):
    extra = dict(layers=1, attention_dim=4, codebook_size=256, dnn_hidden=[8]) if name == "dea" else {}
    return build_model(name, 3, embedding_dim=4, embedding_rows=64, **extra)


def test_map_unseen_keeps_vocabulary_ids_and_maps_the_rest_per_field():
    ids_, bounds = torch.tensor([3, 7, 50, -2, 10]), [0, 3, 5, 5]     # field 2: empty
    ids = torch.tensor([[7, 10, 1], [8, -2, 2], [50, 3, 3]])
    assert V.map_unseen(ids, ids_, bounds).tolist() == [[7, 10, -1], [-1, -2, -1], [50, -1, -1]]


@pytest.mark.parametrize("streamed", [False, True])
def test_count_ids_counts_every_row_of_memory_and_streamed_days(tmp_path, streamed):
    lake, dates = write_feature_days(tmp_path, days=2, rows=700, vocab=(40, 9, 5), row_group_size=100)
    data = open_days(lake, "toy", dates, budget_bytes=1 if streamed else 4e9, buffer_rows=250)
    assert type(data).__name__ == ("StreamingDays" if streamed else "FeatureTable")
    ids = load_days(lake, "toy", dates).ids.numpy()
    for j, (values, counts) in enumerate(V.count_ids(data, 3)):
        expected = np.unique(ids[:, j], return_counts=True)
        np.testing.assert_array_equal(values, expected[0])
        np.testing.assert_array_equal(counts, expected[1])


def test_fit_keeps_ids_seen_min_count_times_and_the_model_maps_the_rest_in_train_and_eval(tmp_path):
    lake, dates = write_feature_days(tmp_path, days=1, rows=300, vocab=(150, 9, 5))
    data = load_days(lake, "toy", dates)
    model = small()
    report = V.fit(model, data, 3, min_count=2)
    users, counts = np.unique(data.ids[:, 0].numpy(), return_counts=True)
    rare = users[counts < 2]
    assert 0 < rare.size < users.size and report["ids_kept"] == report["ids_seen"] - rare.size
    assert report["train_oov_share"] == pytest.approx(rare.size / (3 * 300))
    seen = []
    model.register_forward_pre_hook(lambda module, args: seen.append(args[0]))   # runs after the vocabulary's
    ids = data.ids[:50]
    for mode in (model.train, model.eval):
        mode()
        model(ids)
        expected = ids.clone()
        expected[:, 0][np.isin(ids[:, 0].numpy(), rare)] = V.OOV
        assert torch.equal(seen[-1], expected)


def test_dea_hashes_its_combo_ids_from_the_mapped_ids():
    torch.manual_seed(0)
    model = small("dea").eval()
    ids = torch.randint(0, 10**9, (16, 3))
    V.set_vocabulary(model, [ids[:8, 0].numpy(), ids[:, 1].numpy(), ids[:, 2].numpy()])
    substituted = ids.clone()
    substituted[8:, 0] = V.OOV
    V.clear(model)
    expected = model(substituted)
    V.set_vocabulary(model, [ids[:8, 0].numpy(), ids[:, 1].numpy(), ids[:, 2].numpy()])
    torch.testing.assert_close(model(ids), expected, rtol=0, atol=0)


def test_vocabulary_travels_in_the_state_dict_and_old_weights_load_without_one():
    torch.manual_seed(0)
    model = small().eval()
    V.set_vocabulary(model, [np.array([5, 1]), np.array([2]), np.array([], np.int64)])
    fresh = small().eval()
    fresh.load_state_dict(model.state_dict())                     # buffers resized to the saved vocabulary
    ids = torch.tensor([[5, 2, 9], [6, 3, 9]])
    torch.testing.assert_close(fresh(ids), model(ids), rtol=0, atol=0)
    assert fresh.vocab_offsets.tolist() == [0, 2, 3, 3]
    without = small().eval()
    old = {k: v for k, v in without.state_dict().items() if not k.startswith("vocab_")}
    fresh.load_state_dict(old)                                    # strict: weights saved before vocabularies
    assert fresh.vocab_offsets.numel() == 0
    torch.testing.assert_close(fresh(ids), without(ids), rtol=0, atol=0)


def test_a_wrong_width_is_named():
    model = small().eval()
    V.set_vocabulary(model, [np.array([5]), np.array([2]), np.array([7])])
    with pytest.raises(ValueError, match=r"vocabulary has 3 fields; got ids of shape \(2, 4\)"):
        model(torch.zeros(2, 4, dtype=torch.int64))
    with pytest.raises(ValueError, match="a vocabulary of 2 fields for a model of 3"):
        V.set_vocabulary(model, [np.array([5]), np.array([2])])


def test_trainer_fits_the_vocabulary_and_evaluation_reloads_it(tmp_path):
    lake, dates = write_feature_days(tmp_path, days=3, rows=400, vocab=(300, 9, 5))
    cfg = TrainConfig(model="fm", hparams={"embedding_dim": 8, "embedding_rows": 512}, epochs=2, batch_size=64,
                      device="cpu", progress=False, plot=False, min_id_count=1)
    r = T.train(cfg, lake, "toy", dates[:1], dates[1], tmp_path / "fm", test_date=dates[2])
    users = np.unique(load_days(lake, "toy", dates[:1]).ids[:, 0].numpy())
    assert r.metrics["vocabulary"]["ids_kept"] == r.metrics["vocabulary"]["ids_seen"] == users.size + 9 + 5
    assert r.metrics["vocabulary"]["train_oov_share"] == 0            # c = 1: every training ID is kept
    assert torch.equal(r.model.vocab_ids[:users.size], torch.from_numpy(users))
    evaluated = scoring.evaluate(r.out_dir, lake, "toy", dates[2])
    assert evaluated["auc"] == pytest.approx(r.metrics["test"]["auc"], abs=1e-12)
    off = T.train(cfg.model_copy(update={"min_id_count": 0}), lake, "toy", dates[:1], dates[1], tmp_path / "off")
    assert "vocabulary" not in off.metrics and off.model.vocab_offsets.numel() == 0
