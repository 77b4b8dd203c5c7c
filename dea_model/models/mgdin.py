"""MGDIN: multi-granularity information-aware deferred interaction network (after arXiv 2603.12586).

Only the abstract is public (MODEL-NOTES §2.9): this is a **reconstruction** of its two stages.

1. Multi-granularity grouping. Each field gets an information density ρ_f (``density``, or measured
   on the first training batch as ρ_f = log(B / #distinct values of field f), the mean number of
   rows per value: dense/numeric fields high, ID fields low). Fields sorted by ρ (dense first) are
   cut into G contiguous groups for every G in ``granularities``; a group token is the mean of its
   members' embeddings. Tokens: the n fields (fine view) + Σ G group tokens, T in all.

       X₀ = Π E,   Π ∈ R^{T×n} (one-hot rows for fields, 1/|g| on the members of group g)   (B, T, d)

2. Hierarchical (deferred) masking. Field f of density rank r_f falls in tier t_f = ⌊r_f·m/n⌋
   (m = ``tiers``); a token's tier is its sparsest member's. A tier-t token joins the interaction
   from layer s_t = ⌈t·L/m⌉ on: before that it is masked as a key and its own row is carried
   unchanged, so a low-information field reaches nothing — alone or pooled — before layer s_t.

       S = Q Kᵀ/√d_h,  S[:, :, :, j] = −∞ where s_j > l            (B, H, T, T)   layer l
       X_{l+1}[i] = ReLU(concat_h softmax(S) V + W_R X_l)[i]  if s_i ≤ l,  else X_l[i]
       ŷ = DNN(flatten(X_L))                                      logit (B,)

Tier 0 is visible from layer 0, so no attention row is ever empty. The density, the pooling
matrix Π and the start layers s are buffers: a trained model reloads with its grouping.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..layers import MLP, FieldAttention, FieldEmbedding
from .base import CTRModel, check_positive


@dataclass
class MGDINConfig:
    embedding_dim: int = 16
    embedding_rows: int = 2**16
    layers: int = 3                            # L
    heads: int = 2
    tiers: int = 3                             # m density tiers (capped at n)
    granularities: tuple[int, ...] = (2, 4)    # group counts of the coarse views (capped at n)
    density: tuple[float, ...] = ()            # ρ per field; () = measure on the first training batch
    dnn_hidden: tuple[int, ...] = (400, 400)
    dropout: float = 0.0

    def __post_init__(self):
        self.dnn_hidden = tuple(int(w) for w in self.dnn_hidden)
        self.granularities = tuple(int(g) for g in self.granularities)
        self.density = tuple(float(x) for x in self.density)
        check_positive("mgdin", embedding_dim=self.embedding_dim, embedding_rows=self.embedding_rows,
                       layers=self.layers, heads=self.heads, tiers=self.tiers)
        if any(g < 1 for g in self.granularities):
            raise ValueError(f"model 'mgdin': granularities must be ≥ 1, got {self.granularities}")
        if self.embedding_dim % self.heads:
            raise ValueError(f"model 'mgdin': embedding_dim {self.embedding_dim} is not a multiple of heads {self.heads}")


def batch_density(ids: Tensor) -> Tensor:
    """ρ_f = log(B / #distinct values of field f) of a batch ids (B, n) → (n,), no loop over fields."""
    s = ids.sort(0).values
    distinct = 1 + (s[1:] != s[:-1]).sum(0)
    return torch.log(ids.shape[0] / distinct.double()).float()


class MGDIN(CTRModel):
    """MGDIN: ids (B, n) int64 → logits (B,). See the module docstring."""

    name = "mgdin"
    Config = MGDINConfig

    def __init__(self, n_fields: int, **hparams):
        super().__init__(n_fields, **hparams)
        c = self.cfg
        if c.density and len(c.density) != n_fields:
            raise ValueError(f"model 'mgdin': density has {len(c.density)} values for {n_fields} fields")
        groups = [min(g, n_fields) for g in c.granularities]
        self.tokens = n_fields + sum(groups)
        self.embedding = FieldEmbedding(n_fields, c.embedding_dim, c.embedding_rows)
        self.attn = nn.ModuleList(FieldAttention(c.embedding_dim, c.embedding_dim, c.heads) for _ in range(c.layers))
        self.head = MLP(self.tokens * c.embedding_dim, c.dnn_hidden, 1, c.dropout)
        self.register_buffer("density", torch.tensor(c.density) if c.density else torch.zeros(n_fields))
        self.register_buffer("density_known", torch.tensor(bool(c.density)))
        self.register_buffer("pool", torch.zeros(self.tokens, n_fields))           # Π
        self.register_buffer("start", torch.zeros(self.tokens, dtype=torch.long))  # s per token
        self._build_groups(self.density)
        self.density_fixed = bool(c.density)       # density_known as a Python bool: no device sync per step
        self.register_load_state_dict_post_hook(MGDIN._read_density_known)

    @staticmethod
    def _read_density_known(module: "MGDIN", incompatible_keys) -> None:
        module.density_fixed = bool(module.density_known)

    @torch.no_grad()
    def set_density(self, density: Tensor) -> None:
        """Fix ρ (n,): rebuild the grouping from it, and no training batch measures it again."""
        self._build_groups(density)
        self.density_known.fill_(True)
        self.density_fixed = True

    @torch.no_grad()
    def _build_groups(self, density: Tensor) -> None:
        """ρ (n,) → the grouping Π and the start layers s."""
        n, L = self.n_fields, self.cfg.layers
        m = min(self.cfg.tiers, n)
        order = torch.argsort(density.float().cpu(), descending=True, stable=True)   # dense → sparse
        tier = torch.empty(n, dtype=torch.long)
        tier[order] = torch.arange(n) * m // n
        rows = [torch.eye(n)]
        for g in self.cfg.granularities:
            for chunk in order.tensor_split(min(g, n)):
                row = torch.zeros(1, n)
                row[0, chunk] = 1.0 / len(chunk)
                rows.append(row)
        pool = torch.cat(rows)                                                   # (T, n)
        token_tier = torch.where(pool > 0, tier, -1).amax(1)                     # sparsest member
        self.density.copy_(density)
        self.pool.copy_(pool)
        self.start.copy_((token_tier * L + m - 1) // m)                         # ⌈t·L/m⌉

    def forward(self, ids: Tensor) -> Tensor:
        self.check_ids(ids)
        if self.training and not self.density_fixed:
            self.set_density(batch_density(self.field_ids(ids)))                    # once, on the first batch
        x = torch.einsum("tn,bnd->btd", self.pool, self.embedding(ids))         # (B, T, d)
        for l, attn in enumerate(self.attn):
            active = self.start <= l                                             # (T,)
            q, k, v, r = attn(x)
            s = attn.scores(q, k).masked_fill(~active, float("-inf"))           # keys not yet admitted
            out = torch.relu(attn.mix(torch.softmax(s, -1), v) + r)              # (B, T, d)
            x = torch.where(active.unsqueeze(-1), out, x)
        return self.head(x.flatten(1)).squeeze(-1)
