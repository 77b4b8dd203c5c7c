"""Diagnostics: information abundance, codebook collisions, collapse-mask rates."""

import pytest
import torch

from dea_model.diagnostics import (branch_gradients, branch_instruments, codebook_collision_rate,
                                   collapse_mask_rate, field_information_abundance, information_abundance)
from dea_model.models import build_model


@pytest.fixture(autouse=True, scope="module")
def one_thread(torch_one_thread):
    """Every test here runs torch single-threaded (see conftest)."""


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("shape", [(50, 8), (8, 50), (16, 16)])
def test_information_abundance_of_rank_one_orthogonal_and_random(shape):
    u, v = torch.randn(shape[0], 1, generator=gen(1)), torch.randn(1, shape[1], generator=gen(2))
    assert information_abundance(u @ v) == pytest.approx(1.0, abs=1e-6)
    q, _ = torch.linalg.qr(torch.randn(max(shape), min(shape), generator=gen(3), dtype=torch.float64))
    q = q if shape[0] >= shape[1] else q.T
    assert information_abundance(q) == pytest.approx(min(shape), rel=1e-9)
    assert information_abundance(3.0 * q) == pytest.approx(min(shape), rel=1e-9)  # scale-free
    rand = information_abundance(torch.randn(shape, generator=gen(4)).numpy())
    assert 1.5 < rand < min(shape)
    assert information_abundance(torch.zeros(shape)) == 0.0


def test_information_abundance_weights_the_spectrum():
    diag = torch.diag(torch.tensor([4.0, 2.0, 1.0, 1.0]))
    assert information_abundance(diag) == pytest.approx(8.0 / 4.0)
    with pytest.raises(ValueError, match="2-D"):
        information_abundance(torch.ones(3))


def dea(**kw):
    torch.manual_seed(0)
    return build_model("dea", 4, embedding_dim=8, embedding_rows=1024, attention_dim=8, dnn_hidden=(16,), **kw)


def ids_sample(n=200, seed=0, values=50):
    return torch.randint(0, values, (n, 4), generator=gen(seed)) * 7919 + torch.arange(4) * 104729


def test_field_information_abundance_uses_touched_rows():
    model = dea()
    ids = ids_sample()
    rows = model.embedding.row_index(ids)
    with torch.no_grad():  # field 1: every touched row on one line → IA 1
        model.embedding.weight[rows[:, 1]] = torch.randn(len(rows), 1, generator=gen(5)) * torch.ones(8)
    ia = field_information_abundance(model, ids)
    assert sorted(ia) == [0, 1, 2, 3]
    assert ia[1] == pytest.approx(1.0, abs=1e-5)
    assert all(2.0 < ia[f] <= 8.0 for f in (0, 2, 3))
    # fewer touched rows than d bounds the IA by their count
    few = field_information_abundance(model, ids_sample(values=3))
    assert all(v <= 3.0 + 1e-9 for v in few.values())


def test_codebook_collision_rate_follows_codebook_size():
    ids = ids_sample(n=300)
    tiny = codebook_collision_rate(dea(codebook_size=64), ids)
    big = codebook_collision_rate(dea(codebook_size=2**22), ids)
    assert tiny["pair_keys"] == big["pair_keys"] > 64  # distinct ordered pair keys in the sample
    assert tiny["main_shared"] > 0.95 and tiny["main_shared"] == pytest.approx(tiny["expected_main"], abs=0.02)
    assert tiny["all_shared"] < tiny["main_shared"]  # the siamese addresses separate most collisions
    assert tiny["all_shared"] == pytest.approx(tiny["expected_all"], abs=0.05)
    assert big["main_shared"] == pytest.approx(big["expected_main"], abs=0.01) and big["main_shared"] < 0.01
    assert big["all_shared"] == 0.0
    with pytest.raises(ValueError, match="no Combo-ID codebooks"):
        codebook_collision_rate(dea(combo=False), ids)


def test_collapse_mask_rate_per_layer():
    ids = ids_sample()
    model = dea(layers=2)
    model.train()
    rates = collapse_mask_rate(model, ids)
    assert len(rates) == 2 and all(0.1 < r < 0.9 for r in rates)
    assert model.training  # mode restored
    assert not any(bool(b.collapse.tau_seen) for b in model.blocks)  # eval: running τ untouched
    low = collapse_mask_rate(dea(layers=2, tau_multiplier=1e-9), ids)
    assert low[0] == 0.0 and low[1] < 0.05  # only exact zeros (tokens zeroed by ReLU) stay below τ
    assert collapse_mask_rate(dea(layers=2, tau_multiplier=1e9), ids) == [1.0, 1.0]
    with pytest.raises(ValueError, match="no collapse-avoiding layers"):
        collapse_mask_rate(dea(collapse=False), ids)


def test_branch_instruments_see_the_inert_scores_that_qk_norm_revives():
    """At initialisation (embeddings std 0.01) Q·Kᵀ is ~1e-5 without qk_norm: the collapse branch moves
    nothing; with qk_norm S is O(1) from the first step."""
    ids = ids_sample(n=256)
    labels = (torch.rand(256, generator=gen(7)) < 0.3).float()
    rows = {}
    for qk_norm in (False, True):
        model = dea(layers=2, qk_norm=qk_norm)
        layers = branch_instruments(model, ids)
        assert len(layers) == 2 and set(layers[0]) == {"s_std", "a_m_std", "a_c_std", "collapse_share",
                                                       "entropy", "mask_rate"}
        assert layers[0]["collapse_share"] == 0.0                      # multiply fusion starts as A_m alone
        rows[qk_norm] = layers, branch_gradients(model, ids, labels)
        assert all(p.grad is None for p in model.parameters())          # the batch's gradients are not kept
    (inert, inert_grads), (alive, alive_grads) = rows[False], rows[True]
    assert max(layer["s_std"] for layer in inert) < 1e-3 < 0.1 < min(layer["s_std"] for layer in alive)
    assert alive_grads["fusion"] > inert_grads["fusion"] > 0
    assert set(alive_grads) == {"embedding", "combo_codebooks", "combo_mlp", "attention_proj", "fusion", "dnn"}
    with pytest.raises(ValueError, match="no fusion"):
        branch_instruments(dea(collapse=False), ids)
