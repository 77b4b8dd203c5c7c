"""Hashed field embeddings: int64 feature ID → row by modulo, all fields in one table.

    row(f, x) = f·m + (x mod m),      e_f = T[row(f, x_f)],      T ∈ R^{(n·m)×d}

Per-field tables of m rows each, stored as one (n·m, d) table with field offsets, so a batch is
one gather. Feature IDs are mmh3 64-bit hashes (``features.hashing``), hence uniform: a field with
V distinct values in m rows has an expected fraction

    collision_rate(V, m) = 1 − (1 − 1/m)^(V−1) ≈ 1 − exp(−V/m)

of its values sharing their row with another value. For the default m = 2¹⁶ = 65,536 rows:
V = 1,000 → 1.5 %, 10⁴ → 14 %, 10⁵ → 78 %. (m = 2¹⁸: 0.4 %, 3.7 %, 32 %.) The Criteo 100k set
has at most ~2,000 values per field (≤ 3 %). Per-field tables keep different fields from sharing
rows; the cost is memory for small fields. A dense optimizer would step the whole table every
batch (n·m·d parameters: 41 M for n = 39, m = 2¹⁶, d = 16); with ``sparse = True`` (the trainer's
default, ``TrainConfig.sparse_embeddings``) backward gives a row-sparse gradient of the B·n rows
looked up, and only those rows are stepped (lazy Adam), so the table size costs memory, not time.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .bags import BagPooling

__all__ = ["FieldEmbedding", "collision_rate", "gather_rows"]


class _GatherRows(torch.autograd.Function):
    """table[index] whose backward is one ``index_add_`` (3× faster than embedding's on CPU),
    or with ``sparse`` the uncoalesced (R, d) sparse COO gradient of the looked-up rows."""

    @staticmethod
    def forward(ctx, table: Tensor, index: Tensor, sparse: bool) -> Tensor:
        ctx.save_for_backward(index)
        ctx.rows, ctx.sparse = table.shape[0], sparse
        return table.index_select(0, index.reshape(-1)).view(*index.shape, table.shape[1])

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None]:
        (index,) = ctx.saved_tensors
        flat = grad.reshape(-1, grad.shape[-1])
        index = index.reshape(-1).long()  # index_add_ with an int64 index: about 5× faster than int32 on CPU
        if ctx.sparse:
            return (torch.sparse_coo_tensor(index.unsqueeze(0), flat, (ctx.rows, flat.shape[1]), check_invariants=False),
                    None, None)
        return flat.new_zeros(ctx.rows, flat.shape[1]).index_add_(0, index, flat), None, None


def gather_rows(table: Tensor, index: Tensor, sparse: bool = False) -> Tensor:
    """Rows of ``table`` (R, d) at ``index`` (any shape, int32/int64) → (*index.shape, d), differentiable.

    ``sparse``: the table's gradient is a sparse COO tensor of the looked-up rows (for
    ``torch.optim.SparseAdam``) instead of a dense (R, d) one. On CPU ``F.embedding``'s backward
    sorts the indices; an ``index_add_`` is 3× (d = 16) to 12× (d = 1) faster at 1.5 M indices.
    Off the CPU ``F.embedding`` is used (on CUDA: deterministic, fused).
    """
    if table.device.type != "cpu" or not torch.is_grad_enabled() or not table.requires_grad:
        return nn.functional.embedding(index, table, sparse=sparse)
    return _GatherRows.apply(table, index, sparse)


def collision_rate(n_values: int, rows: int) -> float:
    """Expected fraction of ``n_values`` uniformly hashed values that share their row: 1 − (1 − 1/m)^(V−1)."""
    return -math.expm1((n_values - 1) * math.log1p(-1.0 / rows)) if rows > 1 else float(n_values > 1)


class FieldEmbedding(nn.Module):
    """Embeddings of n fields' int64 IDs: (B, n) → (B, n, d); one (n·m, d) table, one gather.

    ``is_embedding = True`` tells :meth:`CTRModel.param_groups` to give the table the embedding
    weight decay. ``sparse`` (like ``nn.Embedding.sparse``): row-sparse gradients. Init N(0, init_std²).
    """

    is_embedding = True
    sparse = False

    def __init__(self, n_fields: int, dim: int, rows: int, init_std: float = 0.01):
        super().__init__()
        if rows < 1 or n_fields < 1 or dim < 1:
            raise ValueError(f"FieldEmbedding needs n_fields, dim, rows ≥ 1, got {n_fields}, {dim}, {rows}")
        self.n_fields, self.dim, self.rows = n_fields, dim, rows
        self.weight = nn.Parameter(torch.randn(n_fields * rows, dim) * init_std)
        self.register_buffer("offsets", torch.arange(n_fields) * rows, persistent=False)
        self.bag_pooling: BagPooling | None = None        # multi-valued fields (use_bags)

    def use_bags(self, bags) -> None:
        """Pool multi-valued fields from element columns after the n field columns (``layers.bags``)."""
        self.bag_pooling = BagPooling(bags, self.n_fields).to(self.weight.device) if bags else None

    def row_index(self, ids: Tensor) -> Tensor:
        """(B, n) int64 IDs → (B, n) table rows f·m + (x mod m)."""
        return ids.remainder(self.rows) + self.offsets

    def forward(self, ids: Tensor) -> Tensor:
        """(B, n) IDs, or (B, n + W) with bags → (B, n, d)."""
        e = gather_rows(self.weight, self.row_index(ids[:, :self.n_fields]), self.sparse)
        if self.bag_pooling is None:
            return e
        gather = lambda rows: gather_rows(self.weight, rows, self.sparse)   # noqa: E731
        return self.bag_pooling(gather, self.rows, e, ids[:, self.n_fields:])

    def extra_repr(self) -> str:
        return f"n_fields={self.n_fields}, dim={self.dim}, rows_per_field={self.rows}"
