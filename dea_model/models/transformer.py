"""Vanilla Transformer over field tokens, with or without the diagonal (DEA paper's baselines).

    X ← LN(X + W_O concat_h softmax(diag_op(Q_h K_hᵀ/√d_h)) V_h)        post-LN, width d
    X ← LN(X + W₂ GELU(W₁ X))                                          FFN d → ffn_dim → d
    ŷ = DNN(flatten(X_L))

``diag="keep"`` is the plain Transformer; ``"zero"`` is the paper's "w/o diag" (literal
A − diag(A): the diagonal logit is 0); ``"neg_inf"`` excludes self-attention entirely.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..layers import DIAG_MODES, MLP, FieldAttention, FieldEmbedding, apply_diagonal
from .base import CTRModel, check_choice, check_positive


@dataclass
class TransformerConfig:
    embedding_dim: int = 16
    embedding_rows: int = 2**16
    layers: int = 3
    heads: int = 2
    ffn_dim: int = 64
    diag: str = "keep"
    dnn_hidden: tuple[int, ...] = (400, 400)
    dropout: float = 0.0

    def __post_init__(self):
        self.dnn_hidden = tuple(int(w) for w in self.dnn_hidden)
        check_choice("transformer", "diag", self.diag, DIAG_MODES)
        check_positive("transformer", embedding_dim=self.embedding_dim, embedding_rows=self.embedding_rows,
                       layers=self.layers, heads=self.heads, ffn_dim=self.ffn_dim)


class TransformerBlock(nn.Module):
    """Post-LN self-attention + FFN block: (B, n, d) → (B, n, d)."""

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        d = cfg.embedding_dim
        self.diag = cfg.diag
        self.attn = FieldAttention(d, d, cfg.heads, residual=False)
        self.out = nn.Linear(d, d)
        self.ffn = nn.Sequential(nn.Linear(d, cfg.ffn_dim), nn.GELU(), nn.Linear(cfg.ffn_dim, d))
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: Tensor) -> Tensor:
        q, k, v, _ = self.attn(x)
        p = torch.softmax(apply_diagonal(self.attn.scores(q, k), self.diag), -1)  # n ≥ 2: no empty row
        x = self.norm1(x + self.drop(self.out(self.attn.mix(p, v))))
        return self.norm2(x + self.drop(self.ffn(x)))


class Transformer(CTRModel):
    """Transformer baseline: ids (B, n) int64 → logits (B,)."""

    name = "transformer"
    Config = TransformerConfig

    def __init__(self, n_fields: int, **hparams):
        super().__init__(n_fields, **hparams)
        c = self.cfg
        self.embedding = FieldEmbedding(n_fields, c.embedding_dim, c.embedding_rows)
        self.blocks = nn.Sequential(*(TransformerBlock(c) for _ in range(c.layers)))
        self.head = MLP(n_fields * c.embedding_dim, c.dnn_hidden, 1, c.dropout)

    def forward(self, ids: Tensor) -> Tensor:
        self.check_ids(ids)
        return self.head(self.blocks(self.embedding(ids)).flatten(1)).squeeze(-1)
