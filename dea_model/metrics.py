"""CTR metrics: AUC, logloss, GAUC (impression-weighted per-group AUC) and calibration.

AUC and logloss come from scikit-learn. GAUC (DIN, Zhou et al. 2018; DEA Eq. 18)::

    GAUC = sum_g n_g * AUC_g / sum_g n_g      over groups g holding both classes

is computed without a loop over groups: one ``np.lexsort`` by (group, score), average ranks over
runs of tied scores inside a group (the Mann-Whitney convention, ties count 1/2, as sklearn), and
per-group sums with ``np.add.reduceat``::

    AUC_g = (R_g - P_g (P_g + 1) / 2) / (P_g (n_g - P_g))

with ``R_g`` the sum of the positives' ranks, ``P_g`` the positives and ``n_g`` the rows of group g.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.metrics import log_loss, roc_auc_score


def _check(labels, scores, groups=None) -> tuple[np.ndarray, ...]:
    y = np.asarray(labels).ravel()
    p = np.asarray(scores, dtype=np.float64).ravel()
    if y.shape != p.shape:
        raise ValueError(f"labels ({y.shape[0]}) and scores ({p.shape[0]}) differ in length")
    if not np.isfinite(p).all():
        raise ValueError(f"scores hold {int((~np.isfinite(p)).sum())} non-finite values")
    out = (y.astype(np.float64), p)
    if groups is not None:
        g = np.asarray(groups).ravel()
        if g.shape != y.shape:
            raise ValueError(f"groups ({g.shape[0]}) and labels ({y.shape[0]}) differ in length")
        out += (g,)
    return out


def auc(labels, scores) -> float:
    """ROC AUC (sklearn); NaN with a warning when only one class is present."""
    y, p = _check(labels, scores)
    if y.size == 0 or y.min() == y.max():
        warnings.warn("AUC is undefined with a single class; returning NaN", RuntimeWarning, stacklevel=2)
        return float("nan")
    return float(roc_auc_score(y, p))


def logloss(labels, probs) -> float:
    """Binary cross-entropy of probabilities (sklearn clips them away from 0 and 1)."""
    y, p = _check(labels, probs)
    return float(log_loss(y, np.clip(p, 1e-7, 1 - 1e-7), labels=[0, 1]))


def calibration(labels, probs) -> float:
    """Mean predicted CTR over observed CTR (1.0 is calibrated; NaN when no positives)."""
    y, p = _check(labels, probs)
    observed = y.mean() if y.size else 0.0
    return float(p.mean() / observed) if observed > 0 else float("nan")


def group_aucs(labels, scores, groups) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-group AUC, size and validity, vectorised.

    Returns ``(auc_g, n_g, valid_g)``, each of shape [G] over the distinct groups in sorted order;
    ``auc_g`` is NaN where the group holds a single class (``valid_g`` False).
    """
    y, p, g = _check(labels, scores, groups)
    if y.size == 0:
        return np.empty(0), np.empty(0, np.int64), np.empty(0, bool)
    order = np.lexsort((p, g))                      # by group, then score ascending
    ys, ps, gs = y[order], p[order], g[order]
    new_group = np.r_[True, gs[1:] != gs[:-1]]
    starts = np.flatnonzero(new_group)              # [G] first position of each group
    gid = np.cumsum(new_group) - 1                  # [N] group index of each sorted row
    rank = np.arange(1, y.size + 1) - starts[gid]   # [N] 1-based rank inside the group
    # Average ranks over runs of equal (group, score): run of ranks a..b -> (a + b) / 2.
    new_run = new_group | np.r_[True, ps[1:] != ps[:-1]]
    run_start = np.flatnonzero(new_run)
    run_end = np.r_[run_start[1:], y.size] - 1
    run_id = np.cumsum(new_run) - 1
    avg_rank = (rank[run_start] + rank[run_end]) / 2.0
    ranks = avg_rank[run_id]
    n = np.diff(np.r_[starts, y.size])
    pos = np.add.reduceat(ys, starts)
    rank_sum = np.add.reduceat(ranks * ys, starts)
    valid = (pos > 0) & (pos < n)
    with np.errstate(divide="ignore", invalid="ignore"):
        aucs = np.where(valid, (rank_sum - pos * (pos + 1) / 2) / (pos * (n - pos)), np.nan)
    return aucs, n, valid


def gauc_stats(labels, scores, groups) -> tuple[float, float, int]:
    """``(gauc, coverage, groups)``: the impression-weighted mean of per-group AUC over groups with
    both classes (NaN, without a warning, when there is none), the share of rows in those groups,
    and the number of distinct groups. The one implementation of the GAUC formula."""
    aucs, n, valid = group_aucs(labels, scores, groups)
    if not valid.any():
        return float("nan"), 0.0, int(n.size)
    weights = n[valid]
    return float(np.sum(weights * aucs[valid]) / np.sum(weights)), float(weights.sum() / n.sum()), int(n.size)


def gauc(labels, scores, groups) -> float:
    """Impression-weighted mean of per-group AUC over groups with both classes.

    NaN with a warning when no group holds both classes.
    """
    value, _, _ = gauc_stats(labels, scores, groups)
    if np.isnan(value):
        warnings.warn("GAUC is undefined: no group holds both clicks and non-clicks; returning NaN",
                      RuntimeWarning, stacklevel=2)
    return value


def ctr_metrics(labels, probs, groups=None) -> dict[str, float]:
    """Every metric of one evaluation: auc, gauc, logloss, calibration, and counts.

    ``gauc_coverage`` is the share of rows in groups that count towards GAUC. Without ``groups``
    (or with a constant group, i.e. a dataset without a group field) GAUC is NaN.
    """
    y, p = _check(labels, probs)
    out = {"rows": int(y.size), "ctr": float(y.mean()) if y.size else float("nan"),
           "auc": auc(y, p), "logloss": logloss(y, p), "calibration": calibration(y, p),
           "gauc": float("nan"), "gauc_coverage": 0.0, "groups": 0}
    g = None if groups is None else np.asarray(groups).ravel()
    if g is not None and g.size and (g != g[0]).any():
        out["gauc"], out["gauc_coverage"], out["groups"] = gauc_stats(y, p, g)
    return out
