"""DEA: Dual Enhanced Attention (arXiv 2503.11233), with the readings of DESIGN.md / MODEL-NOTES §1.

    E    = [e_1 … e_n]                                      (B, n, d)  hashed field embeddings
    A_m  = ComboID(ids)                                      (L, H, B, n, n)  once per batch (Eq. 4-10)
    for each layer l (tokens X, X₀ = E):
        Q, K, V, R = X W_Q, X W_K, X W_V, X W_R              per head d_h = d_a / H
        S    = LN(Q) LN(K)ᵀ / √d_h − diag                    (H, B, n, n)  head-major (qk_norm)
        A_c  = S ⊙ [|S| ≥ τ]     τ = c·mean_batch |S_i≠j|    collapse-avoiding (Eq. 11-14)
        Â    = fuse(A_m^{(l)}, A_c)                          sum / gate / multiply (Eq. 15-17)
        X    = ReLU(softmax(Â) V + R)                        AutoInt-style residual (+ LayerNorm)
    ŷ    = DNN(flatten(X_L))                                 logit (B,)  (Eq. 3)
         [+ DNN'(flatten(E))]                                parallel_dnn: AutoInt+'s second DNN
         [+ Σ_f w(x_f)]                                      first_order: a scalar per ID (the "wide" part)

Ablations (paper Tables 2-4) are flags, not copies:
    combo=False                 → no A_m: Â = A_c (−∞ where masked) or S ("Transformer w/o diag")
    collapse=False              → no A_c: Â = A_m ("Combo-ID attention"), or S without both
    siamese=0                   → "w/o gsc": e_ij = C⁰[a⁰_ij], no gate
    symmetric=True              → unordered pairs i < j, A_m mirrored (half the Combo-ID cost)
    parallel_dnn=True           → "DEA+": a DNN on the raw embeddings beside Eq. 3's, logits summed,
                                  as AutoInt+ adds one to AutoInt (not in the paper)
    first_order=True            → a per-ID linear term summed into the logit, as FM, DeepCTR's AutoInt
                                  and Wide & Deep have (not in the paper)
    gate_on="codeword"          → the siamese gate scales C⁰[a⁰] before the pair MLP, as Eq. 6-7 write
                                  it; the default scales the MLP's output (once-per-codeword MLP,
                                  layers/combo.py), the same function when b₁ = 0 or k = 0
    fusion ∈ {sum, gate, multiply} (default multiply = the paper's headline row)
    diag ∈ {zero (literal A − diag A), neg_inf (excluded from the softmax), keep (no removal)}
With both combo and collapse off the model is AutoInt-style attention over S with the diagonal
handled by ``diag``; without combo, Q/K are the only source of scores; without collapse (and with
combo) Q/K are not computed at all.

Multi-valued fields (genres, tags; ``CTRModel.use_bags``): a pooled field is one field token, e_f the
mean (or sum) of its elements' embeddings, and its Combo-ID pairs hash its bag ID (the order-free sum
of its element IDs, ``features.hashing``): the codebooks memorise (user, {Action, Comedy}) as a
pair, while the attention's Q·Kᵀ sees what "Action|Comedy" shares with "Comedy" through the pooled
embedding. The paper has single-valued fields only; this is the reading that keeps Eq. 4-5 unchanged.

The scale of S (``qk_norm``, issue 21). Embeddings start at std 0.01, so an unnormalised Q·Kᵀ/√d_h
starts near 1e-5 and stays near 1e-4 through training: softmax(S) is uniform, the τ mask picks noise,
and inside the multiply fusion (W and g's output zero-initialised) A_c ≈ 0 gives the fusion's weights
no gradient — the collapse branch never leaves zero (``benchmarks/results/dea_branches.md``). Eq. 11-14
only compare |S_ij| with the batch mean, which is scale-free, so the reading that keeps the paper's
mask and lets the branch act is to put S on the logit scale: Q and K layer-normalised per head
(QK-norm). ``qk_norm=False`` is the old behaviour, for the ablation.

Choices where the paper is silent (DESIGN.md): learned per-head Q/K/V and a residual projection
as in AutoInt (the baseline DEA is compared with) — Eq. 1's Q = K = V = E would make the layers
parameter-free; ReLU after the residual, LayerNorm optional; DNN [400, 400].
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from features.hashing import HASH_SEED

from ..layers import (DIAG_MODES, FUSIONS, GATE_ON, MLP, CollapseAvoiding, ComboIDScores, FieldAttention,
                      FieldEmbedding, ScoreFusion, apply_diagonal, safe_softmax)
from .base import CTRModel, check_choice, check_positive


@dataclass
class DEAConfig:
    embedding_dim: int = 16            # d
    embedding_rows: int = 2**16        # rows per field table (see layers/embedding.py for collisions)
    layers: int = 3                    # L
    heads: int = 2                     # H
    attention_dim: int = 32            # d_a (token width after layer 1)
    combo: bool = True                 # Combo-ID attention A_m
    siamese: int = 2                   # k siamese codebooks (0 = no gated siamese codebook)
    codebook_size: int = 2**18         # s rows per codebook
    pair_hidden: int = 32              # h of the pair MLP (Eq. 8)
    codebook_std: float = 0.01         # initial std of the codewords
    gate_on: str = "score"             # the siamese gate scales: score (fast) | codeword (Eq. 6-7 as written)
    symmetric: bool = False            # unordered pairs, scored once and mirrored (MODEL-NOTES A3)
    codebook_seed: int = HASH_SEED     # base of the per-codebook hash seeds
    collapse: bool = True              # collapse-avoiding attention A_c
    tau_multiplier: float = 1.0        # τ = multiplier · batch mean |S|
    tau_momentum: float = 0.99         # running τ: τ̄ ← m·τ̄ + (1−m)·τ
    tau_running: bool = True           # eval uses τ̄ (predictions independent of batch-mates)
    fusion: str = "multiply"           # sum | gate | multiply
    fusion_hidden: int = 32            # hidden width of g(·) in the multiply fusion
    diag: str = "zero"                 # zero | neg_inf | keep
    layer_norm: bool = False
    qk_norm: bool = True               # layer-normalised Q, K: S on the scale of A_m (False: the old, inert S)
    dnn_hidden: tuple[int, ...] = (400, 400)
    parallel_dnn: bool = False         # also a DNN on flatten(E), summed into the logit (AutoInt+ style)
    first_order: bool = False          # also a scalar per ID, summed into the logit (wide part)
    dropout: float = 0.0

    def __post_init__(self):
        self.dnn_hidden = tuple(int(w) for w in self.dnn_hidden)
        check_choice("dea", "fusion", self.fusion, FUSIONS)
        check_choice("dea", "diag", self.diag, DIAG_MODES)
        check_choice("dea", "gate_on", self.gate_on, GATE_ON)
        check_positive("dea", embedding_dim=self.embedding_dim, embedding_rows=self.embedding_rows,
                       layers=self.layers, heads=self.heads, attention_dim=self.attention_dim,
                       codebook_size=self.codebook_size, pair_hidden=self.pair_hidden,
                       tau_multiplier=self.tau_multiplier, fusion_hidden=self.fusion_hidden)
        if self.symmetric and self.diag == "keep":
            raise ValueError("model 'dea': symmetric=True mirrors the Combo-ID scores around a removed "
                             "diagonal; use diag=zero or neg_inf")
        if self.siamese < 0:
            raise ValueError(f"model 'dea': siamese must be ≥ 0, got {self.siamese}")
        if self.attention_dim % self.heads:
            raise ValueError(f"model 'dea': attention_dim {self.attention_dim} is not a multiple of heads {self.heads}")


class DEABlock(nn.Module):
    """One dual-attention layer: X (B, n, d_in), A_m^{(l)} (H, B, n, n) or None → X' (B, n, d_a)."""

    def __init__(self, cfg: DEAConfig, d_in: int, n_fields: int):
        super().__init__()
        self.diag = cfg.diag
        uses_scores = cfg.collapse or not cfg.combo
        self.attn = FieldAttention(d_in, cfg.attention_dim, cfg.heads, qk=uses_scores, qk_norm=cfg.qk_norm)
        self.collapse = (CollapseAvoiding(cfg.heads, cfg.tau_multiplier, cfg.tau_momentum, cfg.tau_running)
                         if cfg.collapse else None)
        self.fusion = (ScoreFusion(cfg.fusion, n_fields, cfg.heads, cfg.fusion_hidden)
                       if cfg.collapse and cfg.combo else None)
        # −∞ can empty a row only when the diagonal is excluded and nothing else survives
        self.rows_may_empty = cfg.diag == "neg_inf" and cfg.collapse and not cfg.combo
        self.norm = nn.LayerNorm(cfg.attention_dim) if cfg.layer_norm else nn.Identity()

    def forward(self, x: Tensor, a_m: Tensor | None) -> Tensor:
        q, k, v, r = self.attn(x)
        if q is not None:
            s = self.attn.scores(q, k)                                  # (H, B, n, n)
            if self.diag != "keep":
                s.diagonal(dim1=-2, dim2=-1).zero_()                    # S − diag(S), in place
        if self.collapse is not None:
            keep = self.collapse(s)                                     # (H, B, n, n) bool
            if a_m is None:
                logits = s.masked_fill(~keep, float("-inf"))            # A_c alone: −∞ fill
            else:
                logits = self.fusion(a_m, s * keep)                     # A_c in a fusion: 0 fill
        else:
            logits = s if a_m is None else a_m
        if self.diag == "neg_inf":
            logits = apply_diagonal(logits, "neg_inf")
        p = safe_softmax(logits) if self.rows_may_empty else torch.softmax(logits, -1)
        return self.norm(torch.relu(self.attn.mix(p, v) + r))


class DEA(CTRModel):
    """Dual Enhanced Attention CTR model: ids (B, n) int64 → logits (B,). See the module docstring."""

    name = "dea"
    Config = DEAConfig
    saved_without = {"gate_on": "codeword",     # the gate was on the codeword before gate_on existed
                     "qk_norm": False}          # and Q, K were not normalised before qk_norm existed

    def __init__(self, n_fields: int, **hparams):
        super().__init__(n_fields, **hparams)
        c = self.cfg
        self.embedding = FieldEmbedding(n_fields, c.embedding_dim, c.embedding_rows)
        self.combo = (ComboIDScores(n_fields, c.embedding_dim, c.codebook_size, c.siamese, c.pair_hidden,
                                    c.layers * c.heads, diagonal=c.diag == "keep", seed=c.codebook_seed,
                                    symmetric=c.symmetric, gate_on=c.gate_on, init_std=c.codebook_std)
                      if c.combo else None)
        self.blocks = nn.ModuleList(DEABlock(c, c.embedding_dim if l == 0 else c.attention_dim, n_fields)
                                    for l in range(c.layers))
        self.head = MLP(n_fields * c.attention_dim, c.dnn_hidden, 1, c.dropout)
        self.parallel_dnn = (MLP(n_fields * c.embedding_dim, c.dnn_hidden, 1, c.dropout)
                             if c.parallel_dnn else None)
        self.first_order = FieldEmbedding(n_fields, 1, c.embedding_rows) if c.first_order else None

    def forward(self, ids: Tensor) -> Tensor:
        self.check_ids(ids)
        e = self.embedding(ids)                                                     # (B, n, d)
        L = len(self.blocks)
        a_m = ([None] * L if self.combo is None
               else self.combo(self.field_ids(ids)).unflatten(0, (L, -1)).unbind(0))        # Combo-ID on bag IDs
        x = e
        for block, a_m_l in zip(self.blocks, a_m):
            x = block(x, a_m_l)                                                     # (B, n, d_a)
        logit = self.head(x.flatten(1))                                             # (B, 1)
        if self.parallel_dnn is not None:
            logit = logit + self.parallel_dnn(e.flatten(1))
        if self.first_order is not None:
            logit = logit + self.first_order(ids).sum(1)
        return logit.squeeze(-1)
