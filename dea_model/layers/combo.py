"""Combo-ID attention scores with the gated siamese codebook (DEA Eq. 4-10).

For every ordered field pair (i, j), i ≠ j (P = n(n−1) pairs; n² with the diagonal):

    a^m_ij = MurmurHash3(le64(x_i) ‖ le64(x_j), s_m) mod s         m = 0 (main), 1..k (siamese)  (Eq. 4-5)
    g_ij   = σ(W₀·[C¹[a¹_ij]; …; Cᵏ[aᵏ_ij]] + b₀)                  scalar gate, W₀ ∈ R^{kd}    (Eq. 6)
    e_ij   = g_ij · C⁰[a⁰_ij]                                        (e_ij = C⁰[a⁰_ij] when k = 0)
    h_ij   = ReLU(W₁ e_ij + b₁)                                      W₁ ∈ R^{h×d}, shared     (Eq. 8)
    A_m^{(l)}[h, i, j] = W₂^{(l)} h_ij + b₂^{(l)}                   one output per layer l and head
    A_m    = A − diag(A)                                             (Eq. 9-10)

Readings (MODEL-NOTES §1.2, DESIGN.md): each codebook has its own hash seed (otherwise the
siamese vote collides exactly when C⁰ does); the scores depend only on the IDs, so the lookup,
gate and first MLP layer run **once per batch**, and each layer/head gets its own output row of W₂.

Cost (B·P pairs per batch): the main codebook is gathered once per pair (d floats). The siamese
rows enter only through the scalars u^m = W₀^m·C^m[a^m], so when B·P ≥ s the siamese tables
are projected first (k·s·d MACs per batch) and one scalar per pair is gathered — the same
function and the same gradients, with k·d → k floats of gather and scatter per pair. For small
batches (serving) the rows are gathered and projected instead. Activations kept for backward,
per pair: d (main rows) + d (e) + h (hidden) + L·H (scores) floats, plus 1 gate and k scalars.
All k+1 codebooks live in one ((k+1)·s, d) table with offsets m·s.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from features.hashing import HASH_SEED

from .embedding import gather_rows
from .hashing import codebook_seeds, combo_addresses, to_int32
from .pairs import ordered_pairs, pairs_to_square

__all__ = ["Codebooks", "ComboIDScores"]


class Codebooks(nn.Module):
    """k+1 codebooks of s rows × d in one table: row m·s + a of codebook m. Init N(0, init_std²)."""

    is_embedding = True

    def __init__(self, count: int, size: int, dim: int, init_std: float = 0.01):
        super().__init__()
        if count * size >= 2**31:
            raise ValueError(f"(k+1)·codebook_size = {count}·{size} must be < 2³¹")
        self.count, self.size, self.dim = count, size, dim
        self.weight = nn.Parameter(torch.randn(count * size, dim) * init_std)

    def extra_repr(self) -> str:
        return f"count={self.count}, size={self.size}, dim={self.dim}"


class ComboIDScores(nn.Module):
    """Combo-ID attention logits A_m for all layers and heads: ids (B, n) → (B, L·H, n, n).

    Args:
        n_fields: n.   dim: codeword size d.   size: rows per codebook s.
        siamese: k siamese codebooks (0 = "w/o gsc": e_ij = C⁰[a⁰_ij], no gate).
        hidden: h of the pair MLP.   outputs: L·H score maps.
        diagonal: also look up the n pairs (i, i) ("keep" the diagonal); otherwise they are
            never hashed or gathered and A_m's diagonal is 0.
        seed: base of the codebook seeds (:func:`codebook_seeds`); stored in ``seeds``.
    """

    def __init__(self, n_fields: int, dim: int, size: int, siamese: int, hidden: int, outputs: int,
                 diagonal: bool = False, seed: int = HASH_SEED):
        super().__init__()
        self.n_fields, self.size, self.siamese, self.diagonal = n_fields, size, siamese, diagonal
        self.codebooks = Codebooks(siamese + 1, size, dim)
        left, right = ordered_pairs(n_fields, diagonal)
        self.register_buffer("left", left, persistent=False)
        self.register_buffer("right", right, persistent=False)
        seeds = [to_int32(s) for s in codebook_seeds(seed, siamese + 1)]
        self.register_buffer("seeds", torch.tensor(seeds, dtype=torch.int32))
        if siamese:
            self.gate_weight = nn.Parameter(torch.randn(siamese, dim) / (siamese * dim) ** 0.5)  # W₀
            self.gate_bias = nn.Parameter(torch.zeros(()))                                     # b₀
        self.pair_mlp = nn.Linear(dim, hidden)          # W₁, b₁ (shared by all pairs and layers)
        self.out = nn.Linear(hidden, outputs)           # W₂^{(l)}, b₂^{(l)} stacked: L·H rows

    def addresses(self, ids: Tensor) -> Tensor:
        """(k+1, B, P) int64 rows of the combined table (codebook m at offset m·s)."""
        return combo_addresses(ids, self.left, self.right, self.seeds, self.size)

    def gate(self, addr: Tensor, project_tables: bool | None = None) -> Tensor:
        """g = σ(Σ_m W₀^m·C^m[a^m] + b₀): addr (k, B, P) siamese rows → (B, P).

        ``project_tables`` picks the order (same value either way); default: project the tables
        when there are at least as many pairs as codebook rows.
        """
        k, B, P = addr.shape
        table = self.codebooks.weight
        if project_tables is None:
            project_tables = B * P >= self.size
        if not project_tables:  # few pairs: gather k·d floats per pair, then project
            u = torch.einsum("mbpd,md->bp", gather_rows(table, addr), self.gate_weight)
        else:  # many pairs: project each siamese table once, gather one scalar per pair and codebook
            proj = torch.bmm(table[self.size:].view(k, self.size, -1), self.gate_weight.unsqueeze(-1))
            u = gather_rows(proj.view(-1, 1), addr - self.size).sum(0).squeeze(-1)
        return torch.sigmoid(u + self.gate_bias)

    def forward(self, ids: Tensor) -> Tensor:
        with torch.no_grad():
            addr = self.addresses(ids)                                   # (k+1, B, P)
        e = gather_rows(self.codebooks.weight, addr[0])                  # (B, P, d)  C⁰[a⁰]
        if self.siamese:
            e = e * self.gate(addr[1:]).unsqueeze(-1)                    # g · C⁰[a⁰]
        h = torch.relu(self.pair_mlp(e))                                 # (B, P, h)
        scores = self.out(h).transpose(1, 2)                             # (B, L·H, P)
        return pairs_to_square(scores, self.n_fields, self.diagonal)     # (B, L·H, n, n)
