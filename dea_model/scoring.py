"""Using a trained model: load it (checksums verified), check that it reads the day's feature IDs
the way it was trained, score a day, and write a day's predictions.

A model only fits the feature IDs of its own manifest (bucket boundaries move as the training window
does): ``features_for_model`` gives it the day transformed with that manifest.
"""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from torch import nn

from dea_model import calibration, models, vocabulary
from dea_model import metrics as M
from dea_model.config import TrainConfig
from dea_model.data import Batches, label_rate, load_days, open_days
from dea_model.logistic import logistic_metrics
from dea_model.device import autocast, resolve_device, to_device, use_bf16
from dea_model.runs import CONFIG, WEIGHTS, read
from features.lake import Lake, make_record, staged_dir, write_json_atomic, write_record
from features.manifest import Manifest
from features.spec import DatasetSpec
from features.storage import dataset as arrow_dataset
from features.storage import lake_path, link_tree, parquet_file

EVAL_BATCH = TrainConfig.model_fields["eval_batch_size"].default


def sigmoid(z: np.ndarray) -> np.ndarray:
    """σ(z) in float64 of float32 logits (a float32 σ ties every row with z > 17 at 1.0)."""
    return torch.sigmoid(torch.from_numpy(np.asarray(z)).double()).numpy()


@torch.no_grad()
def predict_batches(model: nn.Module, data: Batches, device: torch.device, batch_size: int = EVAL_BATCH,
                    bf16: bool | None = None, *, logits: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Click probabilities σ(model(ids)) of every row in order (the logits themselves with
    ``logits=True``), with its labels and groups. ``bf16``: autocast (None: on CUDA only)."""
    bf16 = device.type == "cuda" if bf16 is None else bf16
    model.eval()
    scores, labels, groups = [], [], []
    for b in data.batches(batch_size):
        with autocast(device, bf16):
            scores.append(model(to_device(b.ids, device)).float().cpu())
        labels.append(b.label.cpu())
        groups.append(b.group.cpu())
    cat = lambda xs: torch.cat(xs).numpy() if xs else np.empty(0)  # noqa: E731
    z = cat(scores)
    return (z if logits else sigmoid(z)), cat(labels), cat(groups)


def load_model(model_dir: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """(model in eval mode with its trained weights, its config.json) from a training folder or a
    registry version.

    ``model.pt`` and ``config.json`` must match the SHA-256 in the folder's completion record, and
    ``model.pt`` must be a plain state_dict (``dea_model.registry.load_weights``): otherwise a
    ``ModelFileError`` (a ``ValueError``) names the model, version or run, the file and the fix.
    """
    from dea_model.registry import load_weights

    model_dir = lake_path(model_dir)
    for name in (CONFIG, WEIGHTS):
        if not (model_dir / name).is_file():
            raise FileNotFoundError(f"{model_dir} is not a trained model folder: {name} is missing")
    state = load_weights(model_dir, map_location=device)     # checksums first, then torch.load
    config = read(model_dir, CONFIG)
    hparams = models.saved_hparams(config["model"], config["hparams"])
    model = models.build_model(config["model"], len(config["fields"]), **hparams)
    vocabulary.install(model)
    calibration.install(model)
    model.load_state_dict(state)
    return model.to(device).eval(), config


def check_features(config: dict, lake: Lake, dataset: str, model_dir: str | os.PathLike = "the model") -> None:
    """Error unless ``dataset``'s feature tables mean what the model was trained on."""
    manifest = Manifest.of(lake, dataset)
    if list(manifest.fields) != list(config["fields"]):
        raise ValueError(f"model {model_dir} was trained on fields {config['fields']}, but the feature "
                         f"tables of dataset {dataset!r} have {manifest.fields}")
    have = manifest.feature_signature
    if have != config["feature_signature"]:
        raise ValueError(f"model {model_dir} was trained on feature tables with signature "
                         f"{config['feature_signature']}, but dataset {dataset!r} now has {have} (hash spec, "
                         f"spec config or bucket boundaries changed): retrain, or rebuild the features "
                         f"with the model's manifest")


def score_day(model_dir, lake: Lake, dataset: str, date: str, device: str | None = None):
    """(p, y, group) of every row of one feature day, in file order, by the model in ``model_dir``."""
    dev = resolve_device(device or "auto")
    model, config = load_model(model_dir, dev)
    check_features(config, lake, dataset, model_dir)
    data = open_days(lake, dataset, [date], fields=config["fields"],
                     budget_bytes=config["train"].get("memory_budget_gb", 4.0) * 1e9)
    # eval batch size does not change predictions: older models recorded 65536 (too big for DEA on CUDA)
    batch_size = min(config["train"].get("eval_batch_size", EVAL_BATCH), EVAL_BATCH)
    return predict_batches(model, data, dev, batch_size, use_bf16(config["train"], dev))


def predict(model_dir: str | os.PathLike, lake: Lake, dataset: str, date: str, *, device: str | None = None) -> np.ndarray:
    """Click probabilities [N] (float64) for every row of one feature day, in file order."""
    return score_day(model_dir, lake, dataset, date, device)[0]


def evaluate(model_dir: str | os.PathLike, lake: Lake, dataset: str, date: str, *, device: str | None = None) -> dict:
    """Metrics (auc, gauc, logloss, calibration, rows, ...) of a trained model on one feature day."""
    p, y, g = score_day(model_dir, lake, dataset, date, device)
    return {"dataset": dataset, "date": date, "model_dir": str(model_dir), **M.ctr_metrics(y, p, g)}


def _columns(lake: Lake, dataset: str, dates: list[str], columns: list[str]) -> dict[str, np.ndarray]:
    files = [f for d in dates for f in lake.day_files("features", dataset, d)]
    table = arrow_dataset(files).to_table(columns=columns)
    return {c: table[c].to_numpy() for c in columns}


def oracle_metrics(lake: Lake, dataset: str, date: str) -> dict | None:
    """Metrics of the rows' true click probability (synthetic ``p_true``): the ceiling of any model;
    None when the day has no ``p_true`` column."""
    files = lake.day_files("features", dataset, date)
    if "p_true" not in parquet_file(files[0]).schema_arrow.names:
        return None
    cols = _columns(lake, dataset, [date], ["label", "group", "p_true"])
    return M.ctr_metrics(cols["label"], cols["p_true"].astype(np.float64), cols["group"])


def baselines(lake: Lake, dataset: str, train_dates: list[str], valid_date: str, date: str) -> dict[str, dict]:
    """The reference points of an evaluation on ``date``: ``prior`` (the training days' CTR for every
    row: knowing only the base rate); ``logistic``, a logistic regression on the same feature IDs
    (``dea_model.logistic``: trained on ``train_dates``, regularisation picked on ``valid_date``);
    and, where the rows carry ``p_true``, ``oracle``."""
    train, valid, test = (load_days(lake, dataset, days) for days in (train_dates, [valid_date], [date]))
    prior = np.full(len(test), label_rate(lake, dataset, train_dates))
    out = {"prior": M.ctr_metrics(test.label.numpy(), prior, test.group.numpy())}
    logistic = logistic_metrics((train.ids.numpy(), train.label.numpy()), (valid.ids.numpy(), valid.label.numpy()),
                                (test.ids.numpy(), test.label.numpy(), test.group.numpy()))
    oracle = oracle_metrics(lake, dataset, date)
    return out | ({"logistic": logistic} if logistic else {}) | ({"oracle": oracle} if oracle else {})


def features_for_model(spec: DatasetSpec, lake: Lake, date: str, version) -> Lake:
    """A lake holding the feature day ``date`` in the IDs of a registered ``version``'s own manifest
    (``dea_model.registry.ModelVersion``).

    The lake's manifest is refitted as the training window moves, so a model trained on an older
    window (the champion) reads other bucket IDs than today's tables hold. When the version's
    manifest is the lake's, the day is the lake's own (transformed if needed, a no-op when current);
    otherwise the raw day (linked, not copied) is transformed with the version's manifest into a
    scratch lake ``runs/<dataset>/dt=<date>/<name>-<version>.features``, kept there and reused.
    """
    from features import pipeline

    wanted = Manifest.load(version.path / "manifest.json")
    current = lake.manifest(spec.name)
    if current.exists() and Manifest.load(current).digest == wanted.digest:
        pipeline.transform(spec, lake, date, wanted)
        return lake
    own = Lake(lake.runs() / spec.name / f"dt={date}" / f"{version.name}-{version.version}.features")
    raw = own.raw(spec.name, date)
    if not raw.exists():
        link_tree(lake.raw(spec.name, date), raw)
    if not own.manifest(spec.name).exists():
        write_json_atomic(own.manifest(spec.name), wanted.model_dump(mode="json"))
    pipeline.transform(spec, own, date, wanted, statistics=False)
    return own


def write_predictions(version, spec: DatasetSpec, lake: Lake, date: str) -> tuple[os.PathLike, pa.Table]:
    """Score ``date`` with a registered ``version`` (``dea_model.registry.ModelVersion``) and write
    ``predictions/<dataset>/dt=<date>/part-00000.parquet`` (label, group, p_click) atomically."""
    features = features_for_model(spec, lake, date, version)
    probs = predict(version.path, features, spec.name, date)
    files = features.day_files("features", spec.name, date)          # predict's order
    table = arrow_dataset(files).to_table(columns=["label", "group"])
    table = table.append_column("p_click", pa.array(probs, pa.float64()))
    out = lake.predictions(spec.name, date)
    with staged_dir(out) as tmp:
        pq.write_table(table, tmp / "part-00000.parquet")
        write_record(tmp, make_record("predict", {"model": f"{version.name}/{version.version}"}, "",
                                      rows=table.num_rows, model=version.name, version=version.version))
    return out, table
