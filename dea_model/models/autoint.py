"""AutoInt / AutoInt+ (Song et al., CIKM 2019; FuxiCTR and DeepCTR layouts).

    X₀ = E (B, n, d);   X_l = ReLU(concat_h softmax(Q_h K_hᵀ [/√d_h]) V_h + W_R X_{l−1})   (B, n, d_a)
    ŷ  = w·flatten(X_L) + DNN(flatten(E)) [+ Σ_i w_{x_i}]

A non-empty ``dnn_hidden`` makes it AutoInt+ (the DNN runs in parallel on the raw embeddings,
as in FuxiCTR and DeepCTR); ``first_order`` adds the per-ID linear term DeepCTR always has.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..layers import MLP, FieldAttention, FieldEmbedding
from .base import CTRModel, check_positive


@dataclass
class AutoIntConfig:
    embedding_dim: int = 16
    embedding_rows: int = 2**16
    layers: int = 3
    heads: int = 2
    attention_dim: int = 32
    residual: bool = True
    scale: bool = False                # FuxiCTR and DeepCTR default; the official TF code scales
    layer_norm: bool = False
    dnn_hidden: tuple[int, ...] = (400, 400)
    first_order: bool = False
    dropout: float = 0.0

    def __post_init__(self):
        self.dnn_hidden = tuple(int(w) for w in self.dnn_hidden)
        check_positive("autoint", embedding_dim=self.embedding_dim, embedding_rows=self.embedding_rows,
                       layers=self.layers, heads=self.heads, attention_dim=self.attention_dim)


class AutoIntLayer(nn.Module):
    """Interacting layer: X (B, n, d_in) → (B, n, d_a)."""

    def __init__(self, d_in: int, cfg: AutoIntConfig):
        super().__init__()
        self.attn = FieldAttention(d_in, cfg.attention_dim, cfg.heads, residual=cfg.residual, scale=cfg.scale)
        self.norm = nn.LayerNorm(cfg.attention_dim) if cfg.layer_norm else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        q, k, v, r = self.attn(x)
        out = self.attn.mix(torch.softmax(self.attn.scores(q, k), -1), v)
        return self.norm(torch.relu(out if r is None else out + r))


class AutoInt(CTRModel):
    """AutoInt(+): ids (B, n) int64 → logits (B,)."""

    name = "autoint"
    Config = AutoIntConfig

    def __init__(self, n_fields: int, **hparams):
        super().__init__(n_fields, **hparams)
        c = self.cfg
        self.embedding = FieldEmbedding(n_fields, c.embedding_dim, c.embedding_rows)
        self.layers = nn.Sequential(*(AutoIntLayer(c.embedding_dim if l == 0 else c.attention_dim, c)
                                      for l in range(c.layers)))
        self.attn_out = nn.Linear(n_fields * c.attention_dim, 1)
        self.dnn = MLP(n_fields * c.embedding_dim, c.dnn_hidden, 1, c.dropout) if c.dnn_hidden else None
        self.first_order = FieldEmbedding(n_fields, 1, c.embedding_rows) if c.first_order else None

    def output_bias(self) -> nn.Parameter:
        return self.attn_out.bias

    def forward(self, ids: Tensor) -> Tensor:
        self.check_ids(ids)
        e = self.embedding(ids)                                      # (B, n, d)
        logit = self.attn_out(self.layers(e).flatten(1))             # (B, 1)
        if self.dnn is not None:
            logit = logit + self.dnn(e.flatten(1))
        if self.first_order is not None:
            logit = logit + self.first_order(ids).sum(1)
        return logit.squeeze(-1)
