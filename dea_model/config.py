"""Training configuration: one typed, validated pydantic model (a form in the Prefect UI).

Example::

    cfg = TrainConfig(model="dea", hparams={"embedding_dim": 16}, epochs=5, lr=1e-3)
    cfg = cfg.with_overrides(["lr=3e-4", "hparams.k=2"])      # the CLI's --set key=value
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError


def _registered_models(schema: dict[str, Any]) -> None:
    """``model``'s choices in a form (JSON schema ``enum``): the registry's names, read when the
    schema is built (the registry imports torch, which this module does not need)."""
    from dea_model.models import available

    schema["enum"] = available()


class TrainConfig(BaseModel):
    """Everything that decides a training run besides the data.

    Weight decay is split three ways: ``weight_decay`` for the dense network, and
    ``embedding_weight_decay`` / ``codebook_weight_decay`` for the hashed feature tables and the
    Combo-ID codebooks (large tables where only looked-up rows carry signal, so usually 0).
    ``sparse_embeddings``: the tables get row-sparse gradients and lazy Adam (``dea_model.optim``):
    a step costs the rows a batch looks up, not the table size. DEA's codebooks join them when a
    batch of ``batch_size`` rows has at most an eighth as many field pairs as a codebook has rows
    (``optim.SPARSE_CODEBOOK_SHARE``); their weight decay then acts on the looked-up rows only (as
    the tables'), otherwise on every row each step.
    """

    model_config = ConfigDict(extra="forbid", protected_namespaces=(),
                              field_title_generator=lambda name, info: name)   # form labels: the field names

    model: str = Field("dea", description="architecture, from the model registry (dea_model.models)",
                       json_schema_extra=_registered_models)
    hparams: dict[str, Any] = Field(default_factory=dict, description="the model's hyperparameters, passed to "
                                    "build_model(model, n_fields, **hparams); an unknown one is an error")
    epochs: int = Field(10, ge=1, description="most epochs to train (early stopping may end sooner)")
    batch_size: int = Field(4096, ge=1, description="training rows per step")
    eval_batch_size: int = Field(8192, ge=1, description="rows per scoring batch (DEA at 65536 rows: ~19 GB of "
                                                         "pair tensors on CUDA)")
    lr: float = Field(1e-3, gt=0, description="learning rate")
    optimizer: Literal["adam", "adamw"] = Field("adam", description="adam, or adamw (decoupled weight decay)")
    weight_decay: float = Field(0.0, ge=0, description="weight decay of the dense network")
    embedding_weight_decay: float = Field(0.0, ge=0, description="weight decay of the hashed feature tables "
                                                                 "(usually 0)")
    codebook_weight_decay: float = Field(0.0, ge=0, description="weight decay of DEA's Combo-ID codebooks "
                                                                "(usually 0)")
    sparse_embeddings: bool = Field(True, description="row-sparse gradients and lazy Adam on the embedding "
                                                      "tables: a step costs the rows a batch looks up")
    grad_clip: float | None = Field(None, gt=0, description="largest global gradient norm; empty = no clipping")
    patience: int = Field(2, ge=1, description="epochs without a better validation AUC before stopping")
    calibrate: bool = Field(True, description="Platt-scale the logit on the validation day")
    min_id_count: int = Field(0, ge=0, description="IDs seen fewer times in training map to the OOV ID; 0 = off")
    seed: int = Field(2025, description="random seed of initialisation and shuffling")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto = CUDA when present, else CPU")
    compile: bool = Field(False, description="torch.compile the model for training")
    bf16: bool = Field(True, description="bf16 autocast on CUDA")
    bf16_cpu: bool = Field(False, description="bf16 autocast on the CPU too (AVX512-BF16 / AMX)")
    memory_budget_gb: float = Field(4.0, gt=0, description="training days larger than this (GB) stream from "
                                                           "disk, file by file")
    shuffle_buffer_rows: int = Field(1_000_000, ge=1, description="rows of the streaming shuffle buffer")
    check_every: int = Field(50, ge=1, description="steps between loss checks (each one a GPU sync)")
    nproc: int = Field(1, ge=1, description="data-parallel training processes on this host (torch.distributed: "
                                            "gloo on CPU, NCCL with one GPU each on CUDA); each trains on a "
                                            "share of every batch of batch_size rows, so batch_size and lr "
                                            "keep their meaning; 1 = this process alone")
    progress: bool = Field(True, description="tqdm progress bar (always off in flows)")
    plot: bool = Field(True, description="also write curve.png")

    def config_hash(self) -> str:
        """Hash of what changes the trained weights (not progress/plot/check cadence). ``nproc`` counts
        only above 1 (other float sums), so a one-process config keeps the hash it had before the field."""
        ignored = {"progress", "plot", "check_every", "eval_batch_size"} | ({"nproc"} if self.nproc == 1 else set())
        relevant = self.model_dump(exclude=ignored)
        return hashlib.sha256(json.dumps(relevant, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def with_overrides(self, assignments: list[str] | None) -> "TrainConfig":
        """A copy with ``key=value`` assignments applied (values parsed as YAML; ``hparams.x=...``)."""
        data = self.model_dump()
        for item in assignments or []:
            key, sep, text = item.partition("=")
            if not sep or not key:
                raise ValueError(f"--set {item!r}: expected key=value, e.g. lr=3e-4 or hparams.k=2")
            value = yaml.safe_load(text) if text else None
            head, _, rest = key.partition(".")
            if rest:
                if head != "hparams":
                    raise ValueError(f"--set {item!r}: only hparams.<name> takes a dotted key")
                data["hparams"][rest] = value
            else:
                data[key] = value
        try:
            return TrainConfig.model_validate(data)
        except ValidationError as e:
            msgs = "; ".join(f"{'.'.join(map(str, err['loc']))}: "
                             f"{'unknown key (typo?)' if err['type'] == 'extra_forbidden' else err['msg']}"
                             for err in e.errors())
            raise ValueError(f"invalid training config: {msgs}") from None
