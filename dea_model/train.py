"""Train, evaluate and load CTR models on the feature days of the lake.

``train`` fits a model from ``dea_model.models`` on a window of days, validates after every epoch,
keeps the state with the best validation AUC (early stopping after ``patience`` epochs without a
better one), Platt-scales its logit on the validation day (``dea_model.calibration``: AUC and GAUC
unchanged, logloss and calibration fixed) and writes one folder atomically. With ``min_id_count``
the IDs seen fewer times on the training days become one OOV ID per field (``dea_model.vocabulary``)::

    model.pt       state_dict only (load with torch.load(..., weights_only=True))
    config.json    TrainConfig, model name + hparams, dataset, fields, feature signature, dates
    metrics.json   best-epoch validation metrics, calibrated (+ test metrics when a test day is
                   given), and the fitted calibration {scale, shift, valid_logloss_uncalibrated}
    curve.json     per epoch: train loss, valid auc/gauc/logloss, seconds, samples/s
    curve.png      the same, drawn (when matplotlib is available and ``plot`` is on)
    _COMPLETE.json completion record (inputs' fingerprints, config hash)

Loss: binary cross-entropy on logits, L = -mean(y log sigma(z) + (1 - y) log(1 - sigma(z))).
On CUDA the forward runs under bf16 autocast (loss in fp32); on CPU only with ``bf16_cpu``
(:func:`use_bf16`); ``torch.compile`` is opt-in.
"""

from __future__ import annotations

import json
import logging
import math
import platform
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dea_model import calibration, vocabulary
from dea_model import metrics as M
from dea_model.config import TrainConfig
from dea_model.data import Batches, FeatureTable, feature_signature, label_rate, open_days, read_manifest
from dea_model.optim import clip_grad_norm, make_optimizer
from features.lake import Lake, atomic_dir, code_version, fingerprint, make_record, write_record

log = logging.getLogger(__name__)

WEIGHTS, CONFIG, METRICS, CURVE = "model.pt", "config.json", "metrics.json", "curve.json"
EVAL_BATCH = TrainConfig.model_fields["eval_batch_size"].default


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

def _sigmoid(z: np.ndarray) -> np.ndarray:
    """σ(z) in float64 of float32 logits (a float32 σ ties every row with z > 17 at 1.0)."""
    return torch.sigmoid(torch.from_numpy(np.asarray(z)).double()).numpy()


def _calibrate(model: nn.Module, z: np.ndarray, y: np.ndarray, g: np.ndarray, dataset: str, date: str) -> dict:
    """Fit the model's logit calibration on the best epoch's validation logits ``z`` (computed
    with the identity calibration the model trained with).

    Returns ``{scale, shift, fitted, valid_logloss_uncalibrated, valid}``, ``valid`` being the
    calibrated metrics, scored with the forward hook's own arithmetic. The calibrated validation
    logloss is in-sample (a, b were fitted on that day): judge calibration on a later day.
    """
    uncalibrated = M.ctr_metrics(y, _sigmoid(z), g)
    fitted = calibration.fit(z, y)
    if fitted is None:
        log.warning("dataset %r, valid day %s: logit calibration not fitted (one class, non-finite logits, "
                    "or a reversed ranking); the model stays uncalibrated", dataset, date)
        return {"scale": 1.0, "shift": 0.0, "fitted": False,
                "valid_logloss_uncalibrated": uncalibrated["logloss"], "valid": uncalibrated}
    a, b = fitted
    calibration.set_calibration(model, a, b)
    valid = M.ctr_metrics(y, _sigmoid(calibration.calibrate_logits(torch.from_numpy(z), a, b).numpy()), g)
    log.info("logit calibration on %s: z' = %.4f z + %.4f; valid logloss %.4f -> %.4f", date, a, b,
             uncalibrated["logloss"], valid["logloss"])
    return {"scale": a, "shift": b, "fitted": True, "valid_logloss_uncalibrated": uncalibrated["logloss"],
            "valid": valid}


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` -> CUDA when present, else CPU; ``cuda`` without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but torch sees no GPU; use device=auto or cpu")
    return torch.device(name)


def build_model(name: str, n_fields: int, **hparams) -> nn.Module:
    """``dea_model.models.build_model`` (imported late: the model zoo is heavy and optional here)."""
    from dea_model.models import build_model as build

    return build(name, n_fields, **hparams)


def to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A batch tensor onto ``device``; CPU → CUDA goes through page-locked memory so the copy is
    asynchronous (``non_blocking``) and overlaps the previous step's kernels."""
    if device.type == "cuda" and t.device.type == "cpu":
        t = t.pin_memory()
    return t.to(device, non_blocking=True)


def use_bf16(train: TrainConfig | dict, device: torch.device) -> bool:
    """Whether the forward runs under bf16 autocast: ``bf16`` on CUDA (default on), ``bf16_cpu`` on
    the CPU (default off). ``train`` is a TrainConfig or a saved config's ``train`` dict.

    On a CPU with AVX512-BF16 (AMD Zen 4, Intel Cooper Lake and later) or AMX, DEA and AutoInt train
    1.5-1.6× faster on the Criteo shape (Zen 4, benchmarks/results/train_throughput.json); without
    them bf16 is emulated and slower than fp32, so this warns.
    """
    get = train.get if isinstance(train, dict) else lambda key, default: getattr(train, key)
    if device.type == "cuda":
        return bool(get("bf16", True))
    enabled = device.type == "cpu" and bool(get("bf16_cpu", False))
    if enabled and not cpu_has_bf16():
        warnings.warn("bf16_cpu=true, but this CPU has neither AVX512-BF16 nor AMX: bf16 is emulated and "
                      "usually slower than fp32", RuntimeWarning, stacklevel=2)
    return enabled


def cpu_has_bf16() -> bool:
    """Whether an x86 CPU has AVX512-BF16 or AMX: torch's probes (torch ≥ 2.5), else the flags of
    /proc/cpuinfo; True where neither can tell, and on other CPUs (ARM: torch reports nothing)."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return True
    probes = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    if all(probes):
        return any(probe() for probe in probes)
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return True
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def _autocast(device: torch.device, bf16: bool):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)


@torch.no_grad()
def predict_batches(model: nn.Module, data: Batches, device: torch.device, batch_size: int = EVAL_BATCH,
                    bf16: bool | None = None, *, logits: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Click probabilities sigma(model(ids)) of every row in order (the logits themselves with
    ``logits=True``), with its labels and groups. ``bf16``: autocast (None: on CUDA only)."""
    bf16 = device.type == "cuda" if bf16 is None else bf16
    model.eval()
    scores, labels, groups = [], [], []
    for b in data.batches(batch_size):
        with _autocast(device, bf16):
            scores.append(model(to_device(b.ids, device)).float().cpu())
        labels.append(b.label.cpu())
        groups.append(b.group.cpu())
    cat = lambda xs: torch.cat(xs).numpy() if xs else np.empty(0)  # noqa: E731
    z = cat(scores)
    return (z if logits else _sigmoid(z)), cat(labels), cat(groups)


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
                 device: torch.device, bf16: bool, generator: torch.Generator, epoch: int) -> float:
    """One pass over ``data`` in a fresh seeded order; returns the mean step loss.

    Step losses stay on the device and are checked every ``check_every`` steps (one sync each).
    """
    model.train()
    loss_sum, steps, window, step0 = 0.0, 0, [], 0
    with _progress(cfg, len(data), f"{cfg.model} epoch {epoch}") as bar:
        for step, batch in enumerate(data.batches(cfg.batch_size, shuffle=True, generator=generator)):
            ids, y = to_device(batch.ids, device), to_device(batch.label, device)
            with _autocast(device, bf16):
                logits = forward(ids)                                          # (B,)
            loss = F.binary_cross_entropy_with_logits(logits.float(), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                clip_grad_norm(model.parameters(), cfg.grad_clip)
            optimizer.step()
            window.append(loss.detach())
            bar.update(len(y))
            if len(window) == cfg.check_every:
                mean = _check_finite(window, epoch, step0)
                loss_sum, steps = loss_sum + mean * len(window), steps + len(window)
                bar.set_postfix(loss=f"{mean:.4f}")
                window, step0 = [], step + 1
        if window:
            loss_sum, steps = loss_sum + _check_finite(window, epoch, step0) * len(window), steps + len(window)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return loss_sum / max(steps, 1)


def train(cfg: TrainConfig, lake: Lake, dataset: str, train_dates: list[str], valid_date: str,
          out_dir: str | Path, *, test_date: str | None = None, model: nn.Module | None = None) -> TrainResult:
    """Train on ``train_dates``, early-stop on ``valid_date``'s AUC, write everything to ``out_dir``.

    ``model`` overrides ``build_model(cfg.model, n_fields, **cfg.hparams)`` (benchmarks pass
    external models this way). With ``test_date`` the best state is also scored on that day.
    Nothing is written unless training completes.
    """
    if not train_dates:
        raise ValueError(f"dataset {dataset!r}: no training days given")
    if valid_date in train_dates or (test_date and test_date in list(train_dates) + [valid_date]):
        raise ValueError(f"dataset {dataset!r}: train {train_dates}, valid {valid_date} and test {test_date} overlap")
    device = resolve_device(cfg.device)
    manifest = read_manifest(lake, dataset)
    fields = list(manifest["fields"])
    budget = cfg.memory_budget_gb * 1e9
    train_data = open_days(lake, dataset, list(train_dates), budget_bytes=budget,
                           buffer_rows=cfg.shuffle_buffer_rows, fields=fields)
    valid_data = open_days(lake, dataset, [valid_date], budget_bytes=budget, fields=fields)
    if device.type == "cuda" and isinstance(train_data, FeatureTable) \
            and train_data.nbytes < 0.25 * torch.cuda.mem_get_info(device)[0]:
        train_data = train_data.to(device)      # batches are then gathers on the GPU

    torch.manual_seed(cfg.seed)
    if model is None:
        model = build_model(cfg.model, len(fields), **cfg.hparams)
        bias = model.output_bias() if hasattr(model, "output_bias") else None
        ctr = label_rate(lake, dataset, list(train_dates))
        if bias is not None and 0 < ctr < 1:
            with torch.no_grad():
                bias.fill_(math.log(ctr / (1 - ctr)))              # start at the base rate's log-odds
    calibration.set_calibration(model, 1.0, 0.0)    # trained uncalibrated; external models get one too
    kept = None
    if not cfg.min_id_count:
        vocabulary.clear(model)
    else:
        kept = vocabulary.fit(model, train_data, len(fields), cfg.min_id_count)
        log.info("vocabulary: %d of %d IDs seen ≥ %d times kept; %.2f%% of training cells -> OOV",
                 kept["ids_kept"], kept["ids_seen"], cfg.min_id_count, 100 * kept["train_oov_share"])
    model.to(device)
    optimizer = make_optimizer(model, cfg)
    forward = torch.compile(model) if cfg.compile else model
    generator = torch.Generator().manual_seed(cfg.seed)
    bf16 = use_bf16(cfg, device)                                    # autocast of every forward below
    log.info("training %s on %s %s..%s (%d rows, %s), valid %s (%d rows), device %s",
             cfg.model, dataset, train_dates[0], train_dates[-1], len(train_data),
             type(train_data).__name__, valid_date, len(valid_data), device)

    curve: list[dict] = []
    best_auc, best_state, best_epoch, stale = -math.inf, None, 0, 0
    train_seconds, samples = 0.0, 0
    for epoch in range(1, cfg.epochs + 1):
        t0 = time.perf_counter()
        train_loss = _train_epoch(model, forward, optimizer, train_data, cfg, device, bf16, generator, epoch)
        seconds = time.perf_counter() - t0
        train_seconds += seconds
        samples += len(train_data)
        z, y, g = predict_batches(model, valid_data, device, cfg.eval_batch_size, bf16, logits=True)
        valid = M.ctr_metrics(y, _sigmoid(z), g)
        point = {"epoch": epoch, "train_loss": train_loss, "valid_auc": valid["auc"],
                 "valid_gauc": valid["gauc"], "valid_logloss": valid["logloss"], "seconds": seconds,
                 "samples_per_second": len(train_data) / seconds}
        curve.append(point)
        log.info("epoch %d: train loss %.4f, valid AUC %.4f GAUC %.4f logloss %.4f (%.1f s, %.0f samples/s)",
                 epoch, point["train_loss"], valid["auc"], valid["gauc"], valid["logloss"], seconds,
                 point["samples_per_second"])
        if best_state is None or valid["auc"] > best_auc:
            best_auc, best_epoch, best_valid, best_scores, stale = valid["auc"], epoch, valid, (z, y, g), 0
            best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        else:
            stale += 1
            if stale >= cfg.patience:
                log.info("early stop after epoch %d: no better valid AUC than epoch %d", epoch, best_epoch)
                break

    model.load_state_dict(best_state)
    results = {"dataset": dataset, "model": cfg.model, "best_epoch": best_epoch, "epochs_run": len(curve),
               "train_rows": len(train_data), "train_seconds": train_seconds,
               "samples_per_second": samples / train_seconds if train_seconds else float("nan"),
               "valid_date": valid_date, "valid": best_valid}
    if kept:
        results["vocabulary"] = kept
    if cfg.calibrate:
        results["calibration"] = _calibrate(model, *best_scores, dataset, valid_date)
        results["valid"] = results["calibration"].pop("valid")
    test_scores = None
    if test_date:
        test_data = open_days(lake, dataset, [test_date], budget_bytes=budget, fields=fields)
        results["test_date"] = test_date
        p, y, g = test_scores = predict_batches(model, test_data, device, cfg.eval_batch_size, bf16)
        results["test"] = M.ctr_metrics(y, p, g)
    model.to("cpu").eval()
    config = {"model": cfg.model, "hparams": getattr(model, "hparams", cfg.hparams), "train": cfg.model_dump(),
              "dataset": dataset, "fields": fields, "feature_signature": feature_signature(manifest),
              "manifest_digest": manifest.get("record", {}).get("digest"), "train_dates": list(train_dates),
              "valid_date": valid_date, "test_date": test_date, "device": str(device),
              "torch_version": torch.__version__, "code_version": code_version()}
    out_dir = Path(out_dir)
    inputs = {f"features/{d}": fingerprint(lake.features(dataset, d)) for d in [*train_dates, valid_date]}
    with atomic_dir(out_dir) as tmp:
        torch.save(model.state_dict(), tmp / WEIGHTS)
        for name, obj in ((CONFIG, config), (METRICS, results), (CURVE, curve)):
            (tmp / name).write_text(json.dumps(obj, indent=2, default=_json_default))
        if cfg.plot:
            _plot(curve, tmp / "curve.png", f"{cfg.model} on {dataset}")
        write_record(tmp, make_record("train", inputs, cfg.config_hash(), model=cfg.model, dataset=dataset))
    log.info("model written to %s", out_dir)
    return TrainResult(out_dir, results, curve, model, test_scores)


def _progress(cfg: TrainConfig, total: int, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="sample", unit_scale=True, disable=not cfg.progress,
                dynamic_ncols=True, leave=False)


def _json_default(x):
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    return str(x)


def _plot(curve: list[dict], path: Path, title: str) -> None:
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


# --- using a trained model ----------------------------------------------------------------------

def load_model(model_dir: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """(model in eval mode with its trained weights, its config.json) from a training folder or a
    registry version.

    ``model.pt`` and ``config.json`` must match the SHA-256 in the folder's completion record, and
    ``model.pt`` must be a plain state_dict (``dea_model.registry.load_weights``): otherwise a
    ``ModelFileError`` (a ``ValueError``) names the model, version or run, the file and the fix.
    """
    from dea_model.models import saved_hparams
    from dea_model.registry import load_weights

    model_dir = Path(model_dir)
    for name in (CONFIG, WEIGHTS):
        if not (model_dir / name).is_file():
            raise FileNotFoundError(f"{model_dir} is not a trained model folder: {name} is missing")
    state = load_weights(model_dir, map_location=device)     # checksums first, then torch.load
    config = json.loads((model_dir / CONFIG).read_text())
    model = build_model(config["model"], len(config["fields"]), **saved_hparams(config["model"], config["hparams"]))
    vocabulary.install(model)
    calibration.install(model)
    model.load_state_dict(state)
    return model.to(device).eval(), config


def check_features(config: dict, lake: Lake, dataset: str, model_dir: str | Path = "the model") -> None:
    """Error unless ``dataset``'s feature tables mean what the model was trained on."""
    manifest = read_manifest(lake, dataset)
    if list(manifest["fields"]) != list(config["fields"]):
        raise ValueError(f"model {model_dir} was trained on fields {config['fields']}, but the feature "
                         f"tables of dataset {dataset!r} have {manifest['fields']}")
    have = feature_signature(manifest)
    if have != config["feature_signature"]:
        raise ValueError(f"model {model_dir} was trained on feature tables with signature "
                         f"{config['feature_signature']}, but dataset {dataset!r} now has {have} (hash spec, "
                         f"spec config or bucket boundaries changed): retrain, or rebuild the features "
                         f"with the model's manifest")


def _score(model_dir, lake: Lake, dataset: str, date: str, device: str | None):
    dev = resolve_device(device or "auto")
    model, config = load_model(model_dir, dev)
    check_features(config, lake, dataset, model_dir)
    data = open_days(lake, dataset, [date], fields=config["fields"],
                     budget_bytes=config["train"].get("memory_budget_gb", 4.0) * 1e9)
    # eval batch size does not change predictions: older models recorded 65536 (too big for DEA on CUDA)
    batch_size = min(config["train"].get("eval_batch_size", EVAL_BATCH), EVAL_BATCH)
    return predict_batches(model, data, dev, batch_size, use_bf16(config["train"], dev))


def predict(model_dir: str | Path, lake: Lake, dataset: str, date: str, *, device: str | None = None) -> np.ndarray:
    """Click probabilities [N] (float64) for every row of one feature day, in file order."""
    return _score(model_dir, lake, dataset, date, device)[0]


def evaluate(model_dir: str | Path, lake: Lake, dataset: str, date: str, *, device: str | None = None) -> dict:
    """Metrics (auc, gauc, logloss, calibration, rows, ...) of a trained model on one feature day."""
    p, y, g = _score(model_dir, lake, dataset, date, device)
    return {"dataset": dataset, "date": date, "model_dir": str(model_dir), **M.ctr_metrics(y, p, g)}
