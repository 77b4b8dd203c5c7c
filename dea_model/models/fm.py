"""Factorization Machine (Rendle, ICDM 2010).

    ŷ = w₀ + Σ_i w_{x_i} + Σ_{i<j} ⟨v_{x_i}, v_{x_j}⟩          (pairwise term in O(n·d))
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..layers import FieldEmbedding, fm_interaction
from .base import CTRModel, check_positive


@dataclass
class FMConfig:
    embedding_dim: int = 16
    embedding_rows: int = 2**16

    def __post_init__(self):
        check_positive("fm", embedding_dim=self.embedding_dim, embedding_rows=self.embedding_rows)


class FM(CTRModel):
    """FM: ids (B, n) int64 → logits (B,)."""

    name = "fm"
    Config = FMConfig

    def __init__(self, n_fields: int, **hparams):
        super().__init__(n_fields, **hparams)
        c = self.cfg
        self.embedding = FieldEmbedding(n_fields, c.embedding_dim, c.embedding_rows)
        self.first_order = FieldEmbedding(n_fields, 1, c.embedding_rows)
        self.bias = nn.Parameter(torch.zeros(()))

    def forward(self, ids: Tensor) -> Tensor:
        self.check_ids(ids)
        return self.bias + self.first_order(ids).sum((1, 2)) + fm_interaction(self.embedding(ids))
