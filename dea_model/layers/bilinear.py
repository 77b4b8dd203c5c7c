"""Unordered field pairs, element-wise pair products and the bilinear interaction (AFM, FiBiNET, MemoNet).

For the P = n(n−1)/2 unordered pairs i < j (row-major, as ``torch.triu_indices``):

    hadamard      p_ij = v_i ⊙ v_j                                        (AFM)
    bilinear      p_ij = (v_i W) ⊙ v_j,   W shared ("all"), W_i per field ("each")
                                          or W_ij per pair ("interaction")            (FiBiNET)

Shapes: V (B, n, d) → (B, P, d). With W = I the bilinear product is the Hadamard one, and
Σ_{p, k} p_pk = Σ_{i<j} ⟨v_i, v_j⟩ is the FM pairwise term.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .pairs import unordered_pairs

__all__ = ["BILINEAR_TYPES", "BilinearInteraction", "pair_incidence"]

BILINEAR_TYPES = ("all", "each", "interaction")


def pair_incidence(n: int, left: Tensor, right: Tensor) -> Tensor:
    """(n, P) float 0/1 matrix: entry (f, p) is 1 when field f is one of the two fields of pair p.

    ``pair_incidence(...) @ x`` sums, for each field, the values of the pairs it takes part in.
    """
    inc = torch.zeros(n, left.numel())
    p = torch.arange(left.numel())
    inc[left, p] = 1.0
    inc[right, p] = 1.0
    return inc


class BilinearInteraction(nn.Module):
    """FiBiNET bilinear interaction: V (B, n, d) → p_ij = (v_i W_·) ⊙ v_j (B, P, d), i < j.

    ``kind``: "all" (one W ∈ R^{d×d}), "each" (W_i per field, n·d² parameters) or "interaction"
    (W_ij per pair, P·d², FuxiCTR's default). W is initialised like ``nn.Linear`` (U(±1/√d)).
    """

    def __init__(self, n_fields: int, dim: int, kind: str = "interaction"):
        super().__init__()
        if kind not in BILINEAR_TYPES:
            raise ValueError(f"bilinear kind must be one of {BILINEAR_TYPES}, got {kind!r}")
        self.kind = kind
        left, right = unordered_pairs(n_fields)
        self.register_buffer("left", left, persistent=False)
        self.register_buffer("right", right, persistent=False)
        count = {"all": 1, "each": n_fields, "interaction": left.numel()}[kind]
        bound = 1.0 / math.sqrt(dim)
        self.weight = nn.Parameter(torch.empty(count, dim, dim).uniform_(-bound, bound))

    def forward(self, v: Tensor) -> Tensor:
        if self.kind == "all":
            vw = (v @ self.weight[0])[:, self.left]                               # (B, P, d)
        elif self.kind == "each":
            vw = torch.einsum("bnd,nde->bne", v, self.weight)[:, self.left]
        else:
            vw = torch.einsum("bpd,pde->bpe", v[:, self.left], self.weight)
        return vw * v[:, self.right]

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}, pairs={self.left.numel()}"
