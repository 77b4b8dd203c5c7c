"""The training loop: fit a model from ``dea_model.models`` on a window of feature days.

``train`` validates after every epoch, keeps the state with the best validation AUC (early stopping
after ``patience`` epochs without a better one), Platt-scales its logit on the validation day
(``dea_model.calibration``: AUC and GAUC unchanged, logloss and calibration fixed) and writes one
run folder atomically (``dea_model.runs``). With ``min_id_count`` the IDs seen fewer times on the
training days become one OOV ID per field (``dea_model.vocabulary``).

Loss: binary cross-entropy on logits, L = -mean(y log σ(z) + (1 - y) log(1 - σ(z))). The forward
runs under bf16 autocast where ``dea_model.device.use_bf16`` says (loss in fp32); ``torch.compile``
is opt-in. Scoring a trained model is ``dea_model.scoring``. With ``nproc`` > 1 the loop runs
data-parallel on that many processes (``dea_model.distributed``): the same global batches, rank 0
validates and writes.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dea_model import calibration, distributed, models, vocabulary
from dea_model import metrics as M
from dea_model.config import TrainConfig
from dea_model.data import Batches, FeatureTable, bag_layout, label_rate, open_days
from dea_model.device import autocast, resolve_device, to_device, use_bf16
from dea_model.optim import clip_grad_norm, make_optimizer
from dea_model.runs import train_record, write_run
from dea_model.scoring import load_model, predict_batches, sigmoid
from features.lake import Lake, code_version
from features.manifest import Manifest
from features.storage import lake_path

log = logging.getLogger(__name__)


class NonFiniteLossError(FloatingPointError):
    """Training diverged: the loss became NaN or infinite (the message names epoch and step)."""


@dataclass
class TrainResult:
    out_dir: Path
    metrics: dict                     # the content of metrics.json
    curve: list[dict]                 # the content of curve.json
    model: nn.Module = field(repr=False)   # best-epoch weights, on CPU, eval mode
    test_scores: tuple[np.ndarray, np.ndarray, np.ndarray] | None = field(default=None, repr=False)
    # (p, y, group) of the test day's rows when trained with a test_date, else None


# --- pieces -------------------------------------------------------------------------------------

def _calibrate(model: nn.Module, z: np.ndarray, y: np.ndarray, g: np.ndarray, dataset: str, date: str) -> dict:
    """Fit the model's logit calibration on the best epoch's validation logits ``z`` (computed
    with the identity calibration the model trained with).

    Returns ``{scale, shift, fitted, valid_logloss_uncalibrated, valid}``, ``valid`` being the
    calibrated metrics, scored with the forward hook's own arithmetic. The calibrated validation
    logloss is in-sample (a, b were fitted on that day): judge calibration on a later day.
    """
    uncalibrated = M.ctr_metrics(y, sigmoid(z), g)
    fitted = calibration.fit(z, y)
    if fitted is None:
        log.warning("dataset %r, valid day %s: logit calibration not fitted (one class, non-finite logits, "
                    "or a reversed ranking); the model stays uncalibrated", dataset, date)
        return {"scale": 1.0, "shift": 0.0, "fitted": False,
                "valid_logloss_uncalibrated": uncalibrated["logloss"], "valid": uncalibrated}
    a, b = fitted
    calibration.set_calibration(model, a, b)
    valid = M.ctr_metrics(y, sigmoid(calibration.calibrate_logits(torch.from_numpy(z), a, b).numpy()), g)
    log.info("logit calibration on %s: z' = %.4f z + %.4f; valid logloss %.4f -> %.4f", date, a, b,
             uncalibrated["logloss"], valid["logloss"])
    return {"scale": a, "shift": b, "fitted": True, "valid_logloss_uncalibrated": uncalibrated["logloss"],
            "valid": valid}


def _check_finite(window: list[torch.Tensor], epoch: int, first_step: int) -> float:
    """Mean of a window of step losses; error naming the first bad step (one sync per window)."""
    losses = torch.stack(window).float().cpu()
    bad = (~torch.isfinite(losses)).nonzero()
    if len(bad):
        i = int(bad[0])
        raise NonFiniteLossError(f"training diverged: loss is {losses[i].item()} at epoch {epoch}, step {first_step + i} "
                                 f"(lower lr, set grad_clip, or check the inputs)")
    return float(losses.mean())


# --- training -----------------------------------------------------------------------------------

def _train_epoch(model: nn.Module, forward, optimizer: torch.optim.Optimizer, data: Batches, cfg: TrainConfig,
                 device: torch.device, bf16: bool, generator: torch.Generator, epoch: int,
                 group: distributed.Group | None = None) -> float:
    """One pass over ``data`` in a fresh seeded order; returns the mean step loss (over ranks too).

    Step losses stay on the device and are checked every ``check_every`` steps (one sync each).
    """
    model.train()
    loss_sum, steps, window, step0 = 0.0, 0, [], 0
    with _progress(cfg, len(data), f"{cfg.model} epoch {epoch}", group) as bar:
        for step, batch in enumerate(data.batches(cfg.batch_size, shuffle=True, generator=generator)):
            loss = _step(model, forward, optimizer, batch, cfg, device, bf16, group)
            if group is not None and epoch == 1 and step == 0:
                group.broadcast_state(model)              # one model again after first-batch statistics
            if loss is not None:
                window.append(loss)
            bar.update(len(batch.label))
            if len(window) == cfg.check_every:
                mean = _check_finite(window, epoch, step0)
                loss_sum, steps = loss_sum + mean * len(window), steps + len(window)
                bar.set_postfix(loss=f"{mean:.4f}")
                window, step0 = [], step + 1
        if window:
            loss_sum, steps = loss_sum + _check_finite(window, epoch, step0) * len(window), steps + len(window)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    mean = loss_sum / max(steps, 1)
    return mean if group is None else group.mean(mean)


def _step(model: nn.Module, forward, optimizer: torch.optim.Optimizer, batch, cfg: TrainConfig,
          device: torch.device, bf16: bool, group: distributed.Group | None) -> torch.Tensor | None:
    """One optimizer step; returns the mean loss of the batch (None for a rank's empty share).

    Alone: the loss is the batch mean. As a rank: the sum over the rank's rows, and
    ``group.sync_grads`` turns the gradients into those of the global batch's mean loss.
    """
    ids, y = to_device(batch.ids, device), to_device(batch.label, device)
    optimizer.zero_grad(set_to_none=True)
    loss = None
    if len(y):
        with autocast(device, bf16):
            logits = forward(ids)                                          # (B,)
        loss = F.binary_cross_entropy_with_logits(logits.float(), y, reduction="mean" if group is None else "sum")
        loss.backward()
    if group is not None:
        group.sync_grads(optimizer, len(y))
        loss = None if loss is None else loss / len(y)
    if cfg.grad_clip:
        clip_grad_norm(model.parameters(), cfg.grad_clip)
    optimizer.step()
    return None if loss is None else loss.detach()


def train(cfg: TrainConfig, lake: Lake, dataset: str, train_dates: list[str], valid_date: str,
          out_dir: str | Path, *, test_date: str | None = None, model: nn.Module | None = None) -> TrainResult:
    """Train on ``train_dates``, early-stop on ``valid_date``'s AUC, write the run folder ``out_dir``
    (``dea_model.runs``).

    ``model`` overrides ``build_model(cfg.model, n_fields, **cfg.hparams)`` (benchmarks pass
    external models this way). With ``test_date`` the best state is also scored on that day.
    Nothing is written unless training completes. With ``cfg.nproc`` > 1 it trains on that many
    processes of this host and returns rank 0's result, its model reloaded from ``out_dir``; in a
    process torchrun started it trains as that rank (and returns None on ranks other than 0).
    """
    _check_days(dataset, train_dates, valid_date, test_date)
    if cfg.nproc > 1 and not distributed.in_rank():
        return _train_on_ranks(cfg, lake, dataset, list(train_dates), valid_date, out_dir, test_date, model)
    with distributed.ranks(cfg.nproc, cfg.device) as group:
        return _train(cfg, lake, dataset, train_dates, valid_date, out_dir, test_date, model, group)


def _train(cfg: TrainConfig, lake: Lake, dataset: str, train_dates: list[str], valid_date: str, out_dir: str | Path,
           test_date: str | None, model: nn.Module | None, group: distributed.Group | None) -> TrainResult | None:
    """``train`` in this process: alone (``group`` None) or as one rank of a data-parallel run."""
    device = group.device if group else resolve_device(cfg.device)
    cfg = cfg.model_copy(update={"nproc": group.world}) if group else cfg
    manifest = Manifest.of(lake, dataset)
    fields = list(manifest.fields)
    train_data, valid_data = _open(cfg, lake, dataset, train_dates, valid_date, fields, device)
    torch.manual_seed(cfg.seed)
    model = model if model is not None else _new_model(cfg, lake, dataset, train_dates, len(fields),
                                                       bag_layout(manifest, fields))
    kept = _prepare(model, cfg, train_data, len(fields))
    log.info("training %s on %s %s..%s (%d rows, %s), valid %s (%d rows), device %s",
             cfg.model, dataset, train_dates[0], train_dates[-1], len(train_data),
             type(train_data).__name__, valid_date, len(valid_data), device)
    best, curve, seconds = _fit(model, cfg, train_data, valid_data, device, group)
    if group is not None and not group.main:
        return None                                           # rank 0 calibrates, tests and writes
    model.load_state_dict(best.state)
    metrics = {"dataset": dataset, "model": cfg.model, "best_epoch": best.epoch, "epochs_run": len(curve),
               "train_rows": len(train_data), "train_seconds": seconds,
               "samples_per_second": len(train_data) * len(curve) / seconds if seconds else float("nan"),
               "valid_date": valid_date, "valid": best.valid, **({"vocabulary": kept} if kept else {})}
    if cfg.calibrate:
        metrics["calibration"] = _calibrate(model, *best.scores, dataset, valid_date)
        metrics["valid"] = metrics["calibration"].pop("valid")
    test_scores = None
    if test_date:
        test_data = open_days(lake, dataset, [test_date], budget_bytes=cfg.memory_budget_gb * 1e9, fields=fields)
        p, y, g = test_scores = predict_batches(model, test_data, device, cfg.eval_batch_size, use_bf16(cfg, device))
        metrics.update(test_date=test_date, test=M.ctr_metrics(y, p, g))
    model.to("cpu").eval()
    config = {"model": cfg.model, "hparams": getattr(model, "hparams", cfg.hparams), "train": cfg.model_dump(),
              "dataset": dataset, "fields": fields, "feature_signature": manifest.feature_signature,
              "manifest_digest": manifest.digest, "train_dates": list(train_dates),
              "valid_date": valid_date, "test_date": test_date, "device": str(device),
              "torch_version": torch.__version__, "code_version": code_version()}
    write_run(lake_path(out_dir), model.state_dict(), config=config, metrics=metrics, curve=curve,
              record=train_record(lake, dataset, list(train_dates), valid_date, cfg),
              plot_title=f"{cfg.model} on {dataset}" if cfg.plot else None)
    log.info("model written to %s", out_dir)
    return TrainResult(lake_path(out_dir), metrics, curve, model, test_scores)


def _train_on_ranks(cfg: TrainConfig, lake: Lake, dataset: str, train_dates: list[str], valid_date: str,
                    out_dir: str | Path, test_date: str | None, model: nn.Module | None) -> TrainResult:
    """``train`` on ``cfg.nproc`` processes of this host: rank 0's result, the model reloaded from
    the folder it wrote with the loader every other reader uses."""
    if model is not None:
        raise ValueError(f"nproc={cfg.nproc} trains registry models only (TrainConfig.model); "
                         f"train a model passed in as an object with nproc=1")
    gpus = torch.cuda.device_count() if resolve_device(cfg.device).type == "cuda" else cfg.nproc
    if gpus < cfg.nproc:
        raise ValueError(f"nproc={cfg.nproc} on CUDA needs a GPU per process, this host has {gpus}: "
                         f"set nproc to at most {gpus}, or device=cpu")
    result = distributed.launch(_rank_result, cfg.nproc, cfg, lake, dataset, train_dates, valid_date,
                                str(out_dir), test_date)
    trained, _ = load_model(out_dir)
    return TrainResult(Path(out_dir), result["metrics"], result["curve"], trained, result["test_scores"])


def _rank_result(cfg: TrainConfig, lake: Lake, dataset: str, train_dates: list[str], valid_date: str,
                 out_dir: str, test_date: str | None) -> dict | None:
    """One launched rank: ``train``; rank 0 hands back its result less the model (the parent reloads it)."""
    r = train(cfg, lake, dataset, train_dates, valid_date, out_dir, test_date=test_date)
    return None if r is None else {"metrics": r.metrics, "curve": r.curve, "test_scores": r.test_scores}


def _check_days(dataset: str, train_dates: list[str], valid_date: str, test_date: str | None) -> None:
    if not train_dates:
        raise ValueError(f"dataset {dataset!r}: no training days given")
    if valid_date in train_dates or (test_date and test_date in list(train_dates) + [valid_date]):
        raise ValueError(f"dataset {dataset!r}: train {train_dates}, valid {valid_date} and test {test_date} overlap")


def _open(cfg: TrainConfig, lake: Lake, dataset: str, train_dates: list[str], valid_date: str, fields: list[str],
          device: torch.device) -> tuple[Batches, Batches]:
    """The training days (in memory or streamed, by ``memory_budget_gb``; on the GPU when they fit
    in a quarter of its free memory) and the validation day."""
    budget = cfg.memory_budget_gb * 1e9
    train_data = open_days(lake, dataset, list(train_dates), budget_bytes=budget,
                           buffer_rows=cfg.shuffle_buffer_rows, fields=fields)
    valid_data = open_days(lake, dataset, [valid_date], budget_bytes=budget, fields=fields)
    if device.type == "cuda" and isinstance(train_data, FeatureTable) \
            and train_data.nbytes < 0.25 * torch.cuda.mem_get_info(device)[0]:
        train_data = train_data.to(device)      # batches are then gathers on the GPU
    return train_data, valid_data


def _new_model(cfg: TrainConfig, lake: Lake, dataset: str, train_dates: list[str], n_fields: int,
               bags: list) -> nn.Module:
    """``cfg.model`` built from ``cfg.hparams`` (pooling the multi-valued fields ``bags``), its output
    bias at the training CTR's log-odds."""
    model = models.build_model(cfg.model, n_fields, bags=bags, **cfg.hparams)
    bias = model.output_bias() if hasattr(model, "output_bias") else None
    ctr = label_rate(lake, dataset, list(train_dates))
    if bias is not None and 0 < ctr < 1:
        with torch.no_grad():
            bias.fill_(math.log(ctr / (1 - ctr)))
    return model


def _prepare(model: nn.Module, cfg: TrainConfig, train_data: Batches, n_fields: int) -> dict | None:
    """Identity calibration (fitted after training) and, with ``min_id_count``, the training
    vocabulary; returns the vocabulary's summary."""
    calibration.set_calibration(model, 1.0, 0.0)    # trained uncalibrated; external models get one too
    if not cfg.min_id_count:
        vocabulary.clear(model)
        return None
    kept = vocabulary.fit(model, train_data, n_fields, cfg.min_id_count)
    log.info("vocabulary: %d of %d IDs seen ≥ %d times kept; %.2f%% of training cells -> OOV",
             kept["ids_kept"], kept["ids_seen"], cfg.min_id_count, 100 * kept["train_oov_share"])
    return kept


@dataclass
class _Best:
    """The best epoch so far: its validation AUC and metrics, its (z, y, g) and a CPU copy of its state."""

    auc: float = -math.inf
    epoch: int = 0
    valid: dict | None = None
    scores: tuple | None = None
    state: dict | None = None


def _fit(model: nn.Module, cfg: TrainConfig, train_data: Batches, valid_data: Batches,
         device: torch.device, group: distributed.Group | None = None) -> tuple[_Best, list[dict], float]:
    """Epochs until ``cfg.epochs`` or ``cfg.patience`` epochs without a better validation AUC;
    returns the best epoch, the curve and the training seconds. As a rank it trains on its share
    of every batch; rank 0 alone validates (the whole day) and its early stop is every rank's."""
    model.to(device)
    optimizer = make_optimizer(model, cfg)
    forward = torch.compile(model) if cfg.compile else model
    generator = torch.Generator().manual_seed(cfg.seed)
    bf16 = use_bf16(cfg, device)                                    # autocast of every forward below
    data = train_data if group is None else group.shard(train_data, cfg.batch_size)
    best, curve, train_seconds, stale = _Best(), [], 0.0, 0
    for epoch in range(1, cfg.epochs + 1):
        t0 = time.perf_counter()
        train_loss = _train_epoch(model, forward, optimizer, data, cfg, device, bf16, generator, epoch, group)
        seconds = time.perf_counter() - t0
        train_seconds += seconds
        if group is None or group.main:
            valid, best, stale = _validate(model, cfg, valid_data, device, bf16, epoch, best, stale)
            curve.append({"epoch": epoch, "train_loss": train_loss, "valid_auc": valid["auc"],
                          "valid_gauc": valid["gauc"], "valid_logloss": valid["logloss"], "seconds": seconds,
                          "samples_per_second": len(train_data) / seconds})
            log.info("epoch %d: train loss %.4f, valid AUC %.4f GAUC %.4f logloss %.4f (%.1f s, %.0f samples/s)",
                     epoch, train_loss, valid["auc"], valid["gauc"], valid["logloss"], seconds,
                     len(train_data) / seconds)
        stop = stale >= cfg.patience
        if group is not None:
            group.broadcast_state(model)                              # replicas stay rank 0's model
            stop = group.decide(stop)
        if stop:
            log.info("early stop after epoch %d: no better valid AUC than epoch %d", epoch, best.epoch)
            break
    return best, curve, train_seconds


def _validate(model: nn.Module, cfg: TrainConfig, valid_data: Batches, device: torch.device, bf16: bool,
              epoch: int, best: _Best, stale: int) -> tuple[dict, _Best, int]:
    """Score the validation day after ``epoch``, keeping the state when its AUC is the best so far;
    returns the day's metrics, the best epoch and the epochs since it."""
    z, y, g = predict_batches(model, valid_data, device, cfg.eval_batch_size, bf16, logits=True)
    valid = M.ctr_metrics(y, sigmoid(z), g)
    if best.state is None or valid["auc"] > best.auc:
        state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        return valid, _Best(valid["auc"], epoch, valid, (z, y, g), state), 0
    return valid, best, stale + 1


def _progress(cfg: TrainConfig, total: int, desc: str, group: distributed.Group | None = None):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="sample", unit_scale=True,
                disable=not cfg.progress or (group is not None and not group.main), dynamic_ncols=True, leave=False)
