"""The logistic-regression baseline every evaluation scores: hashed one-hot rows, C picked on the
validation day, and the line that says where a model stands against it and the oracle."""

from __future__ import annotations

import numpy as np
import pytest

from dea_model.logistic import C_GRID, COLUMNS, fit_logistic, logistic_metrics, one_hot
from flows.summary import standing


def _planted(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two fields of 50 IDs each with an additive effect per ID; group = the first field."""
    rng = np.random.default_rng(seed)
    ids = np.stack([rng.integers(0, 50, rows), rng.integers(1_000, 1_050, rows)], axis=1).astype(np.int64)
    effect = np.random.default_rng(99).normal(0, 1, 1_050)
    p = 1 / (1 + np.exp(-(effect[ids[:, 0]] + effect[ids[:, 1]] - 1.0)))
    return ids * 7_919 - 3, (rng.random(rows) < p).astype(np.int8), ids[:, 0]


def test_one_hot_has_one_column_per_field_and_folds_negative_ids():
    ids = np.array([[-1, 5], [COLUMNS + 5, 2**62]], dtype=np.int64)
    x = one_hot(ids)
    assert x.shape == (2, COLUMNS) and x.nnz == 4
    assert x[0, COLUMNS - 1] == 1 and x[0, 5] == 1 and x[1, 5] == 1    # -1 -> 2^64 - 1 mod 2^20; COLUMNS+5 -> 5
    assert x.sum() == 4


def test_the_baseline_learns_planted_effects_and_picks_c_on_the_validation_day():
    train, valid, (ids, y, g) = _planted(20_000, 0), _planted(5_000, 1), _planted(5_000, 2)
    m = logistic_metrics(train[:2], valid[:2], (ids, y, g))
    oracle_like = fit_logistic(*train[:2], *valid[:2])[1]
    assert m["C"] in C_GRID and m["valid_auc"] == pytest.approx(oracle_like["valid_auc"])
    assert 0.75 < m["auc"] < 0.85 and m["rows"] == 5_000 and m["groups"] == 50


def test_the_baseline_is_absent_when_a_day_has_one_class():
    train, valid, test = _planted(2_000, 0), _planted(500, 1), _planted(500, 2)
    assert logistic_metrics(train[:2], (valid[0], np.zeros(500, np.int8)), test) is None


def test_standing_says_the_margin_over_logistic_and_the_share_of_the_oracle_lift():
    base = {"prior": {"auc": 0.5}, "logistic": {"auc": 0.70}, "oracle": {"auc": 0.80}}
    assert standing(0.77, base) == "+0.0700 AUC vs logistic, 90% of the oracle's lift"
    assert standing(0.69, {"prior": {"auc": 0.5}, "logistic": {"auc": 0.70}}) == "-0.0100 AUC vs logistic"
    assert standing(0.69, {"prior": {"auc": 0.5}}) == ""
