"""Field pairs (ordered, or unordered and mirrored) and their (B, …, n, n) score matrices."""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["ordered_pairs", "unordered_pairs", "pairs_to_square", "mirror_cells", "mirror_to_square", "DIAG_MODES",
           "apply_diagonal"]

DIAG_MODES = ("keep", "zero", "neg_inf")


def ordered_pairs(n: int, diagonal: bool = False) -> tuple[Tensor, Tensor]:
    """(left, right): the ordered pairs (i, j) in row-major order, i ≠ j unless ``diagonal``.

    P = n(n−1) pairs, or n² with the diagonal.
    """
    keep = torch.ones(n, n, dtype=torch.bool) if diagonal else ~torch.eye(n, dtype=torch.bool)
    left, right = torch.nonzero(keep, as_tuple=True)
    return left, right


def unordered_pairs(n: int) -> tuple[Tensor, Tensor]:
    """(left, right) int64 (P,): the pairs i < j of n fields in row-major order, P = n(n−1)/2."""
    left, right = torch.triu_indices(n, n, 1)
    return left, right


@functools.lru_cache(maxsize=16)
def mirror_cells(n: int, device: torch.device | str = "cpu") -> tuple[Tensor, Tensor]:
    """Flat cells (i·n + j, j·n + i) of the :func:`unordered_pairs` in an n×n matrix: (upper, lower).

    Cached per (n, device): the callers run every forward pass. Do not modify the tensors.
    """
    left, right = unordered_pairs(n)
    return (left * n + right).to(device), (right * n + left).to(device)


@functools.lru_cache(maxsize=16)
def _mirror_index(n: int, device: torch.device) -> Tensor:
    upper, lower = mirror_cells(n, device)
    index = torch.full((n * n,), len(upper), dtype=torch.long, device=device)   # → the appended zero
    index[upper] = index[lower] = torch.arange(len(upper), device=device)
    return index


def mirror_to_square(x: Tensor, n: int) -> Tensor:
    """(…, P) values of the :func:`unordered_pairs` → symmetric (…, n, n), S_ij = S_ji = x_p, diagonal 0."""
    return F.pad(x, (0, 1)).index_select(-1, _mirror_index(n, x.device)).unflatten(-1, (n, n))


def pairs_to_square(x: Tensor, n: int, diagonal: bool = False, fill: float = 0.0) -> Tensor:
    """(…, P) pair values in :func:`ordered_pairs` order → (…, n, n), the diagonal set to ``fill``.

    Without the diagonal this is a pad, not a scatter: the n²−1 cells after (0, 0) split into
    n−1 runs of n off-diagonal cells each followed by one diagonal cell.
    """
    lead = x.shape[:-1]
    if diagonal:
        return x.reshape(*lead, n, n)
    x = F.pad(x.reshape(*lead, n - 1, n), (0, 1), value=fill)  # (…, n−1, n+1)
    return F.pad(x.flatten(-2), (1, 0), value=fill).reshape(*lead, n, n)


def apply_diagonal(s: Tensor, mode: str) -> Tensor:
    """S with its diagonal kept, set to 0 (literal A − diag(A), Eq. 10) or to −∞ (excluded)."""
    if mode == "keep":
        return s
    eye = torch.eye(s.shape[-1], dtype=torch.bool, device=s.device)
    return s.masked_fill(eye, 0.0 if mode == "zero" else float("-inf"))
