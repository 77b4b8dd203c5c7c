"""MemoNet: HCNet multi-hash codebooks memorising every cross feature (Zhang & Zhang, CIKM 2023,
arXiv 2211.01334), as in the official TF code (ptzhangAlg/RecAlg, MODEL-NOTES §2.5).

    E    = [e_1 … e_n]                                     (B, n, d)    field embeddings
    m_p  = W_r [C[a¹_p]; …; C[aᵏ_p]]                       (B, P, d)    every pair p = (i, j), i < j:
                                                                         k hashes, linear memory restoring
    w    = W_b ReLU(W_a flatten(E))                        (B, P)       global attentive shrinking (GAS)
    h_i  = Σ_{p ∋ i} w_p · m_p                             (B, n, d)    each field sums its P_i = n−1 crosses
    ŷ    = DNN([flatten E; flatten H])                     logit (B,)

Readings and choices: the codebook hash is the platform's combo-ID hash over the raw feature IDs
(``layers.hcnet``); one shared codebook ("hash-share"), k = 2, init N(0, 0.01²) as the official
Criteo script; ``shrink="sum"`` is the unweighted ("sum") variant. Attentive memory restoring, 3rd-
order crosses and the KIF field subset are not implemented. Codeword size d_c = d by default.
Cost: P·k codebook rows of d_c floats gathered per sample (n = 39: 741 pairs).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from features.hashing import HASH_SEED

from ..layers import MLP, FieldEmbedding
from ..layers.bilinear import pair_incidence
from ..layers.hcnet import HASH_MODES, MultiHashCodebook
from .base import CTRModel, check_choice, check_positive


@dataclass
class MemoNetConfig:
    embedding_dim: int = 16
    embedding_rows: int = 2**16
    codebook_size: int = 2**18         # s (the official Criteo run: 10⁶ buckets)
    codeword_dim: int = 0              # d_c; 0 = embedding_dim
    hashes: int = 2                    # k
    hash_mode: str = "share"           # share (one codebook) | private (one per hash)
    shrink: str = "gas"                # gas (global attentive shrinking) | sum
    codebook_seed: int = HASH_SEED
    dnn_hidden: tuple[int, ...] = (400, 400)
    dropout: float = 0.0

    def __post_init__(self):
        self.dnn_hidden = tuple(int(w) for w in self.dnn_hidden)
        check_choice("memonet", "hash_mode", self.hash_mode, HASH_MODES)
        check_choice("memonet", "shrink", self.shrink, ("gas", "sum"))
        check_positive("memonet", embedding_dim=self.embedding_dim, embedding_rows=self.embedding_rows,
                       codebook_size=self.codebook_size, hashes=self.hashes)
        if self.codeword_dim < 0:
            raise ValueError(f"model 'memonet': codeword_dim must be ≥ 0, got {self.codeword_dim}")


class MemoNet(CTRModel):
    """MemoNet (HCNet + DNN): ids (B, n) int64 → logits (B,)."""

    name = "memonet"
    Config = MemoNetConfig

    def __init__(self, n_fields: int, **hparams):
        super().__init__(n_fields, **hparams)
        c = self.cfg
        d = c.embedding_dim
        self.embedding = FieldEmbedding(n_fields, d, c.embedding_rows)
        self.hcnet = MultiHashCodebook(n_fields, c.codeword_dim or d, c.codebook_size, c.hashes, d,
                                       c.hash_mode, c.codebook_seed)
        pairs = self.hcnet.left.numel()
        self.register_buffer("incidence", pair_incidence(n_fields, self.hcnet.left, self.hcnet.right),
                             persistent=False)                                       # (n, P)
        self.shrink = (nn.Sequential(nn.Linear(n_fields * d, n_fields * d), nn.ReLU(), nn.Linear(n_fields * d, pairs))
                       if c.shrink == "gas" else None)
        self.head = MLP(2 * n_fields * d, c.dnn_hidden, 1, c.dropout)

    def cross_fields(self, ids: Tensor, e: Tensor) -> Tensor:
        """H (B, n, d): per field, the (GAS-weighted) sum of the restored crosses it belongs to."""
        m = self.hcnet(self.field_ids(ids))                                                      # (B, P, d)
        if self.shrink is not None:
            m = m * self.shrink(e.flatten(1)).unsqueeze(-1)                      # w_p · m_p
        return torch.einsum("np,bpd->bnd", self.incidence, m)

    def forward(self, ids: Tensor) -> Tensor:
        self.check_ids(ids)
        e = self.embedding(ids)                                                  # (B, n, d)
        h = self.cross_fields(ids, e)                                            # (B, n, d)
        return self.head(torch.cat([e, h], 1).flatten(1)).squeeze(-1)
