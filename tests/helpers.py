"""Helpers several test files share: toy feature days, small model sizes, batches of random IDs.

A plain module, imported as ``from helpers import ...`` (pytest puts tests/ on ``sys.path``, as it
does for conftest.py); fixtures live in conftest.py. A test file imports what it needs from here,
never from another test file.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from features.hashing import feature_ids
from features.lake import Lake, atomic_dir, date_range, make_record, write_json_atomic, write_record
from features.manifest import Manifest

# --- feature days (dea_model.data's input) ----------------------------------------------------------------

FIELDS = ["user", "item", "cat"]


def toy_manifest(dataset="toy", fields=FIELDS) -> Manifest:
    """A manifest of sparse fields only (what ``write_feature_days`` writes)."""
    return Manifest(dataset=dataset, fields=list(fields), sparse=list(fields), dense={}, cross=[], label="click",
                    group=fields[0], passthrough=["p_true"], missing="token", hash_spec_version=1, hash_seed=1,
                    config_hash="toyhash", fit_dates=[], spec={}, record={"digest": "toy-manifest"})


def write_feature_days(root, dataset="toy", days=3, rows=600, seed=0, row_group_size=None,
                       fields=FIELDS, vocab=(12, 9, 5), files_per_day=1):
    """Feature days as the features stage writes them: int64 IDs, label int8, group, dt, p_true.

    Planted signal: a click is likely when (user + item) % 3 == 0, so only the pair predicts.
    """
    lake = Lake(root)
    rng = np.random.default_rng(seed)
    write_json_atomic(lake.manifest(dataset), toy_manifest(dataset, fields).model_dump(mode="json"))
    dates = date_range("2026-01-01", days)
    for date in dates:
        raw = np.stack([rng.integers(0, v, rows) for v in vocab], axis=1)
        p = np.where((raw[:, 0] + raw[:, 1]) % 3 == 0, 0.9, 0.1)
        cols = {f: feature_ids(f, raw[:, j]) for j, f in enumerate(fields)}
        cols["label"] = (rng.random(rows) < p).astype(np.int8)
        cols["group"] = cols[fields[0]]
        cols["p_true"] = p
        table = pa.table(cols)
        with atomic_dir(lake.features(dataset, date)) as tmp:
            for i, part in enumerate(np.array_split(np.arange(rows), files_per_day)):
                pq.write_table(table.take(part), tmp / f"part-{i:05d}.parquet", row_group_size=row_group_size)
            write_record(tmp, make_record("transform", {}, "toyhash", rows=rows))
    return lake, dates


# --- models: small sizes, random ID batches ------------------------------------------------------------

N_FIELDS = 6
SMALL = {
    "dea": dict(embedding_dim=8, embedding_rows=512, codebook_size=4096, attention_dim=16, pair_hidden=16,
                dnn_hidden=(64,)),
    "transformer": dict(embedding_dim=8, embedding_rows=512, dnn_hidden=(64,)),
    "autoint": dict(embedding_dim=8, embedding_rows=512, attention_dim=16, dnn_hidden=(64,)),
    "fm": dict(embedding_dim=8, embedding_rows=512),
}
ZOO_SMALL = {  # the zoo's models (issue 6) with small tables and heads: tests stay fast on 2 busy cores
    "afm": {"embedding_dim": 8, "embedding_rows": 512, "attention_dim": 8},
    "fibinet": {"embedding_dim": 8, "embedding_rows": 512, "dnn_hidden": [32]},
    "memonet": {"embedding_dim": 8, "embedding_rows": 512, "codebook_size": 2048, "dnn_hidden": [32]},
    "hstu": {"embedding_dim": 8, "embedding_rows": 512, "qk_dim": 8, "v_dim": 8, "dnn_hidden": [32],
             "block_dropout": 0.0},
    "secn": {"embedding_dim": 8, "embedding_rows": 512, "attention_dim": 8, "dnn_hidden": [32]},
    "mgdin": {"embedding_dim": 16, "embedding_rows": 512, "dnn_hidden": [32]},
}
HPARAMS = {**SMALL, **ZOO_SMALL,  # every registered model, small
           # MGDIN fixes its field densities from its first training batch, once, on the host: give them
           "mgdin": {**ZOO_SMALL["mgdin"], "density": [float(i) for i in range(N_FIELDS)]}}


def ids_batch(b=16, n=N_FIELDS, seed=0):
    return torch.randint(-(2**63), 2**63 - 1, (b, n), generator=torch.Generator().manual_seed(seed))
