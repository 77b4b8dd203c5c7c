"""Multi-valued fields as one field token each: EmbeddingBag-style pooling of their elements.

Model input with K multi-valued fields (``dea_model.data``)::

    ids = [x_1 … x_n | elements of bag 1 (L_1 columns) | … | bag K (L_K columns)]     (B, n + W)

Column f < n holds a field's ID, or for a multi-valued field its bag ID (``features.hashing.bag_ids``,
what ID-level layers such as Combo-ID pairs, HCNet and the vocabulary see). The element columns
hold element IDs, padded with ``PAD_ID``. The embedding of a bag field is the pooled embedding of
its elements, from the field's own rows of the table::

    e_f = Σ_j m_j · T[row(f, x_fj)] / max(1, Σ_j m_j)      (mean; sum: no division),   m_j = [x_fj ≠ PAD_ID]

so "Action|Comedy" and "Comedy" share the Comedy row, and an empty list embeds as zero. Every model
that embeds through ``FieldEmbedding`` gets this from ``CTRModel.use_bags`` with no change of its own.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

__all__ = ["PAD_ID", "BagPooling", "check_bags"]

PAD_ID = 0          # an empty element slot (no feature ID is 0 but with probability 2^-64)


def check_bags(bags: Sequence[Sequence], n_fields: int) -> list[tuple[int, int, str]]:
    """``[(field index, max_len, pooling), …]`` checked: indices in [0, n), distinct, ascending."""
    out = [(int(f), int(width), str(pooling)) for f, width, pooling in bags]
    fields = [f for f, _, _ in out]
    if fields != sorted(set(fields)) or any(not 0 <= f < n_fields for f in fields):
        raise ValueError(f"bags {out}: field indices must be distinct, ascending and below n_fields={n_fields}")
    bad = [b for b in out if b[1] < 1 or b[2] not in ("mean", "sum")]
    if bad:
        raise ValueError(f"bags {bad}: max_len must be ≥ 1 and pooling 'mean' or 'sum'")
    return out


class BagPooling(nn.Module):
    """Pools the element columns of ``ids`` into their fields' embeddings; one gather for all bags.

    ``forward(gather, rows, e (B, n, d), elements (B, W)) -> (B, n, d)``: ``gather`` looks rows of the
    embedding table up, ``rows`` is a field's row count; the bag fields' embeddings are replaced by
    their pooled elements.
    """

    def __init__(self, bags: Sequence[Sequence], n_fields: int):
        super().__init__()
        self.bags = check_bags(bags, n_fields)
        fields = torch.tensor([f for f, _, _ in self.bags], dtype=torch.long)
        widths = torch.tensor([w for _, w, _ in self.bags], dtype=torch.long)
        column_bag = torch.repeat_interleave(torch.arange(len(self.bags)), widths)            # (W,)
        self.register_buffer("fields", fields, persistent=False)
        self.register_buffer("column_field", fields[column_bag], persistent=False)             # (W,)
        self.register_buffer("segments", nn.functional.one_hot(column_bag, len(self.bags)).T.float(),
                             persistent=False)                                                # (K, W)
        self.register_buffer("mean", torch.tensor([p == "mean" for _, _, p in self.bags]), persistent=False)

    def forward(self, gather, rows: int, e: Tensor, elements: Tensor) -> Tensor:
        mask = (elements != PAD_ID).to(e.dtype)                                              # (B, W)
        g = gather(elements.remainder(rows) + self.column_field * rows)                      # (B, W, d)
        pooled = torch.einsum("bwd,kw->bkd", g * mask.unsqueeze(-1), self.segments.to(e.dtype))
        count = (mask @ self.segments.T.to(e.dtype)).clamp(min=1.0)                          # (B, K)
        pooled = torch.where(self.mean.view(1, -1, 1), pooled / count.unsqueeze(-1), pooled)
        return e.index_copy(1, self.fields, pooled)

    def extra_repr(self) -> str:
        return f"bags={self.bags}"
