"""Explicit feature-interaction layers."""

from __future__ import annotations

from torch import Tensor

__all__ = ["fm_interaction"]


def fm_interaction(e: Tensor) -> Tensor:
    """Second-order FM term Σ_{i<j} ⟨v_i, v_j⟩ = ½ Σ_k [(Σ_i v_ik)² − Σ_i v_ik²] in O(n·d).

    e: (B, n, d) field embeddings → (B,).
    """
    return 0.5 * (e.sum(1).square() - e.square().sum(1)).sum(-1)
