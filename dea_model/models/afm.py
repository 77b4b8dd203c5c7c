"""AFM: Attentional Factorization Machine (Xiao et al., IJCAI 2017).

    p_ij  = v_i ⊙ v_j                                   (B, P, d)   P = n(n−1)/2 pairs i < j
    a'_ij = hᵀ ReLU(W p_ij + b)                         (B, P)      W ∈ R^{t×d}, h ∈ R^t
    α     = softmax over the P pairs of a'               (B, P)      (dropout on α)
    ŷ     = w₀ + Σ_i w_{x_i} + pᵀ Σ_{i<j} α_ij p_ij      logit (B,)   (dropout on the pooled vector)

Readings: p is initialised to ones, as in the official code (so with a uniform α the pairwise
term is the FM term divided by P); no FM warm start; the official L2 penalty on W is left to the
optimizer's weight decay. Defaults follow FuxiCTR (attention size = embedding size, no dropout).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..layers import FieldEmbedding
from ..layers.pairs import unordered_pairs
from .base import CTRModel, check_positive


@dataclass
class AFMConfig:
    embedding_dim: int = 16
    embedding_rows: int = 2**16
    attention_dim: int = 16            # t
    attention_dropout: float = 0.0     # on α
    dropout: float = 0.0               # on the pooled pair vector

    def __post_init__(self):
        check_positive("afm", embedding_dim=self.embedding_dim, embedding_rows=self.embedding_rows,
                       attention_dim=self.attention_dim)


class AFM(CTRModel):
    """AFM: ids (B, n) int64 → logits (B,)."""

    name = "afm"
    Config = AFMConfig

    def __init__(self, n_fields: int, **hparams):
        super().__init__(n_fields, **hparams)
        c = self.cfg
        self.embedding = FieldEmbedding(n_fields, c.embedding_dim, c.embedding_rows)
        self.first_order = FieldEmbedding(n_fields, 1, c.embedding_rows)
        self.bias = nn.Parameter(torch.zeros(()))
        left, right = unordered_pairs(n_fields)
        self.register_buffer("left", left, persistent=False)
        self.register_buffer("right", right, persistent=False)
        self.attention = nn.Sequential(nn.Linear(c.embedding_dim, c.attention_dim), nn.ReLU(),
                                       nn.Linear(c.attention_dim, 1, bias=False))       # W, b; h
        self.projection = nn.Parameter(torch.ones(c.embedding_dim))                      # p
        self.attention_dropout = nn.Dropout(c.attention_dropout)
        self.dropout = nn.Dropout(c.dropout)

    def pair_attention(self, pairs: Tensor) -> Tensor:
        """α (B, P) = softmax over pairs of hᵀ ReLU(W p_ij + b), pairs (B, P, d)."""
        return torch.softmax(self.attention(pairs).squeeze(-1), -1)

    def forward(self, ids: Tensor) -> Tensor:
        self.check_ids(ids)
        e = self.embedding(ids)                                                 # (B, n, d)
        pairs = e[:, self.left] * e[:, self.right]                              # (B, P, d)
        alpha = self.attention_dropout(self.pair_attention(pairs))              # (B, P)
        pooled = self.dropout((alpha.unsqueeze(-1) * pairs).sum(1))             # (B, d)
        return self.bias + self.first_order(ids).sum((1, 2)) + pooled @ self.projection
