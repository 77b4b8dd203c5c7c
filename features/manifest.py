"""The feature manifest: everything that turns a raw record into feature IDs, as one JSON file.

``features/<dataset>/_manifest.json`` is written by ``features.pipeline.fit`` and read by every
stage through this one type::

    Manifest.of(lake, dataset)     # the lake's manifest of a dataset (error: what to run)
    Manifest.load(path)            # a manifest file (a registered model's copy, say)
    manifest.fields, .dense, ...   # the fitted state
    manifest.digest                # identity of this fit (its completion record's digest)
    manifest.feature_signature     # what fixes the meaning of a feature ID (models compare it)
    manifest.kinds                 # {field: "sparse" | "multi" | "dense" | "cross"}

Pure pydantic and the standard library: ``dea_model`` and ``validation`` import it without Dask.
"""

from __future__ import annotations

import hashlib
import json
import os

from pydantic import BaseModel, ConfigDict, ValidationError

from features.lake import Lake
from features.storage import lake_path

#: the manifest keys that fix the meaning of a feature ID (``Manifest.feature_signature``)
SIGNATURE_KEYS = ("fields", "hash_spec_version", "hash_seed", "config_hash", "dense")


class Manifest(BaseModel):
    """Everything needed to turn a raw record into feature IDs, as JSON."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: str
    fields: list[str]
    sparse: list[str]
    dense: dict[str, dict]            # name -> {"boundaries": [...], "log1p": bool, "buckets": int}
    multi: dict[str, dict] = {}       # multi-valued fields: name -> {"max_len": int, "pooling": str, "sep": ...}
    cross: list[tuple[str, str]]
    label: str
    group: str | None
    passthrough: list[str]
    missing: str
    hash_spec_version: int
    hash_seed: int
    config_hash: str
    fit_dates: list[str]
    spec: dict
    record: dict

    @property
    def digest(self) -> str:
        return self.record["digest"]

    @property
    def feature_signature(self) -> str:
        """Hash of what fixes the meaning of a feature ID: fields, hash spec, spec config, buckets.

        A model trained on one signature gives garbage on another: registered models store it and
        ``scoring.check_features`` compares it. The value is the SHA-256 (16 hex digits) of the
        sorted-key JSON of ``SIGNATURE_KEYS`` as the manifest file holds them; never change it.
        """
        stored = self.model_dump(mode="json")
        core = {k: stored.get(k) for k in SIGNATURE_KEYS}
        return hashlib.sha256(json.dumps(core, sort_keys=True, default=str).encode()).hexdigest()[:16]

    @property
    def kinds(self) -> dict[str, str]:
        """``{field: "sparse" | "multi" | "dense" | "cross"}`` in manifest order."""
        return {f: "dense" if f in self.dense else "sparse" if f in self.sparse else "multi" if f in self.multi
                else "cross" for f in self.fields}

    @classmethod
    def load(cls, path: str | os.PathLike, *, todo: str = "run `dea features` (it fits the manifest) first") -> "Manifest":
        """The manifest file at ``path``; errors name the path and ``todo`` (what to run)."""
        path = lake_path(path)
        if not path.exists():
            raise FileNotFoundError(f"no feature manifest at {path}: {todo}")
        try:
            manifest = cls.model_validate_json(path.read_text())
        except ValidationError as e:
            raise ValueError(f"feature manifest {path} is not a valid manifest ({e.error_count()} error(s): "
                             f"{e.errors()[0]['loc']}: {e.errors()[0]['msg']}); refit it: "
                             f"`dea features --force`") from None
        if not manifest.fields:
            raise ValueError(f"feature manifest {path} lists no 'fields'; refit it: `dea features --force`")
        return manifest

    @classmethod
    def of(cls, lake: Lake, dataset: str) -> "Manifest":
        """The lake's manifest of ``dataset`` (``features/<dataset>/_manifest.json``)."""
        return cls.load(lake.manifest(dataset),
                        todo=f"dataset {dataset!r} has none yet; run `dea features --dataset {dataset}` "
                             f"(it fits the manifest and writes the feature tables) first")
