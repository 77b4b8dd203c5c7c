"""Flow ``train``: train a candidate on the window of days before the date.

The window's last day is the validation day (early stopping); the date itself is left for
``evaluate``. The run folder is ``dea_model.runs.run_dir`` (model.pt, config.json, metrics.json,
curve.json, _COMPLETE.json); training is skipped when its record matches the feature days and the
config (``dea_model.runs.train_record``).
"""

from __future__ import annotations

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from dea_model import runs
from dea_model.config import TrainConfig
from features.lake import up_to_date
from flows.guard import dataset_lock
from flows.params import DAILY_TRAIN, DatasetName, Day, Force, Home, RunDate, SpecOverrides, Training, Window
from flows.reports import artifact_key, publish, table


@task(cache_policy=NO_CACHE)
def fit_model(cfg: TrainConfig, day: Day, train_dates: list[str], valid_date: str, out) -> dict:
    from dea_model.train import train

    return train(cfg, day.lake, day.dataset, train_dates, valid_date, out).metrics


def _calibration_line(metrics: dict) -> str:
    cal = metrics.get("calibration")
    if not (cal and cal["fitted"]):
        return ""
    return (f"Logit calibration fitted on {metrics['valid_date']}: z' = {cal['scale']:.4f}·z + {cal['shift']:.4f}, "
            f"valid logloss {cal['valid_logloss_uncalibrated']:.4f} → {metrics['valid']['logloss']:.4f} "
            f"(AUC unchanged).\n\n")


@flow(name="train")
def train_flow(dataset: DatasetName = "synthetic", date: RunDate = None, window: Window = 3,
               train: Training = DAILY_TRAIN, force: Force = False, home: Home = None,
               spec_overrides: SpecOverrides = None) -> dict:
    """Train ``train.model`` on the ``window`` feature days before ``date`` (skip when current)."""
    log = get_run_logger()
    day = Day.open(dataset, date, home, spec_overrides)
    cfg = train.model_copy(update={"progress": False})  # no tqdm bars in flow logs
    out = runs.run_dir(day.lake, day.dataset, day.date, cfg, window)
    with dataset_lock(day.lake, day.dataset):
        train_dates, valid_date = day.split(window)
        skipped = not force and up_to_date(out, runs.train_record(day.lake, day.dataset, train_dates, valid_date, cfg))
        if skipped:
            log.info("model %s is up to date with its feature days and config: training skipped", out)
        metrics = runs.read(out, runs.METRICS) if skipped else fit_model(cfg, day, train_dates, valid_date, out)
    valid = metrics["valid"]
    log.info("candidate %s: valid %s AUC %.4f GAUC %.4f logloss %.4f (best epoch %d of %d)", cfg.model,
             metrics["valid_date"], valid["auc"], valid["gauc"], valid["logloss"], metrics["best_epoch"],
             metrics["epochs_run"])
    plot = out / runs.CURVE_PLOT
    picture = f"\n\n![training curve]({day.report_url(plot)})" if plot.exists() else ""
    publish(artifact_key("train", day.dataset, cfg.model),
            f"# Training of {cfg.model} on {day.dataset} for {day.date}\n\n"
            f"{'Up to date, skipped. ' if skipped else ''}Model folder `{out}`.\n\n" + _calibration_line(metrics)
            + table(runs.read(out, runs.CURVE), ["epoch", "train_loss", "valid_auc", "valid_gauc", "valid_logloss",
                                                 "seconds", "samples_per_second"]) + picture,
            f"training curve of {cfg.model} on {day.dataset}")
    return {"stage": "train", "model_dir": str(out), "skipped": skipped, "metrics": metrics,
            "curve_plot": str(plot) if plot.exists() else None}


if __name__ == "__main__":
    print(train_flow())
