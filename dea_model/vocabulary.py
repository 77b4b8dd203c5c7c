"""Training vocabulary: IDs seen fewer than ``min_count`` times on the training days become one
out-of-vocabulary (OOV) ID per field, in training and in serving.

    x' = x     if count_train(x) ≥ c
         OOV   otherwise                 OOV = −1 in every field (row m − 1 of a field's m-row table)

A hashed table gives every ID a row. An ID unseen in training gets an untrained row, or, when it
collides, another ID's trained row: its prediction then borrows that ID's effect. With the
vocabulary, cold IDs share the OOV row instead (what DeepCTR's label-encoded inputs do at c = 1),
and at c ≥ 2 that row is trained on the rare IDs, so a new ID starts from what rare IDs have in
common. The OOV row is an ordinary hashed row: kept IDs ≡ −1 (mod m) share it (kept/m of them
are expected per field, e.g. 1,600 kept items in 2¹⁶ rows: 0.02). MovieLens, whose time split
leaves 86% of test rows with a user unseen in training: +0.006 to +0.011 test AUC for every model
at c = 1 (``benchmarks/results``).

The vocabulary lives in the model as two buffers, ``vocab_ids`` (each field's kept IDs, sorted,
concatenated) and ``vocab_offsets`` (n + 1 field boundaries), applied to the input ids by a
forward pre-hook; they are saved in the state_dict, so ``load_model``, the registry and one-row
serving map IDs the same way. With multi-valued fields only the n field columns (a bag field's
bag ID) are mapped; the element columns after them reach their hashed rows unmapped. Empty (no
mapping) until the trainer fits it (``min_id_count``).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

IDS, OFFSETS = "vocab_ids", "vocab_offsets"
OOV = -1
COUNT_ROWS = 1 << 20                   # rows per chunk when counting IDs


def map_unseen(ids: Tensor, vocab_ids: Tensor, bounds: list[int]) -> Tensor:
    """ids (B, n) → the same with every ID outside its field's vocabulary replaced by ``OOV``;
    field j's vocabulary is ``vocab_ids[bounds[j]:bounds[j + 1]]``, sorted."""
    columns = []
    for j in range(ids.shape[1]):              # a loop over fields, vectorised over the batch
        vocab = vocab_ids[bounds[j]:bounds[j + 1]]
        column = ids[:, j].contiguous()
        if vocab.numel() == 0:
            columns.append(torch.full_like(column, OOV))
            continue
        pos = torch.searchsorted(vocab, column).clamp_(max=vocab.numel() - 1)
        columns.append(torch.where(vocab[pos] == column, column, OOV))
    return torch.stack(columns, 1)


def _map(module: nn.Module, args: tuple) -> tuple | None:
    bounds = module._vocab_bounds            # field boundaries as ints: no device sync per batch
    if not bounds:
        return None
    ids, n = args[0], len(bounds) - 1
    if ids.dim() != 2 or ids.shape[1] != n + getattr(module, "bag_width", 0):
        raise ValueError(f"the model's vocabulary has {n} fields; got ids of shape {tuple(ids.shape)}")
    mapped = map_unseen(ids[:, :n], getattr(module, IDS), bounds)
    return (torch.cat([mapped, ids[:, n:]], 1) if ids.shape[1] > n else mapped, *args[1:])


def _resize(module: nn.Module, state_dict: dict, prefix: str, *args) -> None:
    """Take the saved vocabulary's sizes (they vary by model). Weights saved before vocabularies
    load without one; so does any load without these keys, a ``strict=False`` partial one too."""
    for name in (IDS, OFFSETS):
        saved = state_dict.setdefault(prefix + name, torch.zeros(0, dtype=torch.int64))
        setattr(module, name, torch.empty_like(saved, device=getattr(module, name).device))


def _cache_bounds(module: nn.Module, *args) -> None:
    module._vocab_bounds = getattr(module, OFFSETS).tolist()


def install(model: nn.Module) -> nn.Module:
    """Give ``model`` (any module taking ids (B, n) first) an empty vocabulary; idempotent."""
    if not hasattr(model, OFFSETS):
        model.register_buffer(IDS, torch.zeros(0, dtype=torch.int64))
        model.register_buffer(OFFSETS, torch.zeros(0, dtype=torch.int64))
        model._vocab_bounds = []
        model.register_forward_pre_hook(_map)
        model._register_load_state_dict_pre_hook(_resize, with_module=True)    # public only from torch 2.5
        model.register_load_state_dict_post_hook(_cache_bounds)
    return model


def count_ids(data, n_fields: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per field, (distinct IDs sorted, their counts) over every row of ``data`` (``Batches``)."""
    totals = [(np.zeros(0, np.int64), np.zeros(0, np.int64))] * n_fields
    for batch in data.batches(COUNT_ROWS):
        ids = batch.ids.cpu().numpy()
        for j in range(n_fields):                # merged per chunk: memory ~ the distinct IDs
            values, counts = np.unique(ids[:, j], return_counts=True)
            totals[j] = _merge(totals[j], (values, counts))
    return totals


def _merge(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    distinct, inverse = np.unique(np.concatenate([a[0], b[0]]), return_inverse=True)
    counts = np.bincount(inverse, weights=np.concatenate([a[1], b[1]]), minlength=distinct.size)
    return distinct, counts.astype(np.int64)


def fit(model: nn.Module, data, n_fields: int, min_count: int) -> dict:
    """Keep, per field, the IDs seen ≥ ``min_count`` times in ``data``; returns what was kept."""
    counted = count_ids(data, n_fields)
    kept = [values[counts >= min_count] for values, counts in counted]
    set_vocabulary(model, kept)
    rows = int(counted[0][1].sum()) if counted else 0
    mapped = sum(int(counts[counts < min_count].sum()) for _, counts in counted)
    return {"min_count": min_count, "ids_seen": sum(v.size for v, _ in counted),
            "ids_kept": sum(k.size for k in kept), "train_oov_share": mapped / max(rows * n_fields, 1)}


def set_vocabulary(model: nn.Module, per_field: list[np.ndarray]) -> None:
    """Set the model's vocabulary: one array of kept IDs per field (``install``-ing it first)."""
    install(model)
    n_fields = getattr(model, "n_fields", len(per_field))
    if len(per_field) != n_fields:
        raise ValueError(f"a vocabulary of {len(per_field)} fields for a model of {n_fields}")
    device = getattr(model, IDS).device
    sizes = [0] + [len(v) for v in per_field]
    setattr(model, IDS, torch.as_tensor(np.concatenate([np.sort(np.asarray(v, np.int64)) for v in per_field]),
                                        device=device))
    setattr(model, OFFSETS, torch.as_tensor(np.cumsum(sizes), dtype=torch.int64, device=device))
    _cache_bounds(model)


def clear(model: nn.Module) -> None:
    """No vocabulary: ids pass unchanged."""
    install(model)
    for name in (IDS, OFFSETS):
        setattr(model, name, torch.zeros(0, dtype=torch.int64, device=getattr(model, name).device))
    _cache_bounds(model)
