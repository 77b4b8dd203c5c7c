"""Fusion of the Combo-ID logits A_m and the collapse-avoiding logits A_c (DEA Eq. 15-17).

All maps are head-major (H, B, n, n); "row-wise" weights act on each query row A_c[h, b, i, :] ∈ R^n
and are per head: W ∈ R^{H×n×n}.

    sum       α·A_m + β·A_c                                   α, β learnable scalars, init 1   (Eq. 15)
    gate      (1 − G)⊙A_m + G⊙A_c,   G = σ(A_c W_g + b_g)     row-wise Linear(n→n)            (Eq. 16)
    multiply  2σ(A_c W)⊙A_m + g(A_c),  g(A) = ReLU(A W_a + b_a) W_b + b_b                     (Eq. 17)

Readings (MODEL-NOTES §1.4, A10-A11): the W of Eq. 17 is a new parameter (the paper reuses the
name W₂), zero-initialised so 2σ(0) = 1; g's output layer is zero-initialised too, so training
starts from pure Combo-ID attention. Multiply is the default: the paper's headline numbers are
its Table 4 multiply row. The softmax over the fused logits is the caller's.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["ScoreFusion", "FUSIONS"]

FUSIONS = ("sum", "gate", "multiply")


def _rowwise(heads: int, d_in: int, d_out: int, zero: bool = False) -> tuple[nn.Parameter, nn.Parameter]:
    bound = 0.0 if zero else 1.0 / math.sqrt(d_in)
    weight = nn.Parameter(torch.empty(heads, d_in, d_out).uniform_(-bound, bound))
    return weight, nn.Parameter(torch.zeros(heads, 1, d_out))


class ScoreFusion(nn.Module):
    """fuse(A_m, A_c) → fused logits, all (H, B, n, n). ``kind`` ∈ {sum, gate, multiply}."""

    def __init__(self, kind: str, n_fields: int, heads: int, hidden: int = 32):
        super().__init__()
        if kind not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}, got {kind!r}")
        self.kind = kind
        if kind == "sum":
            self.alpha = nn.Parameter(torch.ones(()))
            self.beta = nn.Parameter(torch.ones(()))
        elif kind == "gate":
            self.gate_weight, self.gate_bias = _rowwise(heads, n_fields, n_fields)
        else:
            self.revise_weight, self.revise_bias = _rowwise(heads, n_fields, n_fields, zero=True)
            self.g_in_weight, self.g_in_bias = _rowwise(heads, n_fields, hidden)
            self.g_out_weight, self.g_out_bias = _rowwise(heads, hidden, n_fields, zero=True)

    @staticmethod
    def _rows(a: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
        """Row-wise per-head linear map: (H, B, n, i) · (H, i, o) + (H, 1, o) → (H, B, n, o)."""
        H, B, n, i = a.shape
        return torch.baddbmm(bias, a.reshape(H, B * n, i), weight).view(H, B, n, -1)

    def forward(self, a_m: Tensor, a_c: Tensor) -> Tensor:
        if self.kind == "sum":
            return self.alpha * a_m + self.beta * a_c
        if self.kind == "gate":
            g = torch.sigmoid(self._rows(a_c, self.gate_weight, self.gate_bias))
            return a_m + g * (a_c - a_m)  # (1 − g)·A_m + g·A_c
        revise = 2 * torch.sigmoid(self._rows(a_c, self.revise_weight, self.revise_bias))
        hidden = torch.relu(self._rows(a_c, self.g_in_weight, self.g_in_bias))
        return revise * a_m + self._rows(hidden, self.g_out_weight, self.g_out_bias)

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}"
