"""Flow ``train``: train a candidate on the window of days before the date.

The window's last day is the validation day (early stopping); the date itself is left for
``evaluate``. The model is written to ``runs/<dataset>/dt=<date>/<model>-<config hash>-w<window>/``
(``dea_model.train``'s folder: model.pt, config.json, metrics.json, curve.json, _COMPLETE.json)
and training is skipped when that folder's record matches the feature days and the config.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from flows import settings

settings.apply()

from prefect import flow, get_run_logger, task  # noqa: E402
from prefect.cache_policies import NO_CACHE  # noqa: E402

from dea_model.config import TrainConfig  # noqa: E402
from features.lake import fingerprint, make_record, up_to_date  # noqa: E402
from flows.guard import dataset_lock  # noqa: E402
from flows.params import DAILY_TRAIN, Day  # noqa: E402
from flows.reports import artifact_key, publish, table  # noqa: E402


def split_window(day: Day, window: int) -> tuple[list[str], str]:
    """(training days, validation day): the ``window`` days before the date, the last one validates."""
    if window < 2:
        raise ValueError(f"dataset {day.dataset!r}, date {day.date}: window must be at least 2 days "
                         f"(training days + one validation day), got {window}")
    dates = day.window(window)
    return dates[:-1], dates[-1]


def run_dir(day: Day, cfg: TrainConfig, window: int) -> Path:
    """Where the candidate of this date, config and window is trained."""
    return day.lake.runs() / day.dataset / f"dt={day.date}" / f"{cfg.model}-{cfg.config_hash()}-w{window}"


def train_record(day: Day, cfg: TrainConfig, window: int) -> dict:
    """The completion record ``dea_model.train`` writes for these inputs (same keys, same digest)."""
    train_dates, valid_date = split_window(day, window)
    inputs = {f"features/{d}": fingerprint(day.lake.features(day.dataset, d)) for d in [*train_dates, valid_date]}
    return make_record("train", inputs, cfg.config_hash())


@task(cache_policy=NO_CACHE)
def fit_model(cfg: TrainConfig, day: Day, window: int, out: Path) -> dict:
    from dea_model.train import train

    train_dates, valid_date = split_window(day, window)
    return train(cfg, day.lake, day.dataset, train_dates, valid_date, out).metrics


@flow(name="train")
def train_flow(dataset: str = "synthetic", date: dt.date | None = None, window: int = 3,
               train: TrainConfig = DAILY_TRAIN, force: bool = False, home: str | None = None,
               spec_overrides: dict[str, Any] | None = None) -> dict:
    """Train ``train.model`` on the ``window`` feature days before ``date`` (skip when current)."""
    log = get_run_logger()
    day = Day.open(dataset, date, home, spec_overrides)
    cfg = train.model_copy(update={"progress": False})  # no tqdm bars in flow logs
    out = run_dir(day, cfg, window)
    with dataset_lock(day.lake, day.dataset):
        skipped = not force and up_to_date(out, train_record(day, cfg, window))
        if skipped:
            log.info("model %s is up to date with its feature days and config: training skipped", out)
            metrics = json.loads((out / "metrics.json").read_text())
        else:
            metrics = fit_model(cfg, day, window, out)
    valid = metrics["valid"]
    log.info("candidate %s: valid %s AUC %.4f GAUC %.4f logloss %.4f (best epoch %d of %d)", cfg.model,
             metrics["valid_date"], valid["auc"], valid["gauc"], valid["logloss"], metrics["best_epoch"],
             metrics["epochs_run"])
    curve = json.loads((out / "curve.json").read_text())
    cal = metrics.get("calibration")
    calibrated = (f"Logit calibration fitted on {metrics['valid_date']}: z' = {cal['scale']:.4f}·z + "
                  f"{cal['shift']:.4f}, valid logloss {cal['valid_logloss_uncalibrated']:.4f} → "
                  f"{valid['logloss']:.4f} (AUC unchanged).\n\n" if cal and cal["fitted"] else "")
    publish(artifact_key("train", day.dataset, cfg.model),
            f"# Training of {cfg.model} on {day.dataset} for {day.date}\n\n"
            f"{'Up to date, skipped. ' if skipped else ''}Model folder `{out}`.\n\n" + calibrated
            + table(curve, ["epoch", "train_loss", "valid_auc", "valid_gauc", "valid_logloss", "seconds",
                            "samples_per_second"]),
            f"training curve of {cfg.model} on {day.dataset}")
    return {"stage": "train", "model_dir": str(out), "skipped": skipped, "metrics": metrics}


if __name__ == "__main__":
    print(train_flow())
