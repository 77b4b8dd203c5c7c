"""Combo-ID attention scores with the gated siamese codebook (DEA Eq. 4-10).

For every ordered field pair (i, j), i ≠ j (P = n(n−1) pairs; n² with the diagonal), or with
``symmetric`` for every unordered pair i < j (P = n(n−1)/2, mirrored: A_m[j, i] = A_m[i, j]):

    a^m_ij = MurmurHash3(le64(x_i) ‖ le64(x_j), s_m) mod s         m = 0 (main), 1..k (siamese)  (Eq. 4-5)
    g_ij   = σ(W₀·[C¹[a¹_ij]; …; Cᵏ[aᵏ_ij]] + b₀)                  scalar gate, W₀ ∈ R^{kd}    (Eq. 6)
    h_ij   = ReLU(W₁ C⁰[a⁰_ij] + b₁)                                 W₁ ∈ R^{h×d}, shared     (Eq. 8)
    A_m^{(l)}[h, :, i, j] = g_ij · W₂^{(l)} h_ij + b₂^{(l)}            one output per layer l and head
    A_m    = A − diag(A)                                             (Eq. 9-10)

With ``gate_on="codeword"`` the gate scales the codeword as Eq. 6-7 write it: h_ij =
ReLU(W₁ (g_ij·C⁰[a⁰_ij]) + b₁), A = W₂ h_ij + b₂. Without siamese codebooks (k = 0) there is no gate.

Readings (MODEL-NOTES §1.2, A3, DESIGN.md): ordered pairs by default (Eq. 4 concatenates in
order and Eq. 7 fills all n×n cells); ``symmetric`` is MODEL-NOTES' option: the unordered pair's
key is (x_i, x_j) for i < j, its n(n−1)/2 scores are computed once and mirrored — half the hashing,
codebook traffic and pair-MLP work. Each codebook has its own hash seed (otherwise the
siamese vote collides exactly when C⁰ does); the scores depend only on the IDs, so the lookup,
gate and pair MLP run **once per batch** for all layers, and each layer/head gets its own output row of W₂.

Cost (B·P pairs per batch). The main codebook is gathered once per pair (d floats). The siamese
rows enter only through the scalars u^m = W₀^m·C^m[a^m], so when B·P ≥ s the siamese tables are
projected first (k·s·d MACs per batch) and one scalar per pair is gathered — the same function and
the same gradients, with k·d → k floats of gather and scatter per pair. For small batches (serving)
the rows are gathered and projected instead. All k+1 codebooks live in one ((k+1)·s, d) table with
offsets m·s; addresses are int32, computed once per batch.

Where the gate acts (``gate_on``, MODEL-NOTES A2). Eq. 6-7 scale the codeword, e = g·C⁰[a⁰], before
the pair MLP (``"codeword"``, :func:`pair_scores`): the MLP then runs once per pair. The default
``"score"`` scales the pair MLP's output instead, A = g·W₂ ReLU(W₁ C⁰[a⁰] + b₁) + b₂. Both say "the
siamese vote rescales the pair's codeword contribution", and they are the same function when b₁ = 0
or k = 0, since a gate g > 0 commutes with a bias-free ReLU layer. With the gate outside, the MLP's
output depends on the codeword alone, so it runs once per codeword (T = W₂ ReLU(W₁ C⁰ᵀ + b₁), (L·H, s),
:func:`codebook_tables`, then :func:`table_scores`) and each pair gathers its L·H scores:
s·(d·h + h·L·H) instead of B·P·(d·h + h·L·H) MACs.

Each function below is the equation in plain autograd ops, which CUDA, autocast and compile run; on
the CPU it calls a hand-written Function of :mod:`.combo_kernels` (chunked, recomputed in backward)
with the same values and gradients. Measured throughput, memory and AUC of both placements of the
gate and both paths: benchmarks/results/combo_kernels.md.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from features.hashing import HASH_SEED

from .combo_kernels import ChunkedPairScores, CodebookTables, GatherScores, project_siamese
from .embedding import gather_rows
from .hashing import codebook_seeds, combo_addresses, to_int32
from .pairs import mirror_cells, mirror_to_square, ordered_pairs, pairs_to_square, unordered_pairs

__all__ = ["Codebooks", "ComboIDScores", "GATE_ON", "codebook_scores", "codebook_tables", "pair_scores", "table_scores"]

GATE_ON = ("score", "codeword")


class Codebooks(nn.Module):
    """k+1 codebooks of s rows × d in one table: row m·s + a of codebook m. Init N(0, init_std²).

    ``sparse``: every batch gathers the rows of its pairs and the table's gradient is row-sparse
    (lazy Adam then steps only those rows). The trainer sets it when a training batch has far
    fewer pairs than a codebook has rows (:func:`dea_model.optim.sparse_tables`): few fields, e.g.
    MovieLens' 2. Otherwise a batch touches many rows and dense Adam is as fast and trains better.
    """

    is_embedding = True

    def __init__(self, count: int, size: int, dim: int, init_std: float = 0.01):
        super().__init__()
        if count * size >= 2**31:
            raise ValueError(f"(k+1)·codebook_size = {count}·{size} must be < 2³¹")
        self.count, self.size, self.dim = count, size, dim
        self.sparse = False
        self.weight = nn.Parameter(torch.randn(count * size, dim) * init_std)

    def extra_repr(self) -> str:
        return f"count={self.count}, size={self.size}, dim={self.dim}, sparse={self.sparse}"


class ComboIDScores(nn.Module):
    """Combo-ID attention logits A_m for all layers and heads: ids (B, n) → (L·H, B, n, n).

    Args:
        n_fields: n.   dim: codeword size d.   size: rows per codebook s.
        siamese: k siamese codebooks (0 = "w/o gsc": e_ij = C⁰[a⁰_ij], no gate).
        hidden: h of the pair MLP.   outputs: L·H score maps.
        diagonal: also look up the n pairs (i, i) ("keep" the diagonal); otherwise they are
            never hashed or gathered and A_m's diagonal is 0.
        symmetric: unordered pairs i < j, scored once and mirrored (A_m symmetric); no diagonal.
        gate_on: "score" scales the pair MLP's output by the gate, which lets the MLP run once per
            codeword (:func:`codebook_tables`; few pairs: :func:`codebook_scores`); "codeword" scales the
            codeword before the MLP, as Eq. 6-7 write it (:func:`pair_scores`). The same function when k = 0.
        seed: base of the codebook seeds (:func:`codebook_seeds`); stored in ``seeds``.
        init_std: the codewords' initial std.
    """

    def __init__(self, n_fields: int, dim: int, size: int, siamese: int, hidden: int, outputs: int,
                 diagonal: bool = False, seed: int = HASH_SEED, symmetric: bool = False, gate_on: str = "score",
                 init_std: float = 0.01):
        super().__init__()
        if symmetric and diagonal:
            raise ValueError("ComboIDScores: symmetric pairs need the diagonal removed (diagonal=False)")
        if gate_on not in GATE_ON:
            raise ValueError(f"ComboIDScores: gate_on must be one of {GATE_ON}, got {gate_on!r}")
        self.n_fields, self.size, self.siamese, self.gate_on = n_fields, size, siamese, gate_on
        self.diagonal, self.symmetric = diagonal, symmetric
        self.codebooks = Codebooks(siamese + 1, size, dim, init_std)
        left, right = unordered_pairs(n_fields) if symmetric else ordered_pairs(n_fields, diagonal)
        self.register_buffer("left", left, persistent=False)
        self.register_buffer("right", right, persistent=False)
        seeds = [to_int32(s) for s in codebook_seeds(seed, siamese + 1)]
        self.register_buffer("seeds", torch.tensor(seeds, dtype=torch.int32))
        if siamese:
            self.gate_weight = nn.Parameter(torch.randn(siamese, dim) / (siamese * dim) ** 0.5)  # W₀
            self.gate_bias = nn.Parameter(torch.zeros(()))                                     # b₀
        self.pair_mlp = nn.Linear(dim, hidden)          # W₁, b₁ (shared by all pairs and layers)
        self.out = nn.Linear(hidden, outputs)           # W₂^{(l)}, b₂^{(l)} stacked: L·H rows

    def batch_pairs(self, batch_size: int) -> int:
        """Pairs a batch of ``batch_size`` rows looks up in each codebook: B·P."""
        return batch_size * self.left.numel()

    def gathers_codewords(self, batch_size: int) -> bool:
        """Whether a batch of this size has fewer pairs than a codebook has rows (B·P < s)."""
        return self.batch_pairs(batch_size) < self.size

    def addresses(self, ids: Tensor) -> Tensor:
        """(k+1, B, P) int32 rows of the combined table (codebook m at offset m·s)."""
        return combo_addresses(ids, self.left, self.right, self.seeds, self.size)

    def gate(self, addr: Tensor, projected: Tensor | None = None) -> Tensor:
        """g = σ(Σ_m W₀^m·C^m[a^m] + b₀): addr (k, B, P) siamese rows → (B, P).

        Few pairs: gather k·d floats per pair, then project. Many pairs (B·P ≥ s): pass the
        projected siamese tables U (k, s) of :func:`codebook_tables` and one scalar per pair and
        codebook is gathered — the same value and gradients.
        """
        if projected is None:
            rows = gather_rows(self.codebooks.weight, addr, self.codebooks.sparse)       # (k, B, P, d)
            return torch.sigmoid(torch.einsum("mbpd,md->bp", rows, self.gate_weight) + self.gate_bias)
        by_row = F.pad(projected.flatten(), (self.size, 0)).view(-1, 1)      # U at rows m·s + a, like addr
        return torch.sigmoid(gather_rows(by_row, addr).sum(0).squeeze(-1) + self.gate_bias)

    def forward(self, ids: Tensor) -> Tensor:
        """A_m (L·H, B, n, n) of ids (B, n): addresses a^m (Eq. 4-5), gate g (Eq. 6), pair scores (Eq. 7-8)
        written into the pairs' cells, the diagonal never looked up (Eq. 9-10).

        Gate on the codeword: :func:`pair_scores`. Gate on the score: every codeword's scores once
        (:func:`codebook_tables`, then :func:`table_scores`), or with few pairs (B·P < s) or sparse
        codebooks only the gathered codewords' (:func:`codebook_scores`).
        """
        if ids.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
            # CPU bf16 autocast: the scores stay fp32, on the CPU Functions (faster than plain ops)
            with torch.autocast("cpu", enabled=False):
                return self.forward(ids)
        with torch.no_grad():
            addr = self.addresses(ids)                                            # (k+1, B, P)
        weight, size, k, sparse = self.codebooks.weight, self.size, self.siamese, self.codebooks.sparse
        gate_weight = self.gate_weight if k else None
        whole_tables = not (sparse or self.gathers_codewords(ids.shape[0]))      # many pairs: once per codeword
        if self.gate_on == "codeword" and k:                                      # Eq. 6-8 as written
            projected = codebook_tables(weight, size, gate_weight=gate_weight)[1] if whole_tables else None
            return pair_scores(weight, addr[0], self.gate(addr[1:], projected), self.pair_mlp, self.out,
                               self.n_fields, self.diagonal, symmetric=self.symmetric, sparse=sparse)
        options = dict(diagonal=self.diagonal, symmetric=self.symmetric, sparse=sparse)
        if not whole_tables:                                                      # few pairs: gathered codewords
            gate = self.gate(addr[1:]) if k else None
            return codebook_scores(weight, addr[0], gate, self.pair_mlp, self.out, self.n_fields, **options)
        scores, projected = codebook_tables(weight, size, self.pair_mlp, self.out, gate_weight)
        gate = self.gate(addr[1:], projected) if k else None
        return table_scores(scores, addr[0], gate, self.out.bias, self.n_fields, diagonal=self.diagonal,
                            symmetric=self.symmetric)                                  # (L·H, B, n, n)


# --- the scores: each equation in plain autograd ops, or on the CPU a Function of combo_kernels ---------

def _plain_ops(t: Tensor) -> bool:
    """Plain autograd ops instead of the CPU Functions of :mod:`.combo_kernels`: off the CPU (CUDA, and
    the meta device the tests run them on), under autocast, under compile."""
    return t.device.type != "cpu" or torch.is_autocast_enabled("cpu") or torch.compiler.is_compiling()


def codebook_tables(codebook: Tensor, size: int, mlp: nn.Linear | None = None, out: nn.Linear | None = None,
                    gate_weight: Tensor | None = None, *, block_rows: int | None = 2**14
                    ) -> tuple[Tensor | None, Tensor | None]:
    """Every codeword's pair scores and siamese projections, once per batch (B·P ≥ s).

        T = W₂ ReLU(W₁ C⁰ᵀ + b₁)      (O, s)   scores of main codeword a, before gate and b₂  (``mlp``, ``out``)
        U[m−1] = C^m W₀^m             (k, s)   siamese codebook m's share of the gate logit    (``gate_weight``)

    codebook ((k+1)·s, d): the k+1 codebooks of :class:`Codebooks`, C^m at rows m·s.  Either
    output is None when its weights are. T is fp32 under autocast (the scatter of its gradient
    accumulates in fp32). On CPU without autocast, blocks of ``block_rows`` rows
    (:class:`.combo_kernels.CodebookTables`); on CUDA, under compile and with ``block_rows=None``, plain autograd ops.
    """
    if block_rows is None or _plain_ops(codebook):
        scores = projected = None
        if mlp is not None:
            scores = _full_precision(F.linear(torch.relu(mlp(codebook[:size])), out.weight)).T
        if gate_weight is not None:
            projected = project_siamese(codebook, size, gate_weight)
        return scores, projected
    w1, b1, w2 = (None, None, None) if mlp is None else (mlp.weight, mlp.bias, out.weight)
    return CodebookTables.apply(codebook, size, w1, b1, w2, gate_weight, block_rows)


def _full_precision(t: Tensor) -> Tensor:
    """fp16/bf16 (autocast) → fp32, so the scatter of the table's gradient accumulates in fp32."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


def table_scores(scores: Tensor, addr: Tensor, gate: Tensor | None, bias: Tensor, n: int, *, diagonal: bool = False,
                 symmetric: bool = False, chunk_pairs: int | None = 2**20) -> Tensor:
    """A[:, b, p] = g_bp · T[:, addr_bp] + b₂ → (O, B, n, n): each pair gathers its O scores.

    scores T (O, R); addr (B, P) rows of T; gate (B, P) or None. On CPU the pairs go in chunks of
    about ``chunk_pairs`` (2²⁰: each scatter has a fixed cost, larger chunks measured faster),
    written straight into the maps. On CUDA, under autocast or compile and with ``chunk_pairs=None``,
    plain autograd ops (an embedding lookup of Tᵀ: deterministic backward on CUDA).
    """
    if chunk_pairs is None or _plain_ops(scores):
        gathered = gather_rows(scores.T, addr).permute(2, 0, 1)                    # (O, B, P)
        if gate is not None:
            gathered = gathered * gate
        gathered = gathered + bias.view(-1, 1, 1)
        return mirror_to_square(gathered, n) if symmetric else pairs_to_square(gathered, n, diagonal)
    mirror = mirror_cells(n, addr.device) if symmetric else None
    chunk = max(1, chunk_pairs // addr.shape[1])
    return GatherScores.apply(scores.contiguous(), addr, gate, bias, chunk, n, diagonal, mirror)


def codebook_scores(codebook: Tensor, addr: Tensor, gate: Tensor | None, mlp: nn.Linear, out: nn.Linear, n: int, *,
                    diagonal: bool = False, symmetric: bool = False, chunk_pairs: int | None = 2**20,
                    sparse: bool = False) -> Tensor:
    """A[:, b, p] = g_bp · W₂ ReLU(W₁ C[addr_bp] + b₁) + b₂, the pair MLP run once per codeword → (O, B, n, n).

        T = W₂ ReLU(W₁ Cᵀ + b₁)                (O, s)   every codeword's scores, before b₂
        A[:, b, p] = g_bp · T[:, addr_bp] + b₂            p's cell of the (O, B, n, n) maps

    The gate scales the pair's scores (``gate_on="score"``) instead of its codeword (:func:`pair_scores`);
    the two are the same function when there is no gate or b₁ = 0, since a gate g > 0 commutes
    with a bias-free ReLU layer: W₂ ReLU(W₁ (g c)) = g · W₂ ReLU(W₁ c). The MLP costs s·(d·h + h·O)
    MACs per batch instead of B·P·(d·h + h·O); each pair gathers O scores (the whole (O, s) table is
    6 MiB at s = 2¹⁸, O = 6) instead of d floats of a codeword, and backward scatters O floats per
    pair. When B·P < s (small batches, serving) T is computed for the B·P gathered codewords instead.

    codebook (s, d): the rows addr (B, P) can reach; gate (B, P) or None. ``chunk_pairs``: see
    :func:`table_scores` (None: plain autograd ops throughout). ``sparse``: always gather, and give
    the codebook the row-sparse gradient of the gathered rows. The maps are fp32 under autocast.
    """
    if sparse or addr.numel() < codebook.shape[0]:                                # T of the gathered rows only
        codebook = gather_rows(codebook, addr.reshape(-1), sparse)
        addr = torch.arange(addr.numel(), device=addr.device).view(addr.shape)
    scores, _ = codebook_tables(codebook, codebook.shape[0], mlp, out,
                                block_rows=None if chunk_pairs is None else 2**14)
    return table_scores(scores, addr, gate, out.bias, n, diagonal=diagonal, symmetric=symmetric,
                        chunk_pairs=chunk_pairs)


def pair_scores(table: Tensor, addr: Tensor, gate: Tensor | None, mlp: nn.Linear, out: nn.Linear, n: int,
                diagonal: bool = False, chunk_pairs: int | None = 16384, symmetric: bool = False,
                sparse: bool = False) -> Tensor:
    """A[:, b, i, j] = W₂ ReLU(W₁ (g_bp · C[addr_bp]) + b₁) + b₂ for pair p = (i, j)  →  (O, B, n, n).

    table (R, d); addr (B, P) int32/int64 rows, P in :func:`ordered_pairs` order (n(n−1) pairs, or n²
    with ``diagonal``; without it the diagonal is 0), or with ``symmetric`` in :func:`unordered_pairs`
    order (n(n−1)/2, each written to (i, j) and (j, i)); gate (B, P) or None (no gate). On CPU without
    autocast the pairs are processed in chunks of about ``chunk_pairs`` and recomputed in backward
    (same values and gradients); with ``chunk_pairs=None`` and elsewhere (CUDA, autocast,
    compile) plain autograd ops are used, as with ``sparse`` (the row-sparse gradient of the rows).
    """
    if symmetric and diagonal:
        raise ValueError("symmetric pairs are mirrored around a removed diagonal: diagonal must be False")
    if sparse or chunk_pairs is None or _plain_ops(table):
        e = gather_rows(table, addr, sparse)                                     # (B, P, d)
        if gate is not None:
            e = e * gate.unsqueeze(-1)
        scores = out(torch.relu(mlp(e))).permute(2, 0, 1)                        # (O, B, P)
        return mirror_to_square(scores, n) if symmetric else pairs_to_square(scores, n, diagonal)
    chunk = max(1, chunk_pairs // addr.shape[1])
    mirror = mirror_cells(n, addr.device) if symmetric else None
    return ChunkedPairScores.apply(table, addr, gate, mlp.weight, mlp.bias, out.weight, out.bias, chunk, n,
                                   diagonal, mirror)
