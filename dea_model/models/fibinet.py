"""FiBiNET: SENET field re-weighting + bilinear interaction (Huang, Zhang, Zhang, RecSys 2019).

    E = [e_1 … e_n]                                         (B, n, d)
    V, a = SENET(E):  v_i = a_i·e_i,  a = ReLU(W₂ ReLU(W₁ mean_k E))     (B, n, d), (B, n)
    p_ij = (e_i W_ij) ⊙ e_j,   q_ij = (v_i W'_ij) ⊙ v_j      i < j       (B, P, d) each
    ŷ = w₀ + Σ_i w_{x_i} + DNN([flatten p; flatten q])                  logit (B,)

As FuxiCTR's FiBiNET: two separate bilinear layers (one per branch), bilinear type
"interaction" (W per pair; the official v1 code uses "all"), reduction ratio 3, ReLU excitation,
DNN [500, 500, 500] and an LR term.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..layers import MLP, FieldEmbedding
from ..layers.bilinear import BILINEAR_TYPES, BilinearInteraction
from ..layers.senet import SENET
from .base import CTRModel, check_choice, check_positive


@dataclass
class FiBiNETConfig:
    embedding_dim: int = 16
    embedding_rows: int = 2**16
    reduction_ratio: float = 3.0
    excitation: str = "relu"           # relu (FiBiNET) | sigmoid (weights in (0, 1))
    bilinear: str = "interaction"      # all | each | interaction
    dnn_hidden: tuple[int, ...] = (500, 500, 500)
    dropout: float = 0.0

    def __post_init__(self):
        self.dnn_hidden = tuple(int(w) for w in self.dnn_hidden)
        check_choice("fibinet", "bilinear", self.bilinear, BILINEAR_TYPES)
        check_choice("fibinet", "excitation", self.excitation, ("relu", "sigmoid"))
        check_positive("fibinet", embedding_dim=self.embedding_dim, embedding_rows=self.embedding_rows,
                       reduction_ratio=self.reduction_ratio)


class FiBiNET(CTRModel):
    """FiBiNET: ids (B, n) int64 → logits (B,)."""

    name = "fibinet"
    Config = FiBiNETConfig

    def __init__(self, n_fields: int, **hparams):
        super().__init__(n_fields, **hparams)
        c = self.cfg
        self.embedding = FieldEmbedding(n_fields, c.embedding_dim, c.embedding_rows)
        self.first_order = FieldEmbedding(n_fields, 1, c.embedding_rows)
        self.senet = SENET(n_fields, c.reduction_ratio, c.excitation)
        self.bilinear = BilinearInteraction(n_fields, c.embedding_dim, c.bilinear)
        self.bilinear_senet = BilinearInteraction(n_fields, c.embedding_dim, c.bilinear)
        pairs = n_fields * (n_fields - 1) // 2
        self.head = MLP(2 * pairs * c.embedding_dim, c.dnn_hidden, 1, c.dropout)

    def forward(self, ids: Tensor) -> Tensor:
        self.check_ids(ids)
        e = self.embedding(ids)                                                  # (B, n, d)
        v, _ = self.senet(e)                                                     # (B, n, d)
        z = torch.cat([self.bilinear(e), self.bilinear_senet(v)], 1).flatten(1)  # (B, 2·P·d)
        return (self.head(z) + self.first_order(ids).sum(1)).squeeze(-1)
