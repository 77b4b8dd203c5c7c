"""SECN: separation-embedding cross network + self-attention + sum pooling (after arXiv 2410.15026,
"SEIN"). The public material is thin (MODEL-NOTES §2.8): this is a **reconstruction**.

    E  = [e_1 … e_n]                                               (B, n, d)
    X  = Σ_{l=0..L} x_l,  x_{l+1} = x₀ ⊙ (W_l x_l + b_l) + x_l     per embedding dimension c,
                                                                     over the n fields   (B, n, d)
    Z  = ReLU(concat_h softmax(Q_h K_hᵀ/√d_h) V_h + W_R X)          one self-attention layer (B, n, d_a)
    ŷ  = DNN(flatten(Z))                                            logit (B,)

Readings: "crossing independently on different dimensions" = a separate n×n cross matrix per
embedding dimension (``layers.cross.SeparatedCross``); "explicitly controlling the depth" = L
cross layers bound the order to L + 1; "sum pooling" = the sum of the L + 1 levels; the
self-attention is AutoInt's interacting layer (the platform's attention baseline).
Alternative reading not implemented: "dimensions" = feature groups with separate embeddings.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..layers import MLP, FieldAttention, FieldEmbedding
from ..layers.cross import SeparatedCross
from .base import CTRModel, check_positive


@dataclass
class SECNConfig:
    embedding_dim: int = 16
    embedding_rows: int = 2**16
    cross_layers: int = 2              # L: crossing order ≤ L + 1
    heads: int = 2
    attention_dim: int = 32
    dnn_hidden: tuple[int, ...] = (400, 400)
    dropout: float = 0.0

    def __post_init__(self):
        self.dnn_hidden = tuple(int(w) for w in self.dnn_hidden)
        check_positive("secn", embedding_dim=self.embedding_dim, embedding_rows=self.embedding_rows,
                       cross_layers=self.cross_layers, heads=self.heads, attention_dim=self.attention_dim)
        if self.attention_dim % self.heads:
            raise ValueError(f"model 'secn': attention_dim {self.attention_dim} is not a multiple of heads {self.heads}")


class SECN(CTRModel):
    """SECN: ids (B, n) int64 → logits (B,)."""

    name = "secn"
    Config = SECNConfig

    def __init__(self, n_fields: int, **hparams):
        super().__init__(n_fields, **hparams)
        c = self.cfg
        self.embedding = FieldEmbedding(n_fields, c.embedding_dim, c.embedding_rows)
        self.cross = SeparatedCross(n_fields, c.embedding_dim, c.cross_layers)
        self.attn = FieldAttention(c.embedding_dim, c.attention_dim, c.heads)
        self.head = MLP(n_fields * c.attention_dim, c.dnn_hidden, 1, c.dropout)

    def forward(self, ids: Tensor) -> Tensor:
        self.check_ids(ids)
        x = self.cross(self.embedding(ids))                                      # (B, n, d)
        q, k, v, r = self.attn(x)
        z = torch.relu(self.attn.mix(torch.softmax(self.attn.scores(q, k), -1), v) + r)   # (B, n, d_a)
        return self.head(z.flatten(1)).squeeze(-1)
