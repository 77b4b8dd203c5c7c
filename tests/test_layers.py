"""The layer library: embeddings, pair maps, attention, collapse-avoiding mask, combo-ID scores, fusion."""

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from dea_model.layers import (CollapseAvoiding, ComboIDScores, FieldAttention, FieldEmbedding, ScoreFusion,
                              apply_diagonal, collision_rate, fm_interaction, mirror_to_square, ordered_pairs,
                              pairs_to_square, safe_softmax, unordered_pairs)
from dea_model.layers import combo as combo_module
from dea_model.layers.combo import codebook_scores, codebook_tables, pair_scores, table_scores
from dea_model.layers.embedding import gather_rows


def randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


# --- embeddings ------------------------------------------------------------------------------------

def test_field_embedding_rows_are_modulo_with_field_offsets():
    emb = FieldEmbedding(n_fields=3, dim=4, rows=10)
    ids = torch.tensor([[0, -1, 23], [2**63 - 1, -(2**63), 10]])
    expected = torch.tensor([[0, 10 + 9, 20 + 3], [(2**63 - 1) % 10, 10 + (-(2**63)) % 10, 20 + 0]])
    assert torch.equal(emb.row_index(ids), expected)
    assert torch.equal(emb(ids), emb.weight[expected])


def test_gather_rows_gradient_equals_embedding_gradient():
    table = randn(50, 8).requires_grad_()
    index = torch.randint(0, 50, (7, 30), generator=torch.Generator().manual_seed(1))
    upstream = randn(7, 30, 8, seed=2)
    (gather_rows(table, index) * upstream).sum().backward()
    ours = table.grad.clone()
    table.grad = None
    (F.embedding(index, table) * upstream).sum().backward()
    torch.testing.assert_close(ours, table.grad)


def test_collision_rate_formula_matches_simulation():
    values, rows = 3000, 4096
    g = torch.Generator().manual_seed(0)
    shared = []
    for _ in range(20):
        slot = torch.randint(0, rows, (values,), generator=g)
        shared.append(float((torch.bincount(slot, minlength=rows)[slot] > 1).double().mean()))
    assert collision_rate(values, rows) == pytest.approx(1 - math.exp(-(values - 1) / rows), rel=1e-3)
    assert sum(shared) / len(shared) == pytest.approx(collision_rate(values, rows), abs=0.01)
    assert collision_rate(1, 10) == 0.0


# --- pair maps and diagonals ------------------------------------------------------------------------

@pytest.mark.parametrize("diagonal", [False, True])
def test_pairs_to_square_places_every_pair(diagonal):
    n = 5
    left, right = ordered_pairs(n, diagonal)
    assert len(left) == (n * n if diagonal else n * (n - 1))
    values = torch.arange(len(left), dtype=torch.float32) + 1
    square = pairs_to_square(values.expand(2, 3, -1), n, diagonal, fill=-7.0)
    assert square.shape == (2, 3, n, n)
    for p, (i, j) in enumerate(zip(left.tolist(), right.tolist())):
        assert square[1, 2, i, j] == values[p]
    if not diagonal:
        assert torch.all(square.diagonal(dim1=-2, dim2=-1) == -7.0)


def test_apply_diagonal_modes():
    s = randn(2, 4, 4)
    assert torch.equal(apply_diagonal(s, "keep"), s)
    off = ~torch.eye(4, dtype=torch.bool)
    for mode, value in (("zero", 0.0), ("neg_inf", float("-inf"))):
        out = apply_diagonal(s, mode)
        assert torch.all(out.diagonal(dim1=-2, dim2=-1) == value) and torch.equal(out[:, off], s[:, off])


def test_safe_softmax_empty_row_is_zero_and_gradients_finite():
    logits = torch.tensor([[0.0, 1.0, float("-inf")], [float("-inf")] * 3]).requires_grad_()
    p = safe_softmax(logits)
    torch.testing.assert_close(p[0], torch.softmax(torch.tensor([0.0, 1.0, float("-inf")]), -1))
    assert torch.equal(p[1], torch.zeros(3))
    (p * torch.tensor([1.0, 2.0, 3.0])).sum().backward()
    assert torch.isfinite(logits.grad).all()


# --- attention -----------------------------------------------------------------------------------

def test_field_attention_matches_per_head_reference():
    attn = FieldAttention(d_in=6, d_attn=8, heads=2)
    x = randn(3, 5, 6)
    q, k, v, r = attn(x)
    w_q, w_k, w_v, w_r = attn.proj.weight.split(8)
    assert q.shape == (2, 3, 5, 4)  # head-major (H, B, n, d_h)
    torch.testing.assert_close(q[1], (x @ w_q.T)[..., 4:])
    torch.testing.assert_close(r, x @ w_r.T)
    s = attn.scores(q, k)
    torch.testing.assert_close(s[0], (x @ w_q.T)[..., :4] @ (x @ w_k.T)[..., :4].transpose(1, 2) / 2.0)
    out = attn.mix(torch.softmax(s, -1), v)
    assert out.shape == (3, 5, 8)
    torch.testing.assert_close(out[..., 4:], torch.softmax(s[1], -1) @ (x @ w_v.T)[..., 4:])


def test_collapse_avoiding_threshold_is_offdiagonal_mean_magnitude():
    ca = CollapseAvoiding(heads=2, multiplier=1.0)
    s = randn(2, 4, 5, 5)  # (H, B, n, n)
    keep = ca(s)
    off = ~torch.eye(5, dtype=torch.bool)
    tau = s.abs()[:, :, off].mean((1, 2))  # per head, over batch and off-diagonal cells
    assert torch.equal(keep[:, :, off], s.abs()[:, :, off] >= tau[:, None, None])
    assert keep.diagonal(dim1=-2, dim2=-1).all()
    assert 0.2 < 1 - keep[:, :, off].float().mean() < 0.8  # some, not all, entries masked
    torch.testing.assert_close(ca.tau_mean, tau)  # first batch initialises the running mean
    assert torch.equal(CollapseAvoiding(2, multiplier=1e-6)(s)[:, :, off], torch.ones(2, 4, 20, dtype=torch.bool))


@pytest.mark.parametrize("multiplier,kept", [(0.5, range(4, 13)), (1.0, range(7, 13)), (1.5, range(10, 13)),
                                             (2.0, range(0))])
def test_tau_multiplier_keeps_the_predicted_share_on_a_known_input(multiplier, kept):
    """Off-diagonal |S| = 1, 2, …, 12 (signs alternate), a huge diagonal: τ = c·6.5 over the off-diagonal
    cells only, so c = 0.5, 1, 1.5, 2 keep |S| ≥ 3.25, 6.5, 9.75, 13: 9, 6, 3 and 0 of the 12 pairs."""
    n = 4
    off = ~torch.eye(n, dtype=torch.bool)
    s = torch.full((1, 1, n, n), 100.0)
    magnitudes = torch.arange(1, 13, dtype=torch.float32)
    s[0, 0][off] = magnitudes * torch.tensor([1.0, -1.0]).repeat(6)
    keep = CollapseAvoiding(heads=1, multiplier=multiplier)(s)[0, 0]
    assert torch.equal(keep[off], torch.isin(magnitudes, torch.tensor(list(kept), dtype=torch.float32)))
    assert keep.diagonal().all()                                               # the diagonal is handled apart
    assert keep[off].float().mean().item() == len(kept) / 12


def test_collapse_avoiding_running_tau_makes_eval_independent_of_batch_mates():
    ca = CollapseAvoiding(heads=1, momentum=0.5)
    first, second = randn(1, 8, 4, 4, seed=1), 3 * randn(1, 8, 4, 4, seed=2)
    off = ~torch.eye(4, dtype=torch.bool)
    ca(first)
    ca(second)
    expected = 0.5 * first.abs()[:, :, off].mean() + 0.5 * second.abs()[:, :, off].mean()
    torch.testing.assert_close(ca.tau_mean, expected.reshape(1))
    ca.eval()
    alone = ca(second[:, :1])
    assert torch.equal(alone, ca(torch.cat([second[:, :1], 100 * first], 1))[:, :1])
    torch.testing.assert_close(ca.tau_mean, expected.reshape(1))  # eval does not update it
    ca.running = False
    assert not torch.equal(alone, ca(torch.cat([second[:, :1], 100 * first], 1))[:, :1])


# --- combo-ID scores -------------------------------------------------------------------------------

def make_combo(**kw):
    args = dict(n_fields=4, dim=8, size=64, siamese=2, hidden=16, outputs=6)
    args.update(kw)
    torch.manual_seed(0)
    combo = ComboIDScores(**args)
    with torch.no_grad():
        combo.codebooks.weight.normal_()
    return combo


def ids_batch(b=5, n=4, seed=0):
    return torch.randint(-(2**63), 2**63 - 1, (b, n), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("gate_on,b", [("codeword", 5), ("score", 5), ("score", 8)])
def test_combo_scores_equal_the_equations(gate_on, b):
    # gate_on="score" runs the pair MLP on the B·P gathered codewords (B·P = 5·12 < s = 64) or on all s
    combo = make_combo(gate_on=gate_on)
    ids = ids_batch(b=b)
    a_m = combo(ids)
    assert a_m.shape == (6, b, 4, 4)  # (L·H, B, n, n)
    assert torch.all(a_m.diagonal(dim1=-2, dim2=-1) == 0)
    addr = combo.addresses(ids)                                 # (3, B, P)
    rows = combo.codebooks.weight[addr]                         # (3, B, P, d)
    gate = torch.sigmoid((rows[1] * combo.gate_weight[0]).sum(-1) + (rows[2] * combo.gate_weight[1]).sum(-1)
                         + combo.gate_bias)[..., None]
    if gate_on == "codeword":                                   # Eq. 6-8: g·C⁰ through the MLP
        scores = combo.out(torch.relu(combo.pair_mlp(gate * rows[0])))
    else:                                                       # the MLP's output scaled by g, then b₂
        scores = gate * F.linear(torch.relu(combo.pair_mlp(rows[0])), combo.out.weight) + combo.out.bias
    p = 5
    i, j = combo.left[p].item(), combo.right[p].item()
    torch.testing.assert_close(a_m[:, 3, i, j], scores[3, p])
    assert not torch.allclose(a_m[0], a_m[1])                   # one map per layer and head
    if gate_on == "score":
        assert not torch.allclose(a_m, make_combo(gate_on="codeword")(ids))  # b₁ ≠ 0: another function


@pytest.mark.parametrize("options,b", [({}, 8), ({"symmetric": True}, 16), ({"gate_on": "codeword"}, 8), ({}, 2),
                                       ({"diagonal": True}, 8), ({"siamese": 0}, 8)])
def test_combo_scores_on_the_plain_path_equal_the_cpu_functions(monkeypatch, options, b):
    """The ops CUDA, autocast and compile run (plain autograd) give the CPU Functions' values and
    gradients: whole tables (B·P ≥ s) and, at b = 2, gathered codewords."""
    results = []
    for plain in (False, True):
        monkeypatch.setattr(combo_module, "_plain_ops", lambda t: plain)
        combo = make_combo(size=32, **options)
        a_m = combo(ids_batch(b=b))
        (a_m * randn(*a_m.shape, seed=3)).sum().backward()
        results.append([a_m.detach()] + [p.grad for p in combo.parameters()])
    assert all(g is not None and g.abs().sum() > 0 for g in results[0][1:])
    for cpu, plain in zip(*results):
        torch.testing.assert_close(plain, cpu)


@pytest.mark.parametrize("gate_on,b", [("score", 2), ("score", 16), ("codeword", 16)])
def test_sparse_codebooks_gather_and_give_the_dense_gradient_of_the_looked_up_rows(gate_on, b):
    """Sparse codebooks always gather (also when B·P ≥ s): the same maps, and a row-sparse gradient
    equal to the dense one."""
    results = []
    for sparse in (False, True):
        combo = make_combo(size=32, gate_on=gate_on)
        combo.codebooks.sparse = sparse
        a_m = combo(ids_batch(b=b))
        (a_m * randn(*a_m.shape, seed=3)).sum().backward()
        grad = combo.codebooks.weight.grad
        assert grad.is_sparse == sparse
        results.append([a_m.detach(), grad.to_dense()] + [p.grad for n, p in combo.named_parameters()
                                                         if not n.startswith("codebooks")])
    for dense, sparse in zip(*results):
        torch.testing.assert_close(sparse, dense)


def test_gate_gather_and_projection_paths_agree():
    combo = make_combo()
    addr = combo.addresses(ids_batch(b=6))[1:]
    gates, grads = [], []
    for project in (False, True):
        combo.zero_grad()
        projected = codebook_tables(combo.codebooks.weight, combo.size, gate_weight=combo.gate_weight)[1]
        g = combo.gate(addr, projected if project else None)
        (g * torch.arange(g.numel()).view_as(g)).sum().backward()
        gates.append(g.detach())
        grads.append((combo.codebooks.weight.grad.clone(), combo.gate_weight.grad.clone()))
    torch.testing.assert_close(gates[0], gates[1])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("bias,siamese,mlp", [(True, 2, True), (False, 1, True), (True, 2, False),
                                              (True, 0, True)])
def test_codebook_tables_in_blocks_equal_plain_autograd(bias, siamese, mlp):
    """T = W₂ ReLU(W₁ C⁰ᵀ + b₁) and U = C^m W₀^m in blocks of rows (the last one short), values and
    every gradient, the table's gradient written in one piece; rows of unused outputs get zeros."""
    size, d = 50, 8
    codebook = randn((siamese + 1) * size, d).requires_grad_()
    torch.manual_seed(0)
    pair_mlp, out = (torch.nn.Linear(d, 16, bias=bias), torch.nn.Linear(16, 6)) if mlp else (None, None)
    gate_weight = randn(siamese, d, seed=4).requires_grad_() if siamese else None
    params = [codebook] + ([pair_mlp.weight, out.weight] + ([pair_mlp.bias] if bias else []) if mlp else []) \
        + ([gate_weight] if siamese else [])
    results = []
    for block_rows in (None, 16):
        scores, projected = codebook_tables(codebook, size, pair_mlp, out, gate_weight, block_rows=block_rows)
        assert (scores is None) != mlp and (projected is None) != bool(siamese)
        outputs = [t for t in (scores, projected) if t is not None]
        loss = sum((t * randn(*t.shape, seed=5 + i)).sum() for i, t in enumerate(outputs))
        results.append([t.detach() for t in outputs] + list(torch.autograd.grad(loss, params)))
    if mlp:
        expected = F.linear(torch.relu(pair_mlp(codebook[:size])), out.weight).T
        torch.testing.assert_close(results[1][0], expected.detach())
    else:
        assert torch.all(results[1][-2][:size] == 0)                     # no MLP: main rows get no gradient
    if siamese:
        expected = torch.einsum("msd,md->ms", codebook[size:].view(siamese, size, d), gate_weight)
        torch.testing.assert_close(results[1][int(mlp)], expected.detach())
    for plain, blocks in zip(*results):
        torch.testing.assert_close(blocks, plain)


def test_cpu_functions_pass_gradcheck_and_a_retained_graph_backward_twice():
    """float64 gradcheck of the blocked tables and the chunked gather (gated, several chunks, a codebook
    with rows no output reads), and a whole module whose graph is retained runs backward twice."""
    torch.manual_seed(0)
    n, P = 4, 12
    codebook = torch.randn(3 * 10, 3, dtype=torch.float64, requires_grad=True)
    mlp, out = torch.nn.Linear(3, 5).double(), torch.nn.Linear(5, 2).double()
    gate_weight = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    tables = lambda cb, gw: codebook_tables(cb, 10, mlp, out, gw, block_rows=4)  # noqa: E731
    assert torch.autograd.gradcheck(tables, (codebook, gate_weight))
    assert torch.autograd.gradcheck(lambda cb: tables(cb, None)[0], (codebook,))   # siamese rows: zero gradient
    scores = torch.randn(2, 10, dtype=torch.float64, requires_grad=True)
    addr = torch.randint(0, 10, (5, P), generator=torch.Generator().manual_seed(1)).int()
    gate = torch.rand(5, P, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t, g, b: table_scores(t, addr, g, b, n, chunk_pairs=2 * P),
                                    (scores, gate, bias))
    combo = make_combo(size=32)
    loss = combo(ids_batch(b=8)).square().sum()
    loss.backward(retain_graph=True)
    first = combo.codebooks.weight.grad.clone()
    loss.backward()
    torch.testing.assert_close(combo.codebooks.weight.grad, 2 * first)


@pytest.mark.parametrize("gated,diagonal", [(True, False), (False, False), (True, True)])
def test_chunked_pair_scores_equal_plain_autograd(gated, diagonal):
    torch.manual_seed(0)
    P = 25 if diagonal else 20
    table = randn(300, 8).requires_grad_()
    addr = torch.randint(0, 300, (13, P), generator=torch.Generator().manual_seed(1))
    gate = torch.rand(13, P, generator=torch.Generator().manual_seed(2)).requires_grad_() if gated else None
    mlp, out = torch.nn.Linear(8, 16), torch.nn.Linear(16, 6)
    upstream = randn(6, 13, 5, 5, seed=3)
    results = []
    for chunk_pairs in (None, 50):  # plain ops; chunks of 2 samples (7 chunks, the last one short)
        params = [table, mlp.weight, mlp.bias, out.weight, out.bias] + ([gate] if gated else [])
        for p in params:
            p.grad = None
        scores = pair_scores(table, addr, gate, mlp, out, n=5, diagonal=diagonal, chunk_pairs=chunk_pairs)
        (scores * upstream).sum().backward()
        results.append([scores.detach()] + [p.grad.clone() for p in params])
    assert results[0][0].shape == (6, 13, 5, 5)
    assert torch.all(results[1][0].diagonal(dim1=-2, dim2=-1) == 0) != diagonal
    for plain, chunked in zip(*results):
        torch.testing.assert_close(chunked, plain)


def test_symmetric_chunked_pair_scores_equal_plain_and_mirror():
    torch.manual_seed(0)
    n, P = 5, 10                                                 # unordered pairs of 5 fields
    table = randn(300, 8).requires_grad_()
    addr = torch.randint(0, 300, (13, P), generator=torch.Generator().manual_seed(1))
    gate = torch.rand(13, P, generator=torch.Generator().manual_seed(2)).requires_grad_()
    mlp, out = torch.nn.Linear(8, 16), torch.nn.Linear(16, 6)
    upstream = randn(6, 13, n, n, seed=3)                        # not symmetric: both cells' gradients count
    results = []
    for chunk_pairs in (None, 25):
        params = [table, gate, mlp.weight, mlp.bias, out.weight, out.bias]
        for p in params:
            p.grad = None
        scores = pair_scores(table, addr, gate, mlp, out, n=n, chunk_pairs=chunk_pairs, symmetric=True)
        (scores * upstream).sum().backward()
        results.append([scores.detach()] + [p.grad.clone() for p in params])
    a_m = results[1][0]
    torch.testing.assert_close(a_m, a_m.transpose(-1, -2), rtol=0, atol=0)
    assert torch.all(a_m.diagonal(dim1=-2, dim2=-1) == 0) and torch.all(a_m[:, :, 0, 1] != 0)
    e = gate[..., None] * table[addr]
    expected = out(torch.relu(mlp(e))).permute(2, 0, 1)        # (6, 13, P)
    left, right = unordered_pairs(n)
    torch.testing.assert_close(a_m[:, :, left[7], right[7]], expected[:, :, 7].detach())
    for plain, chunked in zip(*results):
        torch.testing.assert_close(chunked, plain)


@pytest.mark.parametrize("gated,diagonal,symmetric,rows", [(True, False, False, 40), (False, False, False, 40),
                                                          (True, True, False, 40), (True, False, True, 40),
                                                          (True, False, False, 1000)])
def test_codebook_scores_equal_pair_scores_when_the_gate_commutes(gated, diagonal, symmetric, rows):
    """The MLP once per codeword (all rows, or the gathered ones when B·P < rows) = once per pair,
    values and gradients, without a gate or with b₁ = 0."""
    n = 5
    P = n * (n - 1) // 2 if symmetric else n * n if diagonal else n * (n - 1)
    table = randn(rows, 8).requires_grad_()
    addr = torch.randint(0, 40, (13, P), generator=torch.Generator().manual_seed(1))
    gate = torch.rand(13, P, generator=torch.Generator().manual_seed(2)).requires_grad_() if gated else None
    torch.manual_seed(0)
    mlp, out = torch.nn.Linear(8, 16, bias=not gated), torch.nn.Linear(16, 6)
    upstream = randn(6, 13, n, n, seed=3)
    params = [table, mlp.weight, out.weight, out.bias] + ([gate] if gated else [mlp.bias])
    results = []
    for scores_of in (lambda: pair_scores(table, addr, gate, mlp, out, n, diagonal, None, symmetric),
                      lambda: codebook_scores(table, addr, gate, mlp, out, n, diagonal=diagonal, symmetric=symmetric,
                                              chunk_pairs=None),
                      lambda: codebook_scores(table, addr, gate, mlp, out, n, diagonal=diagonal, symmetric=symmetric,
                                              chunk_pairs=3 * P)):
        for p in params:
            p.grad = None
        scores = scores_of()
        (scores * upstream).sum().backward()
        results.append([scores.detach()] + [p.grad.clone() for p in params])
    assert torch.all(results[0][0].diagonal(dim1=-2, dim2=-1) == 0) != diagonal
    for reference, result in itertools.product(results[:1], results[1:]):
        for expected, actual in zip(reference, result):
            torch.testing.assert_close(actual, expected)


@pytest.mark.parametrize("symmetric,rows,dtype", [(False, 40, torch.float32), (True, 40, torch.float32),
                                                  (True, 1000, torch.float32), (False, 40, torch.float64)])
def test_codebook_scores_gate_the_mlp_output(symmetric, rows, dtype):
    """With b₁ ≠ 0: A = g·W₂ ReLU(W₁ C[a] + b₁) + b₂, values and gradients against plain autograd."""
    n = 5
    P = n * (n - 1) // 2 if symmetric else n * (n - 1)
    table = randn(rows, 8).to(dtype).requires_grad_()
    addr = torch.randint(0, 40, (13, P), generator=torch.Generator().manual_seed(1)).int()
    gate = torch.rand(13, P, generator=torch.Generator().manual_seed(2)).to(dtype).requires_grad_()
    torch.manual_seed(0)
    mlp, out = torch.nn.Linear(8, 16).to(dtype), torch.nn.Linear(16, 6).to(dtype)
    params = [table, gate, mlp.weight, mlp.bias, out.weight, out.bias]
    upstream = randn(6, 13, n, n, seed=3).to(dtype)
    expected = gate[..., None] * F.linear(torch.relu(mlp(table[addr.long()])), out.weight) + out.bias  # (B, P, O)
    expected = expected.permute(2, 0, 1)
    expected = mirror_to_square(expected, n) if symmetric else pairs_to_square(expected, n)
    reference = torch.autograd.grad((expected * upstream).sum(), params)
    for chunk_pairs in (None, 3 * P):
        scores = codebook_scores(table, addr, gate, mlp, out, n, symmetric=symmetric, chunk_pairs=chunk_pairs)
        assert scores.dtype == dtype
        torch.testing.assert_close(scores, expected)
        for grad, ref in zip(torch.autograd.grad((scores * upstream).sum(), params), reference):
            torch.testing.assert_close(grad, ref)


@pytest.mark.parametrize("size", [32, 4096])                  # B·P = 8·12 ≥ s: whole tables; < s: gathered codewords
def test_combo_scores_under_cpu_bf16_autocast_are_the_fp32_scores(size):
    """CPU autocast leaves the Combo-ID scores in fp32 on the module's CPU Functions: bit-equal."""
    combo = make_combo(size=size)
    ids = ids_batch(b=8)
    exact = combo(ids)
    (grad,) = torch.autograd.grad(exact.square().sum(), combo.codebooks.weight)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        a_m = combo(ids)
    assert a_m.dtype == torch.float32 and torch.equal(a_m, exact)
    a_m.square().sum().backward()
    assert torch.equal(combo.codebooks.weight.grad, grad) and grad.abs().sum() > 0
    if size == 4096:                                            # called directly, the plain ops run in bf16
        addr = combo.addresses(ids)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            direct = codebook_scores(combo.codebooks.weight, addr[0], combo.gate(addr[1:]), combo.pair_mlp,
                                     combo.out, combo.n_fields)
        assert not torch.equal(direct, exact)
        torch.testing.assert_close(direct, exact, rtol=0.05, atol=0.05)


def test_symmetric_combo_hashes_each_unordered_pair_once():
    ordered, symmetric = make_combo(), make_combo(symmetric=True)
    ids = ids_batch()
    assert symmetric.left.numel() == 6 and torch.all(symmetric.left < symmetric.right)
    addr_o, addr_s = ordered.addresses(ids), symmetric.addresses(ids)
    # the unordered pair (i < j) has the ordered pair (i, j)'s key: same addresses in every codebook
    where = {(i, j): p for p, (i, j) in enumerate(zip(ordered.left.tolist(), ordered.right.tolist()))}
    picks = [where[(i, j)] for i, j in zip(symmetric.left.tolist(), symmetric.right.tolist())]
    assert torch.equal(addr_s, addr_o[:, :, picks])
    with torch.no_grad():
        symmetric.load_state_dict(ordered.state_dict())
    a_m = symmetric(ids)
    torch.testing.assert_close(a_m, a_m.transpose(-1, -2))
    upper = torch.triu(torch.ones(4, 4, dtype=torch.bool), 1)
    torch.testing.assert_close(a_m[..., upper], ordered(ids)[..., upper])
    with pytest.raises(ValueError, match="diagonal"):
        make_combo(symmetric=True, diagonal=True)


def test_all_codebooks_receive_gradients():
    combo = make_combo(size=4096)
    ids = ids_batch(b=3)
    combo(ids).square().sum().backward()
    grad = combo.codebooks.weight.grad
    addr = combo.addresses(ids)
    for m in range(3):
        touched = grad[addr[m].flatten()]
        assert touched.abs().sum(-1).gt(0).all(), f"codebook {m} rows got no gradient"
    untouched = torch.ones(len(grad), dtype=torch.bool)
    untouched[addr.flatten()] = False
    assert torch.all(grad[untouched] == 0)
    assert combo.gate_weight.grad.abs().sum() > 0


def test_without_siamese_no_gate_and_diagonal_pairs_when_kept():
    plain = make_combo(siamese=0)
    assert plain.codebooks.count == 1 and not hasattr(plain, "gate_weight")
    kept = make_combo(diagonal=True)
    a_m = kept(ids_batch())
    assert kept.left.numel() == 16 and torch.all(a_m.diagonal(dim1=-2, dim2=-1) != 0)


def test_same_ids_in_other_fields_give_other_addresses():
    combo = make_combo(size=2**20)
    ids = torch.tensor([[11, 22, 33, 44]])
    addr = combo.addresses(ids)[0, 0]                          # main addresses of the 12 ordered pairs
    assert len(set(addr.tolist())) == 12                       # (i, j) and (j, i) differ too


# --- fusion and FM -------------------------------------------------------------------------------

def test_fusions():
    a_m, a_c = randn(2, 2, 5, 5, seed=1), randn(2, 2, 5, 5, seed=2)
    torch.testing.assert_close(ScoreFusion("multiply", 5, 2)(a_m, a_c), a_m)  # zero-init: pure Combo-ID
    total = ScoreFusion("sum", 5, 2)
    with torch.no_grad():
        total.alpha.fill_(0.25), total.beta.fill_(2.0)
    torch.testing.assert_close(total(a_m, a_c), 0.25 * a_m + 2.0 * a_c)
    gated = ScoreFusion("gate", 5, 2)(a_m, a_c)
    lo, hi = torch.minimum(a_m, a_c), torch.maximum(a_m, a_c)
    assert torch.all(gated >= lo - 1e-6) and torch.all(gated <= hi + 1e-6)
    with pytest.raises(ValueError, match="fusion must be one of"):
        ScoreFusion("concat", 5, 2)


def test_gate_and_multiply_fusions_equal_eq_16_and_17_with_explicit_weights():
    """Row-wise per-head weights act on each query row A_c[h, b, i, :]:
    (A_c W)[h, b, i, k] = Σ_j A_c[h, b, i, j] W[h, j, k].

        gate (Eq. 16):      G = σ(A_c W_g + b_g),  (1 − G)⊙A_m + G⊙A_c
        multiply (Eq. 17):  2σ(A_c W + b)⊙A_m + ReLU(A_c W_a + b_a) W_b + b_b
    """
    H, B, n, hidden = 2, 3, 5, 4
    a_m, a_c = randn(H, B, n, n, seed=1), randn(H, B, n, n, seed=2)
    rows = lambda a, w, b: torch.einsum("hbij,hjk->hbik", a, w) + b[:, None]   # noqa: E731  b (H, 1, o)
    gate = ScoreFusion("gate", n, H)
    multiply = ScoreFusion("multiply", n, H, hidden)
    with torch.no_grad():
        for i, p in enumerate([*gate.parameters(), *multiply.parameters()]):
            p.copy_(randn(*p.shape, seed=10 + i))                               # every weight explicit, non-zero
    with torch.no_grad():
        G = torch.sigmoid(rows(a_c, gate.gate_weight, gate.gate_bias))
        torch.testing.assert_close(gate(a_m, a_c), (1 - G) * a_m + G * a_c)
        revise = 2 * torch.sigmoid(rows(a_c, multiply.revise_weight, multiply.revise_bias))
        g = rows(torch.relu(rows(a_c, multiply.g_in_weight, multiply.g_in_bias)), multiply.g_out_weight,
                 multiply.g_out_bias)
        torch.testing.assert_close(multiply(a_m, a_c), revise * a_m + g)
        # a row's gate sees only that row: changing row 0 of A_c leaves the other rows' outputs alone
        other = a_c.clone()
        other[:, :, 0] += 1.0
        assert torch.equal(gate(a_m, other)[:, :, 1:], gate(a_m, a_c)[:, :, 1:])
        assert (gate(a_m, other)[:, :, 0] - gate(a_m, a_c)[:, :, 0]).abs().max() > 1e-2


def test_fm_interaction_equals_pairwise_sum():
    e = randn(3, 5, 4)
    brute = sum((e[:, i] * e[:, j]).sum(-1) for i, j in itertools.combinations(range(5), 2))
    torch.testing.assert_close(fm_interaction(e), brute)


# --- edges the mutation run found unpinned (benchmarks/results/mutation.md) -------------------------

def test_collapse_avoiding_keeps_scores_tied_with_the_threshold():
    """keep = |S| ≥ τ: when every off-diagonal |S| equals the mean (values exact in binary, so the
    float32 mean is exact too), every pair is kept, whatever its sign: nothing collapses to empty rows."""
    n = 4
    off = ~torch.eye(n, dtype=torch.bool)
    s = torch.full((2, 3, n, n), 0.5)
    s[:, :, off] *= torch.tensor([1.0, -1.0]).repeat(6)
    s[1] *= 4                                                                  # per head: τ = 0.5 and 2.0
    assert CollapseAvoiding(heads=2)(s).all()


def test_collapse_avoiding_defaults_are_the_models():
    """CollapseAvoiding(heads) = DEA's defaults: c = 1 (τ is the plain mean) and a running τ with
    momentum 0.99 that eval uses."""
    from dea_model.models.dea import DEAConfig

    ca = CollapseAvoiding(heads=1)
    cfg = DEAConfig()
    assert (ca.multiplier, ca.momentum, ca.running) == (cfg.tau_multiplier, cfg.tau_momentum, cfg.tau_running) \
        == (1.0, 0.99, True)
    first, second = randn(1, 4, 5, 5, seed=3), 5 * randn(1, 4, 5, 5, seed=4)
    off = ~torch.eye(5, dtype=torch.bool)
    mean1, mean2 = first.abs()[:, :, off].mean(), second.abs()[:, :, off].mean()
    assert torch.equal(ca(first)[:, :, off], first.abs()[:, :, off] >= mean1)  # c = 1
    ca(second)
    torch.testing.assert_close(ca.tau_mean, (0.99 * mean1 + 0.01 * mean2).reshape(1))


def test_collapse_avoiding_threshold_of_bf16_scores():
    """Under bf16 autocast S is bf16: the sums behind τ run in float32, so a large diagonal (a token's
    similarity with itself) cannot swamp the off-diagonal mean (bf16 would round 1 + 1 + 1 + 256 to 260:
    τ = 1.5, both pairs masked); τ is then compared in the scores' precision (254.5 rounds to 254)."""
    for rows, in [([[1, 1], [-1, 256]],), ([[1, 254], [-255, 1]],)]:
        s = torch.tensor([[rows]], dtype=torch.bfloat16)                       # (H=1, B=1, 2, 2)
        assert CollapseAvoiding(heads=1)(s).all()
