"""Row-sparse tables and lazy Adam (dea_model.optim): same first step as dense Adam, untouched rows stay put."""

import pytest
import torch
import torch.nn.functional as F

from dea_model.config import TrainConfig
from dea_model.models import build_model
from dea_model.optim import DenseSparseAdam, clip_grad_norm, make_optimizer

N_FIELDS, ROWS = 3, 50


def model_and_batches():
    torch.manual_seed(0)
    model = build_model("autoint", N_FIELDS, embedding_dim=4, embedding_rows=ROWS, layers=1, heads=1,
                        attention_dim=4, dnn_hidden=(8,), first_order=True)
    # two batches touching disjoint rows of every field: ids 0..4 and 10..14
    batches = [torch.arange(5).repeat(N_FIELDS, 1).T + 10 * i for i in range(2)]
    return model, batches


def step(model, opt, ids, labels=None):
    opt.zero_grad(set_to_none=True)
    labels = torch.tensor([1.0, 0.0, 1.0, 0.0, 1.0]) if labels is None else labels
    F.binary_cross_entropy_with_logits(model(ids), labels).backward()
    opt.step()


def test_sparse_tables_match_dense_adam_on_first_step():
    weights = {}
    for sparse in (False, True):
        model, (ids, _) = model_and_batches()
        opt = make_optimizer(model, TrainConfig(lr=0.01, sparse_embeddings=sparse))
        assert isinstance(opt, DenseSparseAdam) == sparse
        step(model, opt, ids)
        assert model.embedding.weight.grad is None or model.embedding.weight.grad.is_sparse == sparse
        weights[sparse] = {k: v.clone() for k, v in model.state_dict().items()}
    for key, value in weights[False].items():  # steps are ±lr = 0.01; SparseAdam adds eps before bias
        torch.testing.assert_close(weights[True][key], value, rtol=0, atol=2e-5, msg=key)  # correction


@pytest.mark.parametrize("batch_size,sparse", [(5, True), (6, False), (64, False)])
def test_dea_codebooks_are_sparse_when_a_batch_looks_up_few_codebook_rows(batch_size, sparse):
    """3 fields: 6 ordered pairs, 256 rows: 5 · 6 = 30 ≤ 256 / 8 → lazy Adam on the codebooks;
    6 · 6 = 36 > 32 → dense (though the batch still gathers its codewords), 64 · 6 ≥ 256 → dense."""
    torch.manual_seed(0)
    model = build_model("dea", N_FIELDS, embedding_dim=4, embedding_rows=ROWS, layers=1, heads=1, attention_dim=4,
                        codebook_size=256, pair_hidden=4, fusion_hidden=4, dnn_hidden=(8,))
    opt = make_optimizer(model, TrainConfig(lr=0.01, batch_size=batch_size))
    codebooks = model.combo.codebooks
    assert codebooks.sparse == sparse
    sparse_params = [p for g in opt.sparse.param_groups for p in g["params"]]
    assert any(p is codebooks.weight for p in sparse_params) == sparse
    first, second = model_and_batches()[1]
    step(model, opt, first)
    before = codebooks.weight.detach().clone()
    step(model, opt, second)                                  # other ids: other pairs, other rows
    moved = (codebooks.weight.detach() != before).any(1)
    rows = [torch.zeros_like(moved).index_fill_(0, model.combo.addresses(ids).flatten().long(), True)
            for ids in (first, second)]
    assert moved[rows[1]].all()
    assert moved[rows[0] & ~rows[1]].any() != sparse           # lazy Adam: only the rows of the step move


def test_lazy_adam_leaves_rows_of_other_batches_alone():
    moved = {}
    for sparse in (False, True):
        model, (first, second) = model_and_batches()
        opt = make_optimizer(model, TrainConfig(lr=0.01, sparse_embeddings=sparse))
        step(model, opt, first)
        table = model.embedding.weight
        rows_first = model.embedding.row_index(first).unique()
        before = table.detach()[rows_first].clone()
        step(model, opt, second)                  # touches other rows only
        moved[sparse] = (table.detach()[rows_first] - before).abs().max().item()
        rows_second = model.embedding.row_index(second).unique()
        assert (table.detach()[rows_second] != 0).all()
    assert moved[False] > 1e-4        # dense Adam: momentum keeps moving rows no longer looked up
    assert moved[True] == 0.0         # lazy Adam: only the rows of the step


@pytest.mark.parametrize("optimizer", ["adam", "adamw"])
def test_sparse_weight_decay_acts_on_looked_up_rows_as_the_dense_optimizer(optimizer):
    """adam: L2 on the gradient; adamw: decoupled shrink — on looked-up rows; other rows stay put."""
    tables = {}
    for sparse in (False, True):
        model, (ids, _) = model_and_batches()
        with torch.no_grad():
            model.embedding.weight.mul_(100)      # rows large enough for the decay to matter
        cfg = TrainConfig(lr=0.1, optimizer=optimizer, embedding_weight_decay=0.5, sparse_embeddings=sparse)
        start = model.embedding.weight.detach().clone()
        step(model, make_optimizer(model, cfg), ids)
        tables[sparse] = model.embedding.weight.detach()
    looked_up = torch.zeros(len(start), dtype=torch.bool)
    looked_up[model.embedding.row_index(ids).flatten()] = True
    # steps are ~lr = 0.1; SparseAdam adds eps before bias correction: ~6e-4 apart where |grad| ~ 5e-5
    torch.testing.assert_close(tables[True][looked_up], tables[False][looked_up], rtol=0, atol=1e-3)
    assert torch.equal(tables[True][~looked_up], start[~looked_up])
    assert not torch.allclose(tables[False][~looked_up], start[~looked_up])   # dense: decay moves every row


def test_model_of_tables_only_gets_sparse_adam_alone():
    class TablesOnly(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = torch.nn.Embedding(10, 1)

        def forward(self, ids):
            return self.embedding(ids).sum((1, 2))

    model = TablesOnly()
    opt = make_optimizer(model, TrainConfig(lr=0.1))
    assert opt.dense is None and model.embedding.sparse
    step(model, opt, torch.tensor([[1, 2]] * 5))
    assert opt.state_dict()["dense"] is None and len(opt.param_groups) == 1


def backward(sparse: bool):
    model, (ids, _) = model_and_batches()
    make_optimizer(model, TrainConfig(sparse_embeddings=sparse))
    F.binary_cross_entropy_with_logits(model(ids), torch.ones(5)).backward()
    return model


def dense_grads(model) -> dict[str, torch.Tensor]:
    return {k: (p.grad.to_dense() if p.grad.is_sparse else p.grad).clone()
            for k, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("fraction", [0.25, 0.9, 4.0])
def test_clip_grad_norm_with_sparse_grads_equals_dense(fraction):
    """Clipping to a fraction of the gradient's norm: the sparse path (row-sparse table gradients)
    returns the same total norm and leaves the same clipped gradients as torch's dense clip."""
    unclipped = dense_grads(backward(False))
    total = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in unclipped.values()]))
    max_norm = fraction * total.item()
    reference = backward(False)                                  # torch's own clip on the dense gradients
    torch.testing.assert_close(torch.nn.utils.clip_grad_norm_(reference.parameters(), max_norm), total)
    expected = dense_grads(reference)
    for sparse in (False, True):
        model = backward(sparse)
        assert model.embedding.weight.grad.is_sparse == sparse
        torch.testing.assert_close(clip_grad_norm(model.parameters(), max_norm), total)
        grads = dense_grads(model)
        assert grads.keys() == expected.keys() and "embedding.weight" in grads
        for k in expected:
            torch.testing.assert_close(grads[k], expected[k], msg=k)
        after = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads.values()]))
        if fraction < 1:                                         # clipped: the norm is max_norm now ...
            assert after.item() == pytest.approx(max_norm, rel=1e-4)
            assert not torch.allclose(grads["embedding.weight"], unclipped["embedding.weight"])
        else:                                                    # ... or untouched below it
            for k in grads:
                torch.testing.assert_close(grads[k], unclipped[k], rtol=1e-7, atol=0, msg=k)
