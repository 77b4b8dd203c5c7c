"""A training run's folder: where it lives, what it holds, its completion record.

``dea_model.train.train`` writes one folder atomically; the flows, evaluation and the registry read
it through the names here::

    model.pt        state_dict only (loaded with torch.load(..., weights_only=True))
    config.json     TrainConfig, model name + hparams, dataset, fields, feature signature, dates
    metrics.json    best-epoch validation metrics, calibrated (+ test metrics when a test day is
                    given), and the fitted calibration {scale, shift, valid_logloss_uncalibrated}
    curve.json      per epoch: train loss, valid auc/gauc/logloss, seconds, samples/s
    curve.png       the same, drawn (``plot`` on)
    _COMPLETE.json  completion record: the feature days' fingerprints, the config hash, checksums

Where: ``runs/<dataset>/dt=<date>/<model>-<config hash>-w<window>/`` for the daily flows (its
evaluation beside it in ``….eval/``), ``runs/<dataset>/adhoc/<model>-<UTC time>-<random>/`` for
``dea train``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from dea_model.config import TrainConfig
from upath import UPath

from features.lake import Lake, fingerprint, make_record, staged_dir, write_record
from features.storage import lake_path

WEIGHTS, CONFIG, METRICS, CURVE, CURVE_PLOT = "model.pt", "config.json", "metrics.json", "curve.json", "curve.png"
EVALUATION = "evaluation.json"


def run_dir(lake: Lake, dataset: str, date: str, cfg: TrainConfig, window: int) -> UPath:
    """The daily flows' candidate for ``date``, trained with ``cfg`` on a ``window``-day window."""
    return lake.runs() / dataset / f"dt={date}" / f"{cfg.model}-{cfg.config_hash()}-w{window}"


def eval_dir(model_dir: UPath) -> UPath:
    """Where a candidate's evaluation (beside the champion and baselines) is written."""
    return model_dir.with_name(model_dir.name + ".eval")


def new_run_dir(lake: Lake, dataset: str, model: str) -> UPath:
    """A folder no other run has: ``runs/<dataset>/adhoc/<model>-<UTC time to the µs>-<random>``
    (two ``dea train`` started in the same second must not replace each other's model)."""
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M%S-%f")
    return lake.runs() / dataset / "adhoc" / f"{model}-{stamp}-{uuid.uuid4().hex[:6]}"


def train_record(lake: Lake, dataset: str, train_dates: list[str], valid_date: str, cfg: TrainConfig) -> dict:
    """The completion record of a run on these feature days with this config: what decides whether
    an existing run folder is up to date (``features.lake.up_to_date``)."""
    inputs = {f"features/{d}": fingerprint(lake.features(dataset, d)) for d in [*train_dates, valid_date]}
    return make_record("train", inputs, cfg.config_hash(), model=cfg.model, dataset=dataset)


def write_run(out_dir: os.PathLike, state: dict, *, config: dict, metrics: dict, curve: list[dict], record: dict,
              plot_title: str | None = None) -> None:
    """Write a run folder atomically: weights, the three JSON documents, the plot, the record last."""
    import torch

    with staged_dir(out_dir) as tmp:         # local files, published to the lake
        torch.save(state, tmp / WEIGHTS)
        for name, obj in ((CONFIG, config), (METRICS, metrics), (CURVE, curve)):
            (tmp / name).write_text(json.dumps(obj, indent=2, default=_json_default))
        if plot_title:
            plot_curve(curve, tmp / CURVE_PLOT, plot_title)
        write_record(tmp, record)


def read(model_dir: os.PathLike, name: str) -> Any:
    """One of a run folder's JSON documents (``CONFIG``, ``METRICS``, ``CURVE``)."""
    path = lake_path(model_dir) / name
    if not path.is_file():
        raise FileNotFoundError(f"{model_dir} is not a trained model folder: {name} is missing")
    return json.loads(path.read_text())


def _json_default(x):
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    return str(x)


def plot_curve(curve: list[dict], path: Path, title: str) -> None:
    """Train loss and valid logloss (left), valid AUC and GAUC (right) per epoch."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # plotting is a nicety, never a failure
        return
    epochs = [c["epoch"] for c in curve]
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.5))
    a.plot(epochs, [c["train_loss"] for c in curve], "o-", label="train loss")
    a.plot(epochs, [c["valid_logloss"] for c in curve], "o-", label="valid logloss")
    b.plot(epochs, [c["valid_auc"] for c in curve], "o-", label="valid AUC")
    b.plot(epochs, [c["valid_gauc"] for c in curve], "o-", label="valid GAUC")
    for ax in (a, b):
        ax.set_xlabel("epoch")
        ax.legend()
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
