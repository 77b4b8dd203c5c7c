"""The logistic-regression baseline: the simplest strong model of the field, on the same feature IDs.

    x = Σ_f onehot(id_f mod 2^20)            (N, 2^20) sparse, one 1 per field (IDs carry their field)
    p = σ(wᵀx + b)                            L2 penalty ‖w‖²/(2C), liblinear
    C = argmax over ``C_GRID`` of the validation day's AUC; refitting on the validation day is not
        done (the candidate models do not train on it either)

Every evaluation scores it beside the candidate, so a model that loses to it is seen losing.
"""

from __future__ import annotations

import time

import numpy as np
from scipy import sparse
from sklearn.linear_model import LogisticRegression

from . import metrics as M
from .layers.bags import PAD_ID

COLUMNS = 2**20
C_GRID = (0.03, 0.1, 0.3)


def one_hot(ids: np.ndarray) -> sparse.csr_matrix:
    """Hashed one-hot rows of int64 feature IDs (N, n) → CSR (N, ``COLUMNS``), a 1 per ID; element
    columns of multi-valued fields (``dea_model.data``) add their elements, padding adds nothing."""
    rows, n = ids.shape
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    columns = (ids.view(np.uint64) % np.uint64(COLUMNS)).astype(np.int32)
    present = ids != PAD_ID
    if present.all():
        indptr = np.arange(0, rows * n + 1, n, dtype=np.int64)
        return sparse.csr_matrix((np.ones(rows * n, np.float32), columns.ravel(), indptr), shape=(rows, COLUMNS))
    indptr = np.concatenate([[0], np.cumsum(present.sum(1))])
    return sparse.csr_matrix((np.ones(int(indptr[-1]), np.float32), columns[present], indptr), shape=(rows, COLUMNS))


def fit_logistic(x_train: np.ndarray, y_train: np.ndarray, x_valid: np.ndarray, y_valid: np.ndarray,
                 grid: tuple[float, ...] = C_GRID) -> tuple[LogisticRegression, dict]:
    """The best of ``grid`` by validation AUC: (model, {C, valid_auc, fit_seconds})."""
    start = time.perf_counter()
    train, valid = one_hot(x_train), one_hot(x_valid)
    best, best_auc, best_c = None, -np.inf, None
    for c in grid:
        model = LogisticRegression(C=c, solver="liblinear").fit(train, y_train)
        auc = M.auc(y_valid, model.predict_proba(valid)[:, 1])
        if auc > best_auc:
            best, best_auc, best_c = model, auc, c
    return best, {"C": best_c, "valid_auc": float(best_auc), "fit_seconds": time.perf_counter() - start}


def logistic_metrics(train: tuple[np.ndarray, np.ndarray], valid: tuple[np.ndarray, np.ndarray],
                     test: tuple[np.ndarray, np.ndarray, np.ndarray]) -> dict | None:
    """Test metrics (``metrics.ctr_metrics``) of the logistic baseline fitted on ``train`` (ids, y),
    C picked on ``valid`` (ids, y), scored on ``test`` (ids, y, group); None when a day has one class."""
    if len(np.unique(train[1])) < 2 or len(np.unique(valid[1])) < 2:
        return None
    model, fit = fit_logistic(*train, *valid)
    ids, y, group = test
    return {**M.ctr_metrics(y, model.predict_proba(one_hot(ids))[:, 1], group), **fit}
