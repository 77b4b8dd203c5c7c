"""Feed-forward blocks."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

__all__ = ["MLP"]


class MLP(nn.Sequential):
    """x → [Linear → ReLU → Dropout] per hidden width → Linear(d_out) (omitted when d_out is None).

    (B, d_in) → (B, d_out), or (B, hidden[-1]) without the output layer.
    """

    def __init__(self, d_in: int, hidden: Sequence[int], d_out: int | None = 1, dropout: float = 0.0):
        layers: list[nn.Module] = []
        for width in hidden:
            layers += [nn.Linear(d_in, width), nn.ReLU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            d_in = width
        if d_out is not None:
            layers.append(nn.Linear(d_in, d_out))
        super().__init__(*layers)
        self.d_out = d_out if d_out is not None else d_in

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102 - nn.Sequential's, typed
        return super().forward(x)
