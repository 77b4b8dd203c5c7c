"""Model diagnostics: embedding collapse, codebook collisions, collapse-mask rates.

- Information abundance (Guo et al., arXiv 2310.04400, Def. 1): for E ∈ R^{D×K} with singular
  values σ₁ ≥ … ≥ σ_K, IA(E) = Σ_k σ_k / σ₁ ∈ [1, rank E]. IA ≈ K: a balanced spectrum;
  IA ≈ 1: the rows live on a line (collapsed). Per field it is computed on the table rows that the
  sample touches (never-touched rows keep their random init and would inflate it).
- Codebook collisions: among the distinct ordered pair keys (x_i, x_j) of a sample, the fraction
  that share their main address with another key, and the fraction that share all k+1 addresses
  (what the siamese gate cannot tell apart).
- Collapse-mask rate: per layer, the fraction of off-diagonal scores that the collapse-avoiding
  threshold masks.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .layers import CollapseAvoiding, ComboIDScores, FieldEmbedding, ScoreFusion

__all__ = ["information_abundance", "field_information_abundance", "codebook_collision_rate",
           "collapse_mask_rate", "branch_instruments", "branch_gradients"]


def information_abundance(matrix: Tensor | np.ndarray) -> float:
    """IA(E) = ‖σ‖₁ / ‖σ‖_∞ of a (D, K) matrix, in float64 (0.0 for a zero matrix).

    For D > K the singular values come from the K×K Gram matrix (σ = √λ(EᵀE)): O(D·K²), no D×D work.
    """
    e = torch.as_tensor(matrix).detach().to("cpu", torch.float64)
    if e.dim() != 2:
        raise ValueError(f"information_abundance needs a 2-D matrix, got shape {tuple(e.shape)}")
    if e.shape[0] > e.shape[1]:
        sigma = torch.linalg.eigvalsh(e.T @ e).clamp_min(0).sqrt()
    else:
        sigma = torch.linalg.svdvals(e)
    top = sigma.max()
    return float(sigma.sum() / top) if top > 0 else 0.0


def _embedding(model: nn.Module) -> FieldEmbedding:
    table = getattr(model, "embedding", None)
    if not isinstance(table, FieldEmbedding):
        raise ValueError(f"{type(model).__name__} has no FieldEmbedding attribute 'embedding'")
    return table


def field_information_abundance(model: nn.Module, ids_sample: Tensor, min_count: int = 1) -> dict[int, float]:
    """{field index: IA of that field's embedding rows hit ≥ ``min_count`` times by ``ids_sample``}.

    ids_sample: (N, n) int64 feature IDs. A field whose sample touches D_f rows has IA ≤ min(D_f, d).
    """
    table = _embedding(model)
    rows = table.row_index(ids_sample.to(table.weight.device))  # (N, n)
    out = {}
    for f in range(rows.shape[1]):
        used, counts = torch.unique(rows[:, f], return_counts=True)
        out[f] = information_abundance(table.weight[used[counts >= min_count]])
    return out


def _combo(model: nn.Module) -> ComboIDScores:
    combo = getattr(model, "combo", None)
    if not isinstance(combo, ComboIDScores):
        raise ValueError(f"{type(model).__name__} has no Combo-ID codebooks (attribute 'combo')")
    return combo


def _shared_fraction(keys: Tensor) -> float:
    """Fraction of rows of ``keys`` (K, m) whose value occurs in more than one row."""
    _, inverse, counts = torch.unique(keys, dim=0, return_inverse=True, return_counts=True)
    return float((counts[inverse] > 1).double().mean())


@torch.no_grad()
def codebook_collision_rate(model: nn.Module, ids_sample: Tensor) -> dict[str, float]:
    """Collisions among the distinct ordered pair keys of ``ids_sample`` (N, n).

    Returns {"pair_keys": K distinct keys, "main_shared": fraction sharing the main address a⁰ with
    another key, "all_shared": fraction sharing all k+1 addresses, "expected_main" /
    "expected_all": the uniform-hash expectations 1 − (1 − 1/s^j)^(K−1) for j = 1, k+1,
    "codebook_size": s, "siamese": k}.
    """
    combo = _combo(model)
    ids = ids_sample.to(combo.seeds.device)
    addr = combo.addresses(ids).flatten(1).T                                  # (N·P, k+1)
    pairs = torch.stack([ids[:, combo.left], ids[:, combo.right]], -1).flatten(0, 1)  # (N·P, 2)
    keys, inverse = torch.unique(pairs, dim=0, return_inverse=True)
    key_addr = addr.new_empty(len(keys), addr.shape[1])
    key_addr[inverse] = addr  # the address is a function of the key: any occurrence will do
    K, s, k = len(keys), combo.size, combo.siamese
    expected = lambda j: -math.expm1((K - 1) * math.log1p(-(float(s) ** -j)))  # noqa: E731
    return {"pair_keys": K, "main_shared": _shared_fraction(key_addr[:, :1]),
            "all_shared": _shared_fraction(key_addr), "expected_main": expected(1),
            "expected_all": expected(k + 1), "codebook_size": s, "siamese": k}


@torch.no_grad()
def collapse_mask_rate(model: nn.Module, ids_sample: Tensor) -> list[float]:
    """Per layer, the fraction of off-diagonal attention scores masked by collapse-avoiding.

    Runs ``ids_sample`` (N, n) once in eval mode (running τ̄ where the model keeps one; the
    running statistics are not updated) and restores the model's mode.
    """
    layers = [m for m in model.modules() if isinstance(m, CollapseAvoiding)]
    if not layers:
        raise ValueError(f"{type(model).__name__} has no collapse-avoiding layers")
    rates: list[float] = []
    _eval_pass(model, ids_sample, [(m, lambda module, inputs, keep: rates.append(_mask_rate(keep))) for m in layers])
    return rates


def _mask_rate(keep: Tensor) -> float:
    """The fraction of off-diagonal cells of a keep mask (..., n, n) that are masked (the diagonal is always kept)."""
    cells, diagonal = keep.numel(), keep.numel() // keep.shape[-1]
    return float(1.0 - (keep.sum() - diagonal) / (cells - diagonal))


def _eval_pass(model: nn.Module, ids: Tensor, hooks: list[tuple[nn.Module, Any]]) -> None:
    """One eval-mode forward pass over ``ids`` with forward ``hooks`` (module, fn) registered; the
    model's mode is restored and the hooks removed, whatever happens."""
    handles = [module.register_forward_hook(fn) for module, fn in hooks]
    was_training = model.training
    try:
        model.eval()
        model(ids.to(next(model.parameters()).device))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()


def _off_diagonal(t: Tensor) -> Tensor:
    """The off-diagonal cells of (..., n, n) maps, flattened."""
    n = t.shape[-1]
    return t[..., ~torch.eye(n, dtype=torch.bool, device=t.device)]


@torch.no_grad()
def branch_instruments(model: nn.Module, ids_sample: Tensor) -> list[dict[str, float]]:
    """Per DEA layer with both branches (a ``ScoreFusion``): ``s_std``, ``a_m_std``, ``collapse_share``,
    ``entropy``, ``mask_rate`` (module docstring), from one eval-mode pass over ``ids_sample`` (N, n)."""
    fusions = [m for m in model.modules() if isinstance(m, ScoreFusion)]
    if not fusions:
        raise ValueError(f"{type(model).__name__} has no fusion of two attention branches")
    masked: list[tuple[Tensor, float]] = []        # per layer: (S, mask rate), in forward order
    rows: list[dict[str, float]] = []

    def record_mask(module, inputs, keep):
        masked.append((inputs[0], _mask_rate(keep)))

    def record(module, inputs, fused):
        a_m, a_c = inputs
        s, mask_rate = masked[len(rows)]
        p = torch.softmax(fused.float(), -1)
        entropy = -(p * p.clamp_min(1e-30).log()).sum(-1).mean() / math.log(fused.shape[-1])
        rows.append({"s_std": float(_off_diagonal(s).std()), "a_m_std": float(_off_diagonal(a_m).std()),
                     "a_c_std": float(_off_diagonal(a_c).std()),
                     "collapse_share": float((fused - a_m).norm() / fused.norm().clamp_min(1e-30)),
                     "entropy": float(entropy), "mask_rate": mask_rate})

    masks = [m for m in model.modules() if isinstance(m, CollapseAvoiding)]   # a fusion implies a mask per layer
    _eval_pass(model, ids_sample, [(m, record_mask) for m in masks] + [(m, record) for m in fusions])
    return rows


def branch_gradients(model: nn.Module, ids: Tensor, labels: Tensor) -> dict[str, float]:
    """‖∇‖ of the BCE loss on one batch for each branch's parameters: the embeddings, the Combo-ID
    codebooks and pair MLP, the attention projections (Q, K, V, R), the fusion, the output DNN."""
    model.zero_grad(set_to_none=True)
    logits = model(ids)
    nn.functional.binary_cross_entropy_with_logits(logits, labels.float()).backward()
    groups = {"embedding": "embedding.", "combo_codebooks": "combo.codebooks.", "combo_mlp": "combo.",
              "attention_proj": ".attn.proj.", "fusion": ".fusion.", "dnn": "head."}
    norms = {k: 0.0 for k in groups}
    for name, p in model.named_parameters():
        if p.grad is None:
            continue
        g = p.grad.coalesce().values() if p.grad.is_sparse else p.grad
        group = next((k for k, key in groups.items() if key in name), None)    # first match: codebooks before MLP
        if group:
            norms[group] += float(g.float().pow(2).sum())
    model.zero_grad(set_to_none=True)
    return {k: v ** 0.5 for k, v in norms.items()}
