"""Squeeze-and-excitation over fields (FiBiNET; FuxiCTR ``SqueezeExcitation``).

    z_i = mean_k e_ik                               squeeze             (B, n)
    a   = φ(W₂ ReLU(W₁ z)),  W₁ ∈ R^{r'×n}, W₂ ∈ R^{n×r'},  r' = max(1, ⌊n / r⌋)   (B, n)
    v_i = a_i · e_i                                 re-weighted fields  (B, n, d)

φ = ReLU (FiBiNET, FuxiCTR default: weights ≥ 0, unbounded) or sigmoid (weights in (0, 1)).
No biases, as in FuxiCTR.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["SENET"]


class SENET(nn.Module):
    """E (B, n, d) → (V (B, n, d), a (B, n)). ``reduction``: r; ``activation``: "relu" | "sigmoid"."""

    def __init__(self, n_fields: int, reduction: float = 3.0, activation: str = "relu"):
        super().__init__()
        if activation not in ("relu", "sigmoid"):
            raise ValueError(f"SENET activation must be 'relu' or 'sigmoid', got {activation!r}")
        if not reduction > 0:
            raise ValueError(f"SENET reduction ratio must be > 0, got {reduction!r}")
        hidden = max(1, int(n_fields / reduction))
        self.squeeze_to = nn.Linear(n_fields, hidden, bias=False)   # W₁
        self.excite = nn.Linear(hidden, n_fields, bias=False)       # W₂
        self.activation = torch.sigmoid if activation == "sigmoid" else torch.relu

    def forward(self, e: Tensor) -> tuple[Tensor, Tensor]:
        a = self.activation(self.excite(torch.relu(self.squeeze_to(e.mean(-1)))))   # (B, n)
        return e * a.unsqueeze(-1), a
