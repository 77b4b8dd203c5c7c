"""Self-attention over field tokens and the collapse-avoiding mask (DEA Eq. 11-14).

Shapes: B batch, n fields, H heads, d_h = d_a / H per head. Per-head tensors are **head-major**,
(H, B, n, ·): per-head weights then apply as one batched matmul over H without permutes.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["FieldAttention", "CollapseAvoiding", "safe_softmax"]


def safe_softmax(logits: Tensor) -> Tensor:
    """softmax over the last dim; a row that is −∞ everywhere gives zeros instead of NaN.

    The residual then carries that token unchanged. (A finite −1e9 fill would instead turn an
    empty row into uniform attention.)
    """
    alive = (logits != float("-inf")).any(-1, keepdim=True)
    return torch.softmax(logits.masked_fill(~alive, 0.0), -1) * alive


class FieldAttention(nn.Module):
    """Per-head projections of field tokens in one fused matmul, scores and value mixing.

    x (B, n, d_in) → [W_Q x, W_K x] (H, B, n, d_h) when ``qk``, W_V x (H, B, n, d_h), and
    W_R x (B, n, d_a) when ``residual`` (AutoInt's residual projection). No biases (AutoInt).

        S = Q Kᵀ / √d_h  (``scale``)  or  Q Kᵀ,        out = concat_h(P_h V_h)  (B, n, d_a)

    ``qk_norm``: Q and K are layer-normalised per head (learned gain and bias) before the product,
    so S is O(1) whatever the scale of the tokens (embeddings start at std 0.01: without it S starts
    around 1e-5 and a softmax over it is uniform).
    """

    def __init__(self, d_in: int, d_attn: int, heads: int, qk: bool = True, residual: bool = True,
                 scale: bool = True, qk_norm: bool = False):
        super().__init__()
        if d_attn % heads:
            raise ValueError(f"attention_dim {d_attn} is not a multiple of heads {heads}")
        self.d_attn, self.heads, self.qk, self.residual = d_attn, heads, qk, residual
        self.n_head_parts = 3 if qk else 1
        self.scale = 1.0 / math.sqrt(d_attn // heads) if scale else 1.0
        n_proj = (2 if qk else 0) + 1 + (1 if residual else 0)
        self.proj = nn.Linear(d_in, n_proj * d_attn, bias=False)
        self.q_norm, self.k_norm = ((nn.LayerNorm(d_attn // heads), nn.LayerNorm(d_attn // heads))
                                    if qk and qk_norm else (nn.Identity(), nn.Identity()))

    def forward(self, x: Tensor) -> tuple[Tensor | None, Tensor | None, Tensor, Tensor | None]:
        """x (B, n, d_in) → q, k, v (H, B, n, d_h) (q, k None without ``qk``), r (B, n, d_a) or None."""
        B, n, _ = x.shape
        m = self.n_head_parts
        y = self.proj(x)                                                   # (B, n, parts·d_a)
        y, r = y.split((m * self.d_attn, self.d_attn), -1) if self.residual else (y, None)
        # one copy to contiguous head-major parts: the batched matmuls on them are ~2× faster on CPU
        heads = y.view(B, n, m, self.heads, -1).permute(2, 3, 0, 1, 4).contiguous().unbind(0)  # m × (H, B, n, d_h)
        q, k = (self.q_norm(heads[0]), self.k_norm(heads[1])) if self.qk else (None, None)
        return q, k, heads[-1], r

    def scores(self, q: Tensor, k: Tensor) -> Tensor:
        """(H, B, n, n) = Q Kᵀ · scale."""
        return (q if self.scale == 1.0 else q * self.scale) @ k.transpose(-1, -2)

    @staticmethod
    def mix(p: Tensor, v: Tensor) -> Tensor:
        """P (H, B, n, n), V (H, B, n, d_h) → concat over heads (B, n, H·d_h)."""
        out = p @ v
        return out.permute(1, 2, 0, 3).reshape(out.shape[1], out.shape[2], -1)


class CollapseAvoiding(nn.Module):
    """Dynamic-threshold mask of Eq. 11-14, reading R1 (MODEL-NOTES §1.3).

    Eq. 14 makes x = e_i·e_jᵀ a scalar entry of S = QKᵀ, so its ‖·‖₂ in Eq. 13 is |S_ij| and

        τ_h = c · mean_{b, i≠j} |S_hbij|       (per head; detached; c = ``multiplier``)
        keep_hbij = |S_hbij| ≥ τ_h  for i ≠ j,   keep_hbii = True   (the diagonal is handled apart)

    Magnitude, not sign: strong negative ("repulsive") pairs survive. ``A_c = S ⊙ keep`` (0 fill)
    inside a fusion, −∞ fill when A_c stands alone — the caller applies the fill.

    Serving must not depend on batch-mates: in training τ is the batch statistic and a running
    mean τ̄ ← m·τ̄ + (1−m)·τ is kept (BatchNorm-style, no host sync); in eval τ̄ is used when
    ``running`` (the batch statistic until τ̄ has seen a batch). Under DDP each replica keeps its
    own τ̄. The hard mask passes no gradient to masked scores through A_c.
    """

    def __init__(self, heads: int, multiplier: float = 1.0, momentum: float = 0.99, running: bool = True):
        super().__init__()
        self.multiplier, self.momentum, self.running = multiplier, momentum, running
        self.register_buffer("tau_mean", torch.zeros(heads))
        self.register_buffer("tau_seen", torch.zeros((), dtype=torch.bool))

    def forward(self, s: Tensor) -> Tensor:
        """S (H, B, n, n) → keep mask (H, B, n, n) bool."""
        H, B, n, _ = s.shape
        mag = s.detach().abs()
        total = mag.sum((1, 2, 3), dtype=torch.float32) - mag.diagonal(dim1=-2, dim2=-1).sum((1, 2), dtype=torch.float32)
        batch_tau = total / (B * n * (n - 1))                                        # (H,) off-diagonal mean
        if self.training:
            with torch.no_grad():
                m = self.momentum
                self.tau_mean.copy_(torch.where(self.tau_seen, m * self.tau_mean + (1 - m) * batch_tau, batch_tau))
                self.tau_seen.fill_(True)
            tau = batch_tau
        elif self.running:
            tau = torch.where(self.tau_seen, self.tau_mean, batch_tau)
        else:
            tau = batch_tau
        keep = mag >= (self.multiplier * tau).to(mag.dtype).view(H, 1, 1, 1)
        keep.diagonal(dim1=-2, dim2=-1).fill_(True)
        return keep

    def extra_repr(self) -> str:
        return f"multiplier={self.multiplier}, momentum={self.momentum}, running={self.running}"
