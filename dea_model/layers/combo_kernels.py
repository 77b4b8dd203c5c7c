"""Hand-written CPU autograd Functions behind :mod:`dea_model.layers.combo`.

:mod:`~dea_model.layers.combo` states Eq. 4-10 in plain autograd ops, which CUDA, autocast and
``torch.compile`` run; on the CPU it calls these Functions instead. Each computes the same function
and the same gradients (tests/test_layers.py compares them with the plain ops and gradcheck), but
works a cache-sized chunk of samples (or block of codebook rows) at a time, recomputes the
activations in backward instead of keeping them, and writes the scores straight into the
(O, B, n, n) maps (O = L·H outputs) — on the CPU the per-pair path is memory-bound, and fresh
multi-hundred-MB tensors cost page faults at about 1 GB/s.

* :class:`CodebookTables`: T = W₂ ReLU(W₁ C⁰ᵀ + b₁) (O, s) and U = [C¹W₀¹ … CᵏW₀ᵏ] (k, s), one pass
  over the codebook table; backward writes the table's whole gradient once.
* :class:`GatherScores`: A[:, b, p] = g_bp · T[:, addr_bp] + b₂, each pair gathers its O scores.
* :class:`ChunkedPairScores`: A = W₂ ReLU(W₁ (g · C⁰[addr]) + b₁) + b₂ per pair (``gate_on="codeword"``).

What each keeps for backward: the addresses and gates per pair (GatherScores also the gathered
scores when the gate needs a gradient), never the (B·P, h) hidden activations. Measured memory and
throughput against the plain path: benchmarks/results/combo_kernels.md.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

__all__ = ["ChunkedPairScores", "CodebookTables", "GatherScores", "project_siamese"]


def project_siamese(codebook: Tensor, size: int, gate_weight: Tensor) -> Tensor:
    """U[m−1] = C^m W₀^m: the siamese rows (from row ``size`` on) of the codebook table → (k, s)."""
    siamese = codebook[size:].view(gate_weight.shape[0], size, -1)
    return torch.bmm(siamese, gate_weight.unsqueeze(-1)).squeeze(-1)


# --- pair scores ↔ cells of the (O, B, n, n) maps ------------------------------------------------------

def _pair_cells(square: Tensor, n: int, diagonal: bool) -> Tensor:
    """View of the pair cells of (O, c, n, n) maps in :func:`ordered_pairs` order: (O, c, n−1, n) or all."""
    if diagonal:
        return square
    return square.flatten(-2)[..., 1:].unflatten(-1, (n - 1, n + 1))[..., :n]


def _write_cells(square: Tensor, scores: Tensor, n: int, diagonal: bool, mirror) -> None:
    """Pair scores (O, c·P) into their cells of the (O, c, n, n) maps (both cells when mirrored)."""
    if mirror is None:
        cells = _pair_cells(square, n, diagonal)
        cells.copy_(scores.view(cells.shape))
    else:
        flat, scores = square.flatten(-2), scores.view(*square.shape[:2], -1)
        flat.index_copy_(2, mirror[0], scores).index_copy_(2, mirror[1], scores)


def _read_cells(square: Tensor, n: int, diagonal: bool, mirror) -> Tensor:
    """Gradient of the pair scores from the (O, c, n, n) maps' gradient → (O, c·P)."""
    O = square.shape[0]
    if mirror is None:
        return _pair_cells(square, n, diagonal).reshape(O, -1)
    flat = square.flatten(-2)
    return (flat.index_select(2, mirror[0]) + flat.index_select(2, mirror[1])).view(O, -1)


def _new_maps(like: Tensor, O: int, B: int, n: int, diagonal: bool) -> Tensor:
    """Uninitialised (O, B, n, n) maps for :func:`_write_cells`, the diagonal zeroed when it has no pairs."""
    out = like.new_empty(O, B, n, n)
    if not diagonal:
        out.diagonal(dim1=-2, dim2=-1).zero_()
    return out


# --- the Functions ---------------------------------------------------------------------------------------

class ChunkedPairScores(torch.autograd.Function):
    """Eq. 6-8 for every pair, a chunk of samples at a time, recomputed in backward.

    Saves only the addresses and gates for backward (no (B, P, h) activations), keeps every
    temporary a cache-sized chunk and writes the scores straight into the (O, B, n, n) maps. Skinny
    products are laid out the way BLAS runs them fast: W₂ hᵀ, not h W₂ᵀ.
    """

    @staticmethod
    def forward(ctx, table, addr, gate, w1, b1, w2, b2, chunk, n, diagonal, mirror):
        B = addr.shape[0]
        out = _new_maps(table, w2.shape[0], B, n, diagonal)
        for c in range(0, B, chunk):
            rows = table.index_select(0, addr[c:c + chunk].reshape(-1))         # (c·P, d)
            e = rows if gate is None else rows * gate[c:c + chunk].reshape(-1, 1)
            h = F.linear(e, w1, b1).relu_()                                    # (c·P, h)
            scores = torch.addmm(b2.unsqueeze(1), w2, h.T)                      # (O, c·P)
            _write_cells(out[:, c:c + chunk], scores, n, diagonal, mirror)
        ctx.save_for_backward(table, addr, gate, w1, b1, w2)
        ctx.chunk, ctx.n, ctx.diagonal, ctx.mirror = chunk, n, diagonal, mirror
        return out

    @staticmethod
    def backward(ctx, grad_out):
        table, addr, gate, w1, b1, w2 = ctx.saved_tensors
        chunk, n, diagonal, mirror, (B, P) = ctx.chunk, ctx.n, ctx.diagonal, ctx.mirror, addr.shape
        grad_out = grad_out.contiguous()
        g_table = torch.zeros_like(table) if ctx.needs_input_grad[0] else None
        g_gate = torch.empty_like(gate) if gate is not None and ctx.needs_input_grad[2] else None
        g_w1, g_w2, g_b2 = (torch.zeros_like(t) for t in (w1, w2, w2[:, 0]))
        g_b1 = None if b1 is None else torch.zeros_like(b1)
        for c in range(0, B, chunk):
            idx = addr[c:c + chunk].reshape(-1)
            rows = table.index_select(0, idx)
            g = None if gate is None else gate[c:c + chunk].reshape(-1, 1)
            e = rows if g is None else rows * g
            h = F.linear(e, w1, b1).relu_()
            g_s = _read_cells(grad_out[:, c:c + chunk], n, diagonal, mirror)      # (O, c·P)
            g_w2 += g_s @ h                          # not addmm_: the FLOP counter misses in-place products
            g_b2 += g_s.sum(1)
            g_h = torch.ops.aten.threshold_backward(g_s.T @ w2, h, 0)            # through ReLU
            g_w1 += g_h.T @ e
            if g_b1 is not None:
                g_b1 += g_h.sum(0)
            g_e = g_h @ w1                                                       # (c·P, d)
            if g_gate is not None:
                g_gate[c:c + chunk] = (g_e * rows).sum(-1).view(-1, P)
            if g_table is not None:
                g_table.index_add_(0, idx.long(), g_e if g is None else g_e.mul_(g))  # int64: 5× faster
        return g_table, None, g_gate, g_w1, g_b1, g_w2, g_b2, None, None, None, None


class GatherScores(torch.autograd.Function):
    """A[:, b, p] = g_bp · T[:, addr_bp] + b₂ written into the (O, B, n, n) maps, a chunk of samples at a time.

    Saves the table, addresses and gates, and the gathered (O, B·P) scores when the gate needs a
    gradient (its backward would gather them again); backward scatters into T.
    """

    @staticmethod
    def forward(ctx, table, addr, gate, bias, chunk, n, diagonal, mirror):
        B = addr.shape[0]
        out = _new_maps(table, table.shape[0], B, n, diagonal)
        keep = gate is not None and ctx.needs_input_grad[2]
        gathered = []                                # the ungated scores, for the gate's gradient
        for c in range(0, B, chunk):
            scores = table.index_select(1, addr[c:c + chunk].reshape(-1))          # (O, c·P)
            if keep:
                gathered.append(scores)
            if mirror is None:                       # one pass: g·T[a] + b₂ straight into the cells
                cells = _pair_cells(out[:, c:c + chunk], n, diagonal)
                scores, bias_ = scores.view(cells.shape), bias.view(-1, 1, 1, 1)
                if gate is None:
                    torch.add(scores, bias_, out=cells)
                else:
                    torch.addcmul(bias_, scores, gate[c:c + chunk].view(cells.shape[1:]), out=cells)
                continue
            if gate is not None:
                scores = scores * gate[c:c + chunk].reshape(1, -1)
            _write_cells(out[:, c:c + chunk], scores + bias.unsqueeze(1), n, diagonal, mirror)
        ctx.save_for_backward(table, addr, gate, *gathered)
        ctx.chunk, ctx.n, ctx.diagonal, ctx.mirror = chunk, n, diagonal, mirror
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        table, addr, gate, *gathered = ctx.saved_tensors
        chunk, n, diagonal, mirror, (B, P) = ctx.chunk, ctx.n, ctx.diagonal, ctx.mirror, addr.shape
        grad_out = grad_out.contiguous()
        g_table = torch.zeros_like(table) if ctx.needs_input_grad[0] else None
        g_gate = torch.empty_like(gate) if gate is not None and ctx.needs_input_grad[2] else None
        g_bias = table.new_zeros(table.shape[0]) if ctx.needs_input_grad[3] else None
        for i, c in enumerate(range(0, B, chunk)):
            idx = addr[c:c + chunk].reshape(-1).long()
            g_s = _read_cells(grad_out[:, c:c + chunk], n, diagonal, mirror)       # (O, c·P)
            if g_bias is not None:
                g_bias += g_s.sum(1)
            if gate is not None:
                if g_gate is not None:
                    g_gate[c:c + chunk] = torch.linalg.vecdot(g_s, gathered[i], dim=0).view(-1, P)
                g_s = g_s * gate[c:c + chunk].reshape(1, -1)
            if g_table is not None:
                g_table.index_add_(1, idx, g_s.to(g_table.dtype))
        return g_table, None, g_gate, g_bias, None, None, None, None


class CodebookTables(torch.autograd.Function):
    """T = W₂ ReLU(W₁ C⁰ᵀ + b₁) (O, s) and U = [C¹W₀¹ … CᵏW₀ᵏ] (k, s) from the ((k+1)·s, d) codebook table.

    One pass over the table, in cache-sized blocks of rows, the (s, h) activations recomputed in
    backward instead of kept; backward writes the table's whole gradient once (main rows from the
    MLP, siamese rows du ⊗ w) instead of zero-filling a full copy for each slice and adding them.
    """

    @staticmethod
    def forward(ctx, codebook, size, w1, b1, w2, gate_weight, block):
        main = codebook[:size]
        scores = None
        if w1 is not None:
            scores = codebook.new_empty(w2.shape[0], size)
            for r in range(0, size, block):
                scores[:, r:r + block] = w2 @ F.linear(main[r:r + block], w1, b1).relu_().T
        projected = None if gate_weight is None else project_siamese(codebook, size, gate_weight)
        ctx.save_for_backward(codebook, w1, b1, w2, gate_weight)
        ctx.size, ctx.block = size, block
        return scores, projected

    @staticmethod
    @once_differentiable
    def backward(ctx, g_scores, g_projected):
        codebook, w1, b1, w2, gate_weight = ctx.saved_tensors
        size, block = ctx.size, ctx.block
        g_codebook = torch.empty_like(codebook)
        g_w1 = g_b1 = g_w2 = g_gate_weight = None
        if w1 is None:
            g_codebook[:size].zero_()
        else:
            g_w1, g_b1, g_w2 = _mlp_backward(codebook[:size], g_scores, w1, b1, w2, block, g_codebook[:size])
        if gate_weight is None:
            g_codebook[size:].zero_()                                           # rows no output reads
        else:
            k = gate_weight.shape[0]
            siamese, g_siamese = codebook[size:].view(k, size, -1), g_codebook[size:].view(k, size, -1)
            torch.mul(g_projected.unsqueeze(-1), gate_weight.unsqueeze(1), out=g_siamese)  # du ⊗ w
            g_gate_weight = torch.bmm(g_projected.unsqueeze(1), siamese).squeeze(1)
        return g_codebook, None, g_w1, g_b1, g_w2, g_gate_weight, None


def _mlp_backward(main: Tensor, g_scores: Tensor, w1: Tensor, b1: Tensor | None, w2: Tensor, block: int,
                  g_main: Tensor) -> tuple[Tensor, Tensor | None, Tensor]:
    """Backward of T = W₂ ReLU(W₁ C⁰ᵀ + b₁) in blocks of rows: writes dC⁰ into ``g_main``, returns dW₁, db₁, dW₂."""
    g_w1, g_w2 = torch.zeros_like(w1), torch.zeros_like(w2)
    g_b1 = None if b1 is None else torch.zeros_like(b1)
    for r in range(0, main.shape[0], block):
        rows, g_t = main[r:r + block], g_scores[:, r:r + block]           # (c, d), (O, c)
        hidden = F.linear(rows, w1, b1).relu_()
        g_w2 += g_t @ hidden
        g_h = torch.ops.aten.threshold_backward(g_t.T @ w2, hidden, 0)  # (c, h) through ReLU
        g_w1 += g_h.T @ rows
        if g_b1 is not None:
            g_b1 += g_h.sum(0)
        torch.mm(g_h, w1, out=g_main[r:r + block])
    return g_w1, g_b1, g_w2
