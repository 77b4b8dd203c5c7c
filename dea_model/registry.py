"""Model registry: immutable versions under ``models/<name>/<version>/`` and movable aliases.

Layout::

    models/<name>/v0001/            model.pt (state_dict), config.json, ... (the training folder)
                        evaluation.json lineage.json (+ extra files, e.g. the feature manifest)
                        _COMPLETE.json
    models/<name>/aliases.json      {"champion": "v0002", "challenger": "v0003",
                                     "champions": ["v0001", "v0002"],  # promotion stack, for rollback
                                     "log": [{"at", "action", "alias", "version", "reason"}, ...]}

A version is built in a hidden temporary folder and renamed into place; the rename fails when the
number was taken meanwhile (a non-empty target), so two concurrent registrations get two numbers and
a crash never leaves a half-registered version. Alias changes are one atomic JSON replace under a
file lock.

Promotion rule (``decide``): with ``g`` = GAUC and ``a`` = AUC of candidate (c) and champion (b)
evaluated on the same day,

    promote  <=>  g_c > g_b + min_gain   and   a_c >= a_b - auc_tolerance

(AUC alone when either GAUC is missing); the first model is always promoted.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import math
import os
import re
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from features.lake import COMPLETE, Lake, make_record, write_json_atomic, write_record

ALIASES = "aliases.json"
WEIGHTS = "model.pt"          # as written by dea_model.train
EVALUATION = "evaluation.json"
_VERSION = re.compile(r"^v(\d{4,})$")


class RegistryError(ValueError):
    """A registry operation that cannot be done; the message names the model and version."""


@dataclass(frozen=True)
class Decision:
    """Outcome of the promotion rule, with the reason in words (logged and stored in the log)."""

    promote: bool
    reason: str


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def decide(candidate: dict, champion: dict | None, *, auc_tolerance: float = 0.002,
           min_gain: float = 0.0) -> Decision:
    """Promotion rule: GAUC first, AUC not worse beyond ``auc_tolerance``; no champion -> promote.

    ``candidate`` / ``champion`` are metric dicts with ``auc`` and optionally ``gauc``, computed on
    the same evaluation day. A missing or NaN GAUC on either side falls back to AUC as the key.
    """
    if champion is None:
        return Decision(True, "first model: no champion yet")
    for who, m in (("candidate", candidate), ("champion", champion)):
        if not _finite(m.get("auc")):
            raise RegistryError(f"{who} metrics have no finite 'auc': {m}")
    a_c, a_b = candidate["auc"], champion["auc"]
    if _finite(candidate.get("gauc")) and _finite(champion.get("gauc")):
        key, k_c, k_b = "GAUC", candidate["gauc"], champion["gauc"]
    else:
        key, k_c, k_b = "AUC", a_c, a_b
    if not k_c > k_b + min_gain:
        return Decision(False, f"{key} {k_c:.5f} does not beat champion {k_b:.5f} (+{min_gain:g})")
    if a_c < a_b - auc_tolerance:
        return Decision(False, f"{key} {k_c:.5f} > {k_b:.5f} but AUC {a_c:.5f} is worse than champion "
                               f"{a_b:.5f} beyond tolerance {auc_tolerance:g}")
    return Decision(True, f"{key} {k_c:.5f} > champion {k_b:.5f}; AUC {a_c:.5f} vs {a_b:.5f} "
                          f"(tolerance {auc_tolerance:g})")


@dataclass(frozen=True)
class ModelVersion:
    """One registered version: where it is and what it recorded."""

    name: str
    version: str
    path: Path
    metrics: dict = field(default_factory=dict)     # evaluation.json
    lineage: dict = field(default_factory=dict)
    created_at: str = ""
    aliases: tuple[str, ...] = ()

    @property
    def weights(self) -> Path:
        return self.path / WEIGHTS

    def as_dict(self) -> dict:
        return {"name": self.name, "version": self.version, "path": str(self.path),
                "aliases": list(self.aliases), "created_at": self.created_at,
                "metrics": self.metrics, "lineage": self.lineage}


class Registry:
    """The versions and aliases of one model name, ``Registry(lake, "dea")``."""

    def __init__(self, lake: Lake | str | Path, name: str):
        if not name or "/" in name or name.startswith("."):
            raise RegistryError(f"model name {name!r} must be a plain folder name")
        self.lake = lake if isinstance(lake, Lake) else Lake.default(lake)
        self.name = name
        self.root = self.lake.models(name)

    # --- versions ---------------------------------------------------------------------------

    def register(self, source: str | Path, *, metrics: dict, lineage: dict,
                 files: dict[str, str | Path] | None = None) -> ModelVersion:
        """Copy a training output folder into a new version with its metrics and lineage.

        ``source`` holds what training wrote (``model.pt`` = a state_dict, ``config.json``...);
        ``metrics`` (the evaluation that decided promotion) go to ``evaluation.json``; ``files``
        copies more files in under the given names. Returns the new version; nothing is visible
        under ``models/<name>/`` until it is complete.
        """
        source = Path(source)
        if not (source / WEIGHTS).is_file():
            raise RegistryError(f"cannot register {self.name!r}: {source / WEIGHTS} does not exist "
                                f"(train a model into {source} first)")
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".tmp-register-{uuid.uuid4().hex[:8]}"
        try:
            shutil.copytree(source, tmp, ignore=shutil.ignore_patterns(".*", COMPLETE))
            for name, path in (files or {}).items():
                shutil.copyfile(path, tmp / name)
            write_json_atomic(tmp / EVALUATION, metrics)
            write_json_atomic(tmp / "lineage.json", lineage)
            record = make_record("register", {"source": str(source)}, "", model=self.name)
            write_record(tmp, record)
            for _ in range(1000):
                version = self._next_version()
                try:
                    os.rename(tmp, self.root / version)  # fails on a non-empty target: number taken
                    break
                except OSError:
                    continue
            else:  # pragma: no cover - would need 1000 concurrent writers
                raise RegistryError(f"could not allocate a version number under {self.root}")
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return self.show(version)

    def _next_version(self) -> str:
        nums = [int(m.group(1)) for p in self.root.iterdir() if (m := _VERSION.match(p.name))]
        return f"v{max(nums, default=0) + 1:04d}"

    def versions(self) -> list[str]:
        """Complete versions, oldest first."""
        if not self.root.exists():
            return []
        found = [p.name for p in self.root.iterdir() if _VERSION.match(p.name) and (p / COMPLETE).exists()]
        return sorted(found, key=lambda v: int(v[1:]))

    def list_versions(self) -> list[ModelVersion]:
        return [self.show(v) for v in self.versions()]

    def show(self, version: str) -> ModelVersion:
        """A version by number (``v0003``), or by alias (``champion``)."""
        resolved = self.resolve(version)
        path = self.root / resolved
        record = json.loads((path / COMPLETE).read_text())
        aliases = self.aliases()
        return ModelVersion(
            name=self.name, version=resolved, path=path,
            metrics=json.loads((path / EVALUATION).read_text()),
            lineage=json.loads((path / "lineage.json").read_text()),
            created_at=record.get("created_at", ""),
            aliases=tuple(sorted(a for a, v in aliases.items() if v == resolved)))

    def resolve(self, version: str) -> str:
        """``champion`` / ``challenger`` / ``v0003`` / ``3`` -> ``v0003``; errors name what exists."""
        if not _VERSION.match(version):
            aliases = self.aliases()
            if version in aliases:
                version = aliases[version]
            elif version.isdigit():
                version = f"v{int(version):04d}"
            else:
                raise RegistryError(f"model {self.name!r} has no version or alias {version!r}; "
                                    f"aliases: {sorted(aliases)}, versions: {self.versions()}")
        if not (self.root / version / COMPLETE).exists():
            raise RegistryError(f"model {self.name!r} has no version {version!r} under {self.root}; "
                                f"versions: {self.versions()}")
        return version

    def load_state_dict(self, version: str = "champion") -> dict:
        """The version's weights, loaded with ``torch.load(weights_only=True)`` on CPU."""
        import torch

        return torch.load(self.show(version).weights, map_location="cpu", weights_only=True)

    # --- aliases ----------------------------------------------------------------------------

    def _state(self) -> dict:
        path = self.root / ALIASES
        return json.loads(path.read_text()) if path.exists() else {"champions": [], "log": []}

    def aliases(self) -> dict[str, str]:
        """Alias -> version (``champion``, ``challenger``)."""
        return {k: v for k, v in self._state().items() if isinstance(v, str)}

    def champion(self) -> ModelVersion | None:
        version = self.aliases().get("champion")
        return None if version is None else self.show(version)

    def log(self) -> list[dict]:
        """Every alias change, oldest first."""
        return self._state()["log"]

    @contextlib.contextmanager
    def _edit(self) -> Iterator[dict]:
        """Read-modify-write ``aliases.json`` under an exclusive lock, replaced atomically."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".aliases.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            state = self._state()
            yield state
            write_json_atomic(self.root / ALIASES, state)

    @staticmethod
    def _note(state: dict, action: str, alias: str, version: str | None, reason: str) -> None:
        state["log"].append({"at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                             "action": action, "alias": alias, "version": version, "reason": reason})

    def set_alias(self, alias: str, version: str, reason: str = "") -> None:
        """Point a non-champion alias (e.g. ``challenger``) at a version."""
        if alias == "champion":
            raise RegistryError("use promote() / rollback() to move 'champion' (they keep its history)")
        if alias in ("champions", "log"):
            raise RegistryError(f"{alias!r} is reserved")
        version = self.resolve(version)
        with self._edit() as state:
            state[alias] = version
            self._note(state, "set", alias, version, reason)

    def promote(self, version: str, reason: str = "manual") -> ModelVersion:
        """Make ``version`` the champion (pushed on the champion stack); clears a matching challenger."""
        version = self.resolve(version)
        with self._edit() as state:
            if state.get("champion") != version:
                state["champions"].append(version)
            state["champion"] = version
            if state.get("challenger") == version:
                del state["challenger"]
            self._note(state, "promote", "champion", version, reason)
        return self.show(version)

    def rollback(self, reason: str = "manual rollback") -> ModelVersion:
        """Return the champion alias to the previous champion (pops the champion stack)."""
        with self._edit() as state:
            stack = state["champions"]
            if len(stack) < 2:
                raise RegistryError(f"model {self.name!r} has no previous champion to roll back to "
                                    f"(champion history: {stack})")
            demoted = stack.pop()
            state["champion"] = stack[-1]
            self._note(state, "rollback", "champion", stack[-1], f"{reason} (was {demoted})")
            version = stack[-1]
        return self.show(version)
