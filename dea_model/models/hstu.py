"""HSTU blocks (Zhai et al., ICML 2024, arXiv 2402.17152) over the set of field tokens.

Per layer, X (B, n, d), per head h (d_qk, d_v per head; reference code
generative-recommenders ``SequentialTransductionUnitJagged``, MODEL-NOTES §2.6):

    X̂            = LayerNorm(X)
    U, V, Q, K   = SiLU(X̂ W_uvqk)                               one fused projection, no bias
    A_h          = SiLU(α·Q_h K_hᵀ + rab_h) / n                  (B, H, n, n)  pointwise, no softmax
    Y            = concat_h A_h V_h                              (B, n, H·d_v)
    X            ← X + W_o Dropout(U ⊙ LayerNorm(Y))
    ŷ            = DNN(flatten(X_L))                             logit (B,)

Readings for a set of fields (not a sequence): a full, non-causal mask; the relative time/position
bias becomes a learned per-field-pair bias rab ∈ R^{H×n×n} (zero-initialised); α = 1/√d_qk (the newer
ops' ``attn_alpha``); the /n of the research code is kept (n is fixed). Without a softmax the rows
of A do not sum to 1: a pair with score 0 contributes nothing (SiLU(0) = 0), where softmax would
give it weight 1/n. Defaults: 2 blocks, 1 head, linear dropout 0.2 (the ml-1m config); the DNN as DEA.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..layers import MLP, FieldEmbedding
from .base import CTRModel, check_positive


@dataclass
class HSTUConfig:
    embedding_dim: int = 16
    embedding_rows: int = 2**16
    layers: int = 2
    heads: int = 1
    qk_dim: int = 16                   # d_qk per head
    v_dim: int = 16                    # d_v per head
    rab: bool = True                   # learned per-field-pair bias
    block_dropout: float = 0.2         # "linear dropout" before W_o
    dnn_hidden: tuple[int, ...] = (400, 400)
    dropout: float = 0.0

    def __post_init__(self):
        self.dnn_hidden = tuple(int(w) for w in self.dnn_hidden)
        check_positive("hstu", embedding_dim=self.embedding_dim, embedding_rows=self.embedding_rows,
                       layers=self.layers, heads=self.heads, qk_dim=self.qk_dim, v_dim=self.v_dim)


class HSTUBlock(nn.Module):
    """One HSTU layer: X (B, n, d) → (B, n, d)."""

    def __init__(self, cfg: HSTUConfig, n_fields: int):
        super().__init__()
        d, H = cfg.embedding_dim, cfg.heads
        self.heads, self.qk_dim, self.v_dim = H, cfg.qk_dim, cfg.v_dim
        self.alpha = 1.0 / math.sqrt(cfg.qk_dim)
        self.norm_in = nn.LayerNorm(d)
        self.uvqk = nn.Linear(d, H * (2 * cfg.v_dim + 2 * cfg.qk_dim), bias=False)
        self.rab = nn.Parameter(torch.zeros(H, n_fields, n_fields)) if cfg.rab else None
        self.norm_attn = nn.LayerNorm(H * cfg.v_dim)
        self.out = nn.Linear(H * cfg.v_dim, d)
        self.drop = nn.Dropout(cfg.block_dropout)

    def attention(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(A (B, H, n, n), U (B, n, H·d_v), V (B, H, n, d_v)) of tokens X (B, n, d)."""
        B, n, _ = x.shape
        H, dv, dq = self.heads, self.v_dim, self.qk_dim
        u, v, q, k = F.silu(self.uvqk(self.norm_in(x))).split([H * dv, H * dv, H * dq, H * dq], -1)
        q, k = (t.view(B, n, H, dq).transpose(1, 2) for t in (q, k))
        scores = self.alpha * (q @ k.transpose(-1, -2))                          # (B, H, n, n)
        if self.rab is not None:
            scores = scores + self.rab
        return F.silu(scores) / n, u, v.view(B, n, H, dv).transpose(1, 2)

    def forward(self, x: Tensor) -> Tensor:
        a, u, v = self.attention(x)
        y = (a @ v).transpose(1, 2).flatten(2)                                   # (B, n, H·d_v)
        return x + self.out(self.drop(u * self.norm_attn(y)))


class HSTU(CTRModel):
    """HSTU over field tokens: ids (B, n) int64 → logits (B,)."""

    name = "hstu"
    Config = HSTUConfig

    def __init__(self, n_fields: int, **hparams):
        super().__init__(n_fields, **hparams)
        c = self.cfg
        self.embedding = FieldEmbedding(n_fields, c.embedding_dim, c.embedding_rows)
        self.blocks = nn.Sequential(*(HSTUBlock(c, n_fields) for _ in range(c.layers)))
        self.head = MLP(n_fields * c.embedding_dim, c.dnn_hidden, 1, c.dropout)

    def forward(self, ids: Tensor) -> Tensor:
        self.check_ids(ids)
        return self.head(self.blocks(self.embedding(ids)).flatten(1)).squeeze(-1)
