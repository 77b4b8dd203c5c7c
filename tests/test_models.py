"""Models: registry and hyperparameter contract, ablation flags, gradients, overfitting, serving independence."""

import json

import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score

from dea_model.models import REGISTRY, available, build_model


@pytest.fixture(autouse=True, scope="module")
def one_thread(torch_one_thread):
    """Every test here runs torch single-threaded (see conftest)."""


N_FIELDS = 6
SMALL = {
    "dea": dict(embedding_dim=8, embedding_rows=512, codebook_size=4096, attention_dim=16, pair_hidden=16,
                dnn_hidden=(64,)),
    "transformer": dict(embedding_dim=8, embedding_rows=512, dnn_hidden=(64,)),
    "autoint": dict(embedding_dim=8, embedding_rows=512, attention_dim=16, dnn_hidden=(64,)),
    "fm": dict(embedding_dim=8, embedding_rows=512),
}


def ids_batch(b=16, n=N_FIELDS, seed=0):
    return torch.randint(-(2**63), 2**63 - 1, (b, n), generator=torch.Generator().manual_seed(seed))


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


@pytest.mark.parametrize("name", sorted(SMALL))
def test_hparams_rebuild_the_same_model(name):
    model = build(name, fusion="gate", siamese=1) if name == "dea" else build(name)
    hparams = json.loads(json.dumps(model.hparams))
    assert hparams == model.hparams and "embedding_dim" in hparams
    torch.manual_seed(0)
    clone = build_model(model.name, model.n_fields, **hparams)
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


@pytest.mark.parametrize("name,flags", [("transformer", dict(diag="zero")), ("transformer", dict(diag="neg_inf")),
                                        ("autoint", dict(scale=True)), ("autoint", dict(first_order=True))])
def test_baseline_flags_change_the_output(name, flags):
    base = randomise(build(name))
    variant = build(name, **flags)
    variant.load_state_dict(base.state_dict(), strict=False)
    ids = ids_batch()
    assert (base(ids) - variant(ids)).abs().max() > 1e-4


def test_dea_parallel_dnn_adds_a_dnn_on_the_raw_embeddings():
    plus = randomise(build("dea", parallel_dnn=True)).eval()
    base = build("dea").eval()
    base.load_state_dict({k: v for k, v in plus.state_dict().items() if not k.startswith("parallel_dnn.")})
    ids = ids_batch(b=16)
    with torch.no_grad():
        expected = base(ids) + plus.parallel_dnn(plus.embedding(ids).flatten(1)).squeeze(-1)
        torch.testing.assert_close(plus(ids), expected)


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
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(ids_batch())
    out.float().sum().backward()
    assert torch.isfinite(out).all()
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
