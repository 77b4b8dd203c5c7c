"""Models: registry and hyperparameter contract, DEA / Transformer / AutoInt written out by hand for every
ablation flag, gradients, overfitting, serving independence."""

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score

from dea_model.layers.hashing import codebook_seeds
from dea_model.models import REGISTRY, available, build_model
from features.hashing import combo_hash
from helpers import N_FIELDS, SMALL, ids_batch  # shared with other test files


@pytest.fixture(autouse=True, scope="module")
def one_thread(torch_one_thread):
    """Every test here runs torch single-threaded (see conftest)."""


def build(name, seed=0, **overrides):
    torch.manual_seed(seed)
    return build_model(name, N_FIELDS, **{**SMALL[name], **overrides})


def randomise(model, seed=1, scale=0.3):
    """Perturb every parameter so zero-initialised parts (fusion W, g's output) take effect."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g))
    return model


# --- registry and hyperparameters -------------------------------------------------------------------

def test_registry_lists_the_models():
    assert {"autoint", "dea", "fm", "transformer"} <= set(available()) and available() == sorted(available())
    assert all(REGISTRY[name].name == name for name in available())
    with pytest.raises(ValueError, match="unknown model 'dcn'; available: .*autoint, dea"):
        build_model("dcn", 4)


def test_unknown_or_invalid_hyperparameters_are_named():
    with pytest.raises(ValueError, match="model 'dea' has no hyperparameter 'heads_count'"):
        build_model("dea", 4, heads_count=2)
    with pytest.raises(ValueError, match="model 'dea': fusion='concat' is not one of"):
        build_model("dea", 4, fusion="concat")
    with pytest.raises(ValueError, match="model 'transformer': diag='none'"):
        build_model("transformer", 4, diag="none")
    with pytest.raises(ValueError, match="attention_dim 30 is not a multiple of heads 4"):
        build_model("autoint", 4, attention_dim=30, heads=4)


NON_DEFAULT = {  # flags off their defaults, including those that keep every parameter's shape
    "dea": dict(fusion="gate", siamese=1, diag="neg_inf", tau_multiplier=1.5, tau_momentum=0.9, tau_running=False,
                symmetric=True, gate_on="codeword", layer_norm=True, parallel_dnn=True),
    "transformer": dict(diag="zero", ffn_dim=32),
    "autoint": dict(scale=True, first_order=True, layer_norm=True),
    "fm": {},
}


@pytest.mark.parametrize("name", sorted(SMALL))
def test_hparams_rebuild_the_same_model(name):
    model = randomise(build(name, **NON_DEFAULT[name]))
    hparams = json.loads(json.dumps(model.hparams))
    assert hparams == model.hparams and "embedding_dim" in hparams
    assert all(hparams[k] == v for k, v in NON_DEFAULT[name].items())
    torch.manual_seed(0)
    clone = build_model(model.name, model.n_fields, **hparams)
    assert clone.cfg == model.cfg          # a flag that keeps the shapes is caught here, not by load_state_dict
    clone.load_state_dict(model.state_dict())
    ids = ids_batch()
    model.eval(), clone.eval()
    torch.testing.assert_close(clone(ids), model(ids))


@pytest.mark.parametrize("name", sorted(SMALL))
def test_forward_shape_and_param_groups(name):
    model = build(name)
    logits = model(ids_batch(b=5))
    assert logits.shape == (5,) and logits.dtype == torch.float32 and torch.isfinite(logits).all()
    with pytest.raises(ValueError, match=r"expects ids of shape \(B, 6\)"):
        model(ids_batch(b=5, n=5))
    groups = model.param_groups(weight_decay=1e-4, embedding_weight_decay=1e-6)
    by_name = {g["name"]: g for g in groups}
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    assert {id(p) for p in by_name["embedding"]["params"]} == {id(p) for p in model.embedding_parameters()}
    assert by_name["embedding"]["weight_decay"] == 1e-6
    names = {id(p): n for n, p in model.named_parameters()}
    assert all(p.dim() < 2 or names[id(p)].endswith("bias") for p in by_name["no_decay"]["params"])
    assert all(p.dim() >= 2 for p in by_name.get("decay", {"params": []})["params"])
    torch.optim.AdamW(groups, lr=1e-3)  # accepted as is


def test_dea_embedding_group_holds_tables_and_codebooks():
    model = build("dea")
    emb = model.embedding_parameters()
    assert {id(p) for p in emb} == {id(model.embedding.weight), id(model.combo.codebooks.weight)}


# --- DEA ablations --------------------------------------------------------------------------------

ABLATIONS = [
    dict(combo=False),
    dict(siamese=0),
    dict(collapse=False),
    dict(fusion="sum"),
    dict(fusion="gate"),
    dict(diag="neg_inf"),
    dict(diag="keep"),
    dict(tau_multiplier=2.0),
    dict(symmetric=True),
    dict(gate_on="codeword"),
    dict(combo=False, collapse=False),
    dict(parallel_dnn=True),
    dict(qk_norm=False),
    dict(first_order=True),
]


@pytest.mark.parametrize("flags", ABLATIONS, ids=lambda f: ",".join(f"{k}={v}" for k, v in f.items()))
def test_every_dea_flag_changes_the_output(flags):
    base = randomise(build("dea"))
    variant = build("dea", **flags)
    shared = {k: v for k, v in base.state_dict().items() if k in variant.state_dict()
              and variant.state_dict()[k].shape == v.shape}
    variant.load_state_dict(shared, strict=False)
    ids = ids_batch(b=32)
    out_base, out_variant = base(ids), variant(ids)
    assert torch.isfinite(out_variant).all()
    assert (out_base - out_variant).abs().max() > 1e-4, f"{flags} did not change the output"


# --- DEA, the Transformer and AutoInt written out by hand -------------------------------------------
#
# Each reference below recomputes a model's forward pass from its parameters, in float64, with plain
# tensor ops and the equations of the model's docstring (dea.py, layers/attention.py, combo.py, fusion.py):
# embeddings by row index, Combo-ID addresses by the spec hash (features.hashing.combo_hash), per-head
# Q/K/V/R slices of the fused projection, the diagonal, τ and the mask, the fusion, softmax·V and the
# residual. The module must equal it to 1e-6 (it does to ~1e-15 on the blocks' outputs).

DD = torch.float64
HAND_N = 4
HAND_DEA = dict(embedding_dim=8, embedding_rows=64, codebook_size=64, layers=2, heads=2, attention_dim=8,
                pair_hidden=8, fusion_hidden=8, dnn_hidden=(16,))


def hand_ids(b=2, seed=0):
    return ids_batch(b=b, n=HAND_N, seed=seed)


def hand_model(name, **hparams):
    """A tiny float64 model, every parameter perturbed (zero-initialised fusion weights take effect)."""
    torch.manual_seed(0)
    return randomise(build_model(name, HAND_N, **hparams)).double().eval()


def run_blocks(model, ids, blocks):
    """(logits, output of the last block) of the module itself."""
    seen = []
    handle = blocks[-1].register_forward_hook(lambda module, args, out: seen.append(out))
    try:
        with torch.no_grad():
            logits = model(ids)
    finally:
        handle.remove()
    return logits, seen[0]


def assert_equal_by_hand(actual, expected):
    torch.testing.assert_close(actual, expected.to(actual.dtype), atol=1e-6, rtol=1e-6)


def embed_by_hand(table, ids, rows):
    """Field f's ID x → row f·m + (x mod m) of the one (n·m, d) table."""
    return table.to(DD)[ids.remainder(rows) + torch.arange(ids.shape[1]) * rows]


def softmax_or_zero(logits):
    """softmax over the last dim; a row with no finite logit attends to nothing (zeros, not NaN)."""
    alive = torch.isfinite(logits).any(-1, keepdim=True)
    return torch.where(alive, torch.softmax(logits.masked_fill(~alive, 0.0), -1), 0.0), alive


def combo_by_hand(model, ids):
    """A_m (L, H, B, n, n), Eq. 4-10: for each pair (i, j) and codebook m, a^m = MurmurHash3(x_i, x_j; s_m) mod s;
    g = σ(Σ_m W₀^m·C^m[a^m] + b₀); A = g·W₂ ReLU(W₁ C⁰[a⁰] + b₁) + b₂ (gate_on=codeword:
    A = W₂ ReLU(W₁ g·C⁰[a⁰] + b₁) + b₂); 0 on the diagonal unless kept; symmetric: pairs i < j mirrored."""
    c, combo = model.cfg, model.combo
    B, n = ids.shape
    s, k = c.codebook_size, c.siamese
    seeds = codebook_seeds(c.codebook_seed, k + 1)
    C = combo.codebooks.weight.to(DD)
    W1, b1 = combo.pair_mlp.weight.to(DD), combo.pair_mlp.bias.to(DD)
    W2, b2 = combo.out.weight.to(DD), combo.out.bias.to(DD)
    if c.symmetric:
        pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    else:
        pairs = [(i, j) for i in range(n) for j in range(n) if i != j or c.diag == "keep"]
    A = torch.zeros(c.layers * c.heads, B, n, n, dtype=DD)
    for i, j in pairs:
        hashes = [combo_hash(ids[:, i].numpy(), ids[:, j].numpy(), seed).astype(np.int64) for seed in seeds]
        addr = [m * s + torch.from_numpy(h % s) for m, h in enumerate(hashes)]         # codebook m at rows m·s
        rows = [C[a] for a in addr]                                                   # (B, d) each
        g = torch.ones(B, 1, dtype=DD)
        if k:
            W0 = combo.gate_weight.to(DD)
            g = torch.sigmoid(sum(rows[m] @ W0[m - 1] for m in range(1, k + 1)) + combo.gate_bias.to(DD))[:, None]
        if c.gate_on == "codeword":
            a = torch.relu((g * rows[0]) @ W1.T + b1) @ W2.T + b2
        else:
            a = g * (torch.relu(rows[0] @ W1.T + b1) @ W2.T) + b2                    # (B, L·H)
        A[:, :, i, j] = a.T
        if c.symmetric:
            A[:, :, j, i] = a.T
    return A.view(c.layers, c.heads, B, n, n)


def fuse_by_hand(fusion, h, a_m, a_c):
    """Eq. 15-17 for head h, row-wise weights W[h] (n×n) acting on each query row of A_c."""
    w = {name: t.to(DD) for name, t in fusion.named_parameters()}
    if fusion.kind == "sum":
        return w["alpha"] * a_m + w["beta"] * a_c
    if fusion.kind == "gate":
        G = torch.sigmoid(a_c @ w["gate_weight"][h] + w["gate_bias"][h])
        return (1 - G) * a_m + G * a_c
    revise = 2 * torch.sigmoid(a_c @ w["revise_weight"][h] + w["revise_bias"][h])
    g = torch.relu(a_c @ w["g_in_weight"][h] + w["g_in_bias"][h]) @ w["g_out_weight"][h] + w["g_out_bias"][h]
    return revise * a_m + g


def dea_by_hand(model, ids, diag=None):
    """DEA's logits and last block output by hand; ``diag`` overrides cfg.diag for S (keep / zero / neg_inf).

    Per layer and head: S = Q Kᵀ/√d_h (Q, K layer-normalised with qk_norm), its diagonal set to 0 (zero, neg_inf) or kept; τ = c·mean_{b, i≠j}|S|,
    keep = |S| ≥ τ off the diagonal; A_c = S⊙keep (0 fill) in the fusion with A_m, S with −∞ where
    masked alone; neg_inf: the fused diagonal −∞; X ← ReLU(concat_h softmax(·)V_h + X W_R) (+ LayerNorm).
    """
    c = model.cfg
    diag = diag or c.diag
    B, n = ids.shape
    H, d_a = c.heads, c.attention_dim
    d_h = d_a // H
    eye = torch.eye(n, dtype=torch.bool)
    info = {"kept": [], "margin": math.inf, "empty_rows": 0, "rows": 0}
    e = embed_by_hand(model.embedding.weight, ids, c.embedding_rows)
    a_m = combo_by_hand(model, ids) if c.combo else None
    x = e
    for l, block in enumerate(model.blocks):
        has_scores = c.collapse or not c.combo
        parts = block.attn.proj.weight.to(DD).split(d_a)
        W_q, W_k, W_v, W_r = parts if has_scores else (None, None, *parts)
        heads = []
        for h in range(H):
            cols = slice(h * d_h, (h + 1) * d_h)
            if has_scores:
                q, k = x @ W_q[cols].T, x @ W_k[cols].T
                if c.qk_norm:                                                         # per-head LayerNorm of Q, K
                    q, k = (F.layer_norm(t, (d_h,), norm.weight.to(DD), norm.bias.to(DD), norm.eps)
                            for t, norm in ((q, block.attn.q_norm), (k, block.attn.k_norm)))
                S = q @ k.transpose(1, 2) / math.sqrt(d_h)
                if diag != "keep":
                    S = S.masked_fill(eye, 0.0)                                       # S − diag(S)
            if c.collapse:
                tau = c.tau_multiplier * S.abs()[:, ~eye].mean()
                keep = (S.abs() >= tau) | eye
                info["kept"].append(keep[:, ~eye].double().mean().item())
                info["margin"] = min(info["margin"], (S.abs()[:, ~eye] - tau).abs().min().item())
                if c.combo:
                    logits = fuse_by_hand(block.fusion, h, a_m[l, h], S * keep)
                else:
                    logits = S.masked_fill(~keep, -math.inf)
            else:
                logits = a_m[l, h] if c.combo else S
            if diag == "neg_inf":
                logits = logits.masked_fill(eye, -math.inf)
            p, alive = softmax_or_zero(logits)
            info["empty_rows"] += int((~alive).sum())
            info["rows"] += alive.numel()
            heads.append(p @ (x @ W_v[cols].T))
        x = torch.relu(torch.cat(heads, -1) + x @ W_r.T)
        if c.layer_norm:
            x = F.layer_norm(x, (d_a,), block.norm.weight.to(DD), block.norm.bias.to(DD))
    logits = model.head(x.flatten(1)).squeeze(-1)
    if c.parallel_dnn:
        logits = logits + model.parallel_dnn(e.flatten(1)).squeeze(-1)
    if c.first_order:
        logits = logits + model.first_order(ids).sum((1, 2))
    return logits, x, info


HAND_DEA_CASES = [{}] + ABLATIONS + [
    dict(collapse=False, diag="keep"),                          # Combo-ID attention over all n² pairs
    dict(combo=False, collapse=False, diag="keep"),             # plain attention
    dict(combo=False, diag="neg_inf", tau_multiplier=1.5),      # rows with nothing left
    dict(layer_norm=True),
    dict(qk_norm=False),                                        # the scores before issue 21
    dict(combo=False, collapse=False, qk_norm=False),
]


def flag_id(flags):
    return ",".join(f"{k}={v}" for k, v in flags.items()) or "default"


@pytest.mark.parametrize("flags", HAND_DEA_CASES, ids=flag_id)
def test_dea_equals_its_equations_by_hand(flags):
    """DEA's output is softmax(fuse(A_m, A_c))·V + R as written out above, for every flag, and S's diagonal
    is removed: the same computation with S's diagonal kept (or, for diag=keep, zeroed) differs by 5000× the
    tolerance — the planted bug that dropped ``s.diagonal(...).zero_()`` fails here."""
    model = hand_model("dea", **{**HAND_DEA, **flags})
    c, ids = model.cfg, hand_ids()
    logits, x = run_blocks(model, ids, model.blocks)
    with torch.no_grad():
        expected_logits, expected_x, info = dea_by_hand(model, ids)
        assert_equal_by_hand(x, expected_x)
        assert_equal_by_hand(logits, expected_logits)
        if c.combo:                                             # the module's A_m: the hashed pairs, diagonal 0
            assert_equal_by_hand(model.combo(ids), combo_by_hand(model, ids).flatten(0, 1))
        if c.collapse:                                          # the mask bites, and no score sits on τ
            assert all(kept < 1 for kept in info["kept"]) and any(kept > 0 for kept in info["kept"])
            assert info["margin"] > 1e-6
        if c.combo and not c.collapse and c.diag != "neg_inf":
            return                                              # S is not computed: no diagonal of S to remove
        other = {"zero": "keep", "keep": "zero", "neg_inf": "zero"}[c.diag]
        _, other_x, _ = dea_by_hand(model, ids, diag=other)
        assert (other_x - expected_x).abs().max() > 5e-3, f"diag={c.diag} and {other} agree: the test is vacuous"
    if flags.get("tau_multiplier") == 1.5:
        assert 0 < info["empty_rows"] < info["rows"] and torch.isfinite(logits).all()


def test_dea_symmetric_is_the_ordered_model_on_mirrored_scores():
    """symmetric=True = the ordered model fed A_m[i, j] = A_m[j, i] = its own A_m[min(i, j), max(i, j)]."""
    ordered = hand_model("dea", **HAND_DEA)
    symmetric = hand_model("dea", **HAND_DEA, symmetric=True)
    symmetric.load_state_dict(ordered.state_dict())
    ids = hand_ids()
    with torch.no_grad():
        a_m = ordered.combo(ids)
        assert (a_m - a_m.transpose(-1, -2)).abs().max() > 1e-2          # ordered pairs: not symmetric
        upper = torch.ones(HAND_N, HAND_N, dtype=torch.bool).triu(1)
        mirrored = torch.where(upper, a_m, a_m.transpose(-1, -2))
        torch.testing.assert_close(symmetric.combo(ids), mirrored, atol=1e-12, rtol=0)
        ordered.combo.forward = lambda ids: mirrored
        torch.testing.assert_close(symmetric(ids), ordered(ids), atol=1e-12, rtol=0)


def test_dea_without_combo_and_collapse_is_autoint_attention_with_scaling():
    """combo=False, collapse=False, diag=keep, qk_norm=False is AutoInt's interacting layer (scale=True) on the
    same weights."""
    dea = hand_model("dea", **HAND_DEA, combo=False, collapse=False, diag="keep", qk_norm=False)
    autoint = hand_model("autoint", embedding_dim=8, embedding_rows=64, layers=2, heads=2, attention_dim=8,
                         dnn_hidden=(), scale=True)
    autoint.load_state_dict({**autoint.state_dict(), **{k: v for k, v in dea.state_dict().items()
                                                        if k.startswith("embedding.")},
                             **{k.replace("blocks.", "layers."): v for k, v in dea.state_dict().items()
                                if k.startswith("blocks.")}})
    ids = hand_ids()
    _, x_dea = run_blocks(dea, ids, dea.blocks)
    _, x_autoint = run_blocks(autoint, ids, autoint.layers)
    torch.testing.assert_close(x_dea, x_autoint, atol=1e-12, rtol=0)


def transformer_by_hand(model, ids, diag=None):
    """X ← LN₁(X + W_O concat_h softmax(diag_op(Q_h K_hᵀ/√d_h)) V_h + b_O);  X ← LN₂(X + W₂ GELU(W₁ X + b₁) + b₂)."""
    c = model.cfg
    diag = diag or c.diag
    n, d, H = ids.shape[1], c.embedding_dim, c.heads
    d_h = d // H
    eye = torch.eye(n, dtype=torch.bool)
    wb = lambda m: (m.weight.to(DD), m.bias.to(DD))  # noqa: E731
    x = embed_by_hand(model.embedding.weight, ids, c.embedding_rows)
    for block in model.blocks:
        W_q, W_k, W_v = block.attn.proj.weight.to(DD).split(d)
        heads = []
        for h in range(H):
            cols = slice(h * d_h, (h + 1) * d_h)
            S = (x @ W_q[cols].T) @ (x @ W_k[cols].T).transpose(1, 2) / math.sqrt(d_h)
            if diag != "keep":
                S = S.masked_fill(eye, 0.0 if diag == "zero" else -math.inf)
            heads.append(torch.softmax(S, -1) @ (x @ W_v[cols].T))
        x = F.layer_norm(x + F.linear(torch.cat(heads, -1), *wb(block.out)), (d,), *wb(block.norm1))
        ffn = F.linear(F.gelu(F.linear(x, *wb(block.ffn[0]))), *wb(block.ffn[2]))
        x = F.layer_norm(x + ffn, (d,), *wb(block.norm2))
    return model.head(x.flatten(1)).squeeze(-1), x


@pytest.mark.parametrize("diag", ["keep", "zero", "neg_inf"])
def test_transformer_equals_its_equations_by_hand(diag):
    """The vanilla attention path with and without its diagonal: each mode equals its equations, and the
    other two modes give outputs far from it (so a mode that ignored ``diag`` fails)."""
    model = hand_model("transformer", embedding_dim=8, embedding_rows=64, layers=2, heads=2, ffn_dim=16,
                       dnn_hidden=(16,), diag=diag)
    ids = hand_ids()
    logits, x = run_blocks(model, ids, model.blocks)
    with torch.no_grad():
        expected_logits, expected_x = transformer_by_hand(model, ids)
        assert_equal_by_hand(x, expected_x)
        assert_equal_by_hand(logits, expected_logits)
        for other in {"keep", "zero", "neg_inf"} - {diag}:
            assert (transformer_by_hand(model, ids, other)[1] - expected_x).abs().max() > 0.1


def autoint_by_hand(model, ids):
    """X ← ReLU(concat_h softmax(Q_h K_hᵀ [/√d_h]) V_h + X W_R) (+ LN);
    ŷ = w·flatten(X_L) + DNN(flatten(E)) [+ Σ_i w_{x_i}]."""
    c = model.cfg
    d_h = c.attention_dim // c.heads
    e = embed_by_hand(model.embedding.weight, ids, c.embedding_rows)
    x = e
    for layer in model.layers:
        W_q, W_k, W_v, W_r = layer.attn.proj.weight.to(DD).split(c.attention_dim)
        heads = []
        for h in range(c.heads):
            cols = slice(h * d_h, (h + 1) * d_h)
            S = (x @ W_q[cols].T) @ (x @ W_k[cols].T).transpose(1, 2) / (math.sqrt(d_h) if c.scale else 1.0)
            heads.append(torch.softmax(S, -1) @ (x @ W_v[cols].T))
        x = torch.relu(torch.cat(heads, -1) + x @ W_r.T)
        if c.layer_norm:
            x = F.layer_norm(x, (c.attention_dim,), layer.norm.weight.to(DD), layer.norm.bias.to(DD))
    logits = F.linear(x.flatten(1), model.attn_out.weight.to(DD), model.attn_out.bias.to(DD)).squeeze(-1)
    if model.dnn is not None:
        logits = logits + model.dnn(e.flatten(1)).squeeze(-1)
    if c.first_order:
        logits = logits + embed_by_hand(model.first_order.weight, ids, c.embedding_rows).sum((1, 2))
    return logits, x


@pytest.mark.parametrize("flags", [{}, dict(scale=True), dict(first_order=True), dict(layer_norm=True)], ids=flag_id)
def test_autoint_flags_equal_their_equations_by_hand(flags):
    hp = dict(embedding_dim=8, embedding_rows=64, layers=2, heads=2, attention_dim=8, dnn_hidden=(16,))
    model = hand_model("autoint", **hp, **flags)
    ids = hand_ids()
    logits, x = run_blocks(model, ids, model.layers)
    with torch.no_grad():
        expected_logits, expected_x = autoint_by_hand(model, ids)
        assert_equal_by_hand(x, expected_x)
        assert_equal_by_hand(logits, expected_logits)
        if flags:                                              # the flag matters on this input
            base = hand_model("autoint", **hp)
            base.load_state_dict(model.state_dict(), strict=False)
            assert (autoint_by_hand(base, ids)[0] - expected_logits).abs().max() > 1e-3


def test_dea_parallel_dnn_adds_a_dnn_on_the_raw_embeddings():
    plus = randomise(build("dea", parallel_dnn=True)).eval()
    base = build("dea").eval()
    base.load_state_dict({k: v for k, v in plus.state_dict().items() if not k.startswith("parallel_dnn.")})
    ids = ids_batch(b=16)
    with torch.no_grad():
        expected = base(ids) + plus.parallel_dnn(plus.embedding(ids).flatten(1)).squeeze(-1)
        torch.testing.assert_close(plus(ids), expected)


def test_dea_first_order_adds_a_scalar_per_id():
    wide = randomise(build("dea", first_order=True)).eval()
    base = build("dea").eval()
    base.load_state_dict({k: v for k, v in wide.state_dict().items() if not k.startswith("first_order.")})
    ids = ids_batch(b=16)
    with torch.no_grad():
        torch.testing.assert_close(wide(ids), base(ids) + wide.first_order(ids).sum((1, 2)))


def test_a_dea_saved_before_qk_norm_loads_as_it_was_trained():
    from dea_model.models import saved_hparams

    assert saved_hparams("dea", {"layers": 2})["qk_norm"] is False
    assert build("dea").cfg.qk_norm and isinstance(build("dea").blocks[0].attn.q_norm, torch.nn.LayerNorm)


def test_dea_codebooks_and_every_parameter_receive_gradients():
    model = randomise(build("dea"))
    F.binary_cross_entropy_with_logits(model(ids_batch(b=32)), torch.rand(32).round()).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert missing == []
    codebook_grad = model.combo.codebooks.weight.grad.view(3, 4096, -1)
    for m in range(3):
        assert codebook_grad[m].abs().sum() > 0, f"codebook {m} got no gradient"


def test_dea_without_rows_left_is_finite():
    model = build("dea", combo=False, diag="neg_inf", tau_multiplier=1e6)  # masks every off-diagonal score
    ids = ids_batch()
    out = model(ids)
    out.sum().backward()
    assert torch.isfinite(out).all()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_dea_eval_predictions_do_not_depend_on_batch_mates():
    model = randomise(build("dea"))
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    for seed in range(3):  # train steps fill the running τ
        F.binary_cross_entropy_with_logits(model(ids_batch(b=32, seed=seed)), torch.ones(32)).backward()
        opt.step(), opt.zero_grad()
    model.eval()
    with torch.no_grad():
        query = ids_batch(b=4, seed=10)
        alone = model(query)
        crowd = model(torch.cat([query, ids_batch(b=60, seed=11)]))[:4]
        torch.testing.assert_close(alone, crowd)
        model.blocks[0].collapse.running = False  # the batch statistic alone would leak batch-mates
        assert not torch.allclose(model(query), model(torch.cat([query, ids_batch(b=60, seed=11)]))[:4])


def test_dea_runs_under_bf16_autocast():
    model = randomise(build("dea"))
    with torch.no_grad():
        exact = model(ids_batch())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(ids_batch())
    out.float().sum().backward()
    assert torch.isfinite(out).all()
    assert (out.float() - exact).abs().max() < 0.1          # bf16 rounding (0.02 measured), logits of std ~1
    assert torch.isfinite(model.combo.codebooks.weight.grad).all()


# --- capacity: overfit a tiny dataset with a local training loop --------------------------------

@pytest.mark.parametrize("name", sorted(SMALL))
def test_overfits_tiny_dataset(name):
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 40, (256, N_FIELDS), generator=g) * 1_000_003 + torch.arange(N_FIELDS)
    labels = (torch.rand(256, generator=g) < 0.5).float()  # random labels: only memorisation fits them
    model = build(name)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(60):
        loss = F.binary_cross_entropy_with_logits(model(ids), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        assert roc_auc_score(labels.numpy(), model(ids).numpy()) > 0.99


# --- edges the mutation run found unpinned (benchmarks/results/mutation.md) -------------------------

@pytest.mark.parametrize("key", ["embedding_dim", "embedding_rows", "layers", "heads", "attention_dim",
                                 "codebook_size", "pair_hidden", "tau_multiplier", "fusion_hidden"])
def test_dea_config_names_a_non_positive_hyperparameter(key):
    with pytest.raises(ValueError, match=rf"^model 'dea': {key} must be > 0, got 0$"):
        build_model("dea", 4, **{key: 0})


@pytest.mark.parametrize("overrides, message", [
    (dict(diag="none"), r"^model 'dea': diag='none' is not one of \('keep', 'zero', 'neg_inf'\)$"),
    (dict(gate_on="pair"), r"^model 'dea': gate_on='pair' is not one of \('score', 'codeword'\)$"),
    (dict(symmetric=True, diag="keep"), r"^model 'dea': symmetric=True mirrors the Combo-ID scores around a "
                                         r"removed diagonal; use diag=zero or neg_inf$"),
    (dict(siamese=-1), r"^model 'dea': siamese must be ≥ 0, got -1$"),
    (dict(attention_dim=10, heads=3), r"^model 'dea': attention_dim 10 is not a multiple of heads 3$"),
])
def test_dea_config_errors_say_what_is_wrong(overrides, message):
    with pytest.raises(ValueError, match=message):
        build_model("dea", 4, **overrides)
    assert build_model("dea", 4, symmetric=True, diag="neg_inf").cfg.symmetric   # symmetric is fine without keep


def test_dea_blocks_get_the_configs_tau_fusion_and_dropout_settings():
    model = build("dea", tau_multiplier=1.5, tau_momentum=0.9, tau_running=False, fusion_hidden=5, dropout=0.25,
                  parallel_dnn=True)
    for block in model.blocks:
        assert (block.collapse.multiplier, block.collapse.momentum, block.collapse.running) == (1.5, 0.9, False)
        assert block.fusion.g_in_weight.shape[-1] == 5                    # the multiply fusion's hidden width
    for dnn in (model.head, model.parallel_dnn):
        assert [m.p for m in dnn if isinstance(m, torch.nn.Dropout)] == [0.25] * len(SMALL["dea"]["dnn_hidden"])
    ids = ids_batch()
    model.eval()
    assert torch.equal(model(ids), model(ids))
    model.train()
    assert not torch.equal(model(ids), model(ids))                         # dropout is on in training


@pytest.mark.parametrize("combo, collapse, fused", [(True, True, True), (True, False, False), (False, True, False)])
def test_dea_has_fusion_parameters_only_when_both_attentions_are_on(combo, collapse, fused):
    model = build("dea", combo=combo, collapse=collapse)
    assert any(".fusion." in k for k in model.state_dict()) is fused       # the saved state_dict's keys


def test_dea_codebook_seed_addresses_the_codebooks():
    from dea_model.layers.hashing import to_int32

    base = randomise(build("dea")).eval()
    other = build("dea", codebook_seed=7).eval()
    siamese = base.cfg.siamese
    assert other.combo.seeds.tolist() == [to_int32(s) for s in codebook_seeds(7, siamese + 1)]
    assert base.combo.seeds.tolist() == [to_int32(s) for s in codebook_seeds(base.cfg.codebook_seed, siamese + 1)]
    other.load_state_dict({k: v for k, v in base.state_dict().items() if not k.endswith("seeds")}, strict=False)
    ids = ids_batch()
    assert not torch.equal(base(ids), other(ids))                           # same weights, other addresses
