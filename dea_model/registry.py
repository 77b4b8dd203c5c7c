"""Model registry: immutable versions under ``models/<name>/<version>/`` and movable aliases.

Layout::

    models/<name>/v0001/            model.pt (state_dict), config.json, ... (the training folder)
                        evaluation.json lineage.json (+ extra files, e.g. the feature manifest)
                        _COMPLETE.json
    models/<name>/aliases.json      {"champion": "v0002", "challenger": "v0003",
                                     "champions": ["v0001", "v0002"],  # promotion stack, for rollback
                                     "log": [{"at", "action", "alias", "version", "reason"}, ...]}
    models/<name>/aliases.last-good.json   the same, as of the last alias change that validated

A version is built in a hidden temporary folder and renamed into place; the rename fails when the
number was taken meanwhile (a non-empty target), so two concurrent registrations get two numbers and
a crash never leaves a half-registered version. The training folder's files are hard-linked into the
version when both are on one filesystem (copied otherwise), so a version does not store its run's
weights a second time; stages rewrite a folder through a new one and a rename, so the version keeps
the old inode when its run is retrained or deleted. The version's ``_COMPLETE.json`` records the
SHA-256 of every file; ``load_weights`` (used by ``load_state_dict`` and ``scoring.load_model``)
refuses a ``model.pt`` or ``config.json`` that no longer matches, and a ``model.pt`` that pickles
anything but tensors. ``verify`` checks every version.

Alias changes are one atomic JSON replace under a file lock; the new state is validated first (every
alias and champion-history entry names a complete version) and then also saved as the last-good
copy. A damaged ``aliases.json`` (not JSON, or naming a missing version) is an error for every
reader, naming the file and ``dea registry --model <name> repair``: ``repair`` restores the last-good
copy, or rebuilds the aliases from the versions' lineage when there is none, and logs what it did.

Promotion rule (``decide``): with ``g`` = GAUC and ``a`` = AUC of candidate (c) and champion (b)
evaluated on the same day,

    promote  <=>  g_c > g_b + min_gain   and   a_c >= a_b - auc_tolerance

(AUC alone when either GAUC is missing); the first model is always promoted.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import pickle
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from dea_model.runs import CONFIG, EVALUATION, WEIGHTS
from features.lake import (COMPLETE, Lake, make_record, read_record, remove_tree, verify_checksums, write_json_atomic,
                           write_record)
from features.storage import claim, copy_file, copy_tree, lake_path, lock, remove_quietly

ALIASES = "aliases.json"
LAST_GOOD = "aliases.last-good.json"
_VERSION = re.compile(r"^v(\d{4,})$")


class RegistryError(ValueError):
    """A registry operation that cannot be done; the message names the model and version."""


class ModelFileError(RegistryError):
    """A model folder's weights or config cannot be trusted: altered since its completion record was
    written, or a ``model.pt`` that is not a plain state_dict. The message names the model, the
    version (or training run), the file, and what to do."""


# --- loading weights safely -------------------------------------------------------------------

def _describe(folder: Path, file: Path) -> tuple[str, str]:
    """(the folder in words: model and version or run, what to do when ``file`` is damaged)."""
    record = read_record(folder) or {}
    if record.get("stage") == "register":
        name = record.get("model") or folder.parent.name
        source = (record.get("inputs") or {}).get("source")
        return (f"model {name!r} version {folder.name} (models/{name}/{folder.name})",
                f"restore {file} from a backup, or re-register its training run"
                f"{f' {source}' if source else ''} (retrain it if it is gone) and promote the new version; "
                f"`dea registry --model {name} verify` checks every version")
    if record.get("stage") == "train":
        return (f"training run {folder} (model {record.get('model')!r} on {record.get('dataset')!r})",
                f"restore {file} from a backup or retrain the run (`dea train`, or the train stage with force)")
    return f"model folder {folder}", f"restore {file} from a backup or retrain the model"


def check_model_files(folder: str | Path, names: tuple[str, ...] = (WEIGHTS, CONFIG)) -> None:
    """Raise ``ModelFileError`` unless ``names`` match the SHA-256 the folder's record vouches for.

    A name neither recorded nor present is skipped; a folder without a record, or with one written
    before records carried checksums, has nothing to compare with and passes.
    """
    folder = lake_path(folder)
    sums = (read_record(folder) or {}).get("checksums")
    if sums is None:
        return
    for name in names:
        if name not in sums and not (folder / name).exists():
            continue
        problems = verify_checksums(folder, [name])
        if problems:
            what, fix = _describe(folder, folder / name)
            raise ModelFileError(f"{what}: {'; '.join(problems)}; it no longer matches its completion record "
                                 f"and will not be loaded: {fix}")


def load_weights(folder: str | Path, map_location: Any = "cpu") -> dict:
    """The state_dict in ``folder/model.pt``, after ``check_model_files``; ``torch.load`` with
    ``weights_only=True``. A file that pickles anything but tensors and containers is refused with a
    ``ModelFileError`` naming the model, version and file (never a hint to unpickle it anyway)."""
    import torch

    folder = lake_path(folder)
    check_model_files(folder)
    path = folder / WEIGHTS
    try:
        with path.open("rb") as f:
            state = torch.load(f, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        found = sorted(set(re.findall(r"GLOBAL ([\w.]+)", str(e))))
        what, fix = _describe(folder, path)
        raise ModelFileError(f"{what}: {path} is not a plain state_dict: it pickles "
                             f"{', '.join(found) if found else 'an object other than tensors'}, which could run "
                             f"code when unpickled, so it will not be loaded: {fix}") from None
    if not isinstance(state, dict):
        what, fix = _describe(folder, path)
        raise ModelFileError(f"{what}: {path} is not a plain state_dict (it holds a {type(state).__name__}), "
                             f"so it will not be loaded: {fix}")
    return state


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


def promoted_by(reason: Any) -> bool | None:
    """Whether a ``decide`` reason (as stored in a version's lineage ``decision``) promoted; None
    when it is not one of ``decide``'s reasons. ``repair`` rebuilds aliases from it."""
    if not isinstance(reason, str):
        return None
    if reason.startswith("first model"):
        return True
    if re.match(r"^(GAUC|AUC) \S+ does not beat champion ", reason) or \
            re.match(r"^(GAUC|AUC) \S+ > \S+ but AUC .* beyond tolerance ", reason):
        return False
    if re.match(r"^(GAUC|AUC) \S+ > champion \S+; AUC ", reason):
        return True
    return None


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
        """Hard-link (or copy) a training output folder into a new version with its metrics and lineage.

        ``source`` holds what training wrote (``model.pt`` = a state_dict, ``config.json``...);
        its files are hard-linked when on the lake's filesystem, copied otherwise. ``metrics`` (the
        evaluation that decided promotion) go to ``evaluation.json``; ``files`` copies more files in
        under the given names. The record written last holds every file's SHA-256. Returns the new
        version; nothing is visible under ``models/<name>/`` until it is complete.
        """
        source = lake_path(source)
        if not (source / WEIGHTS).is_file():
            raise RegistryError(f"cannot register {self.name!r}: {source / WEIGHTS} does not exist "
                                f"(train a model into {source} first)")
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".tmp-register-{uuid.uuid4().hex[:8]}"
        try:
            copy_tree(source, tmp)
            for name, path in (files or {}).items():
                (tmp / name).unlink(missing_ok=True)  # a link into the source: writing it would edit the run
                copy_file(path, tmp / name)
            write_json_atomic(tmp / EVALUATION, metrics)
            write_json_atomic(tmp / "lineage.json", lineage)
            record = make_record("register", {"source": str(source)}, "", model=self.name)
            write_record(tmp, record)
            for _ in range(1000):
                version = self._next_version()
                if claim(tmp, self.root / version):      # False: the number was taken meanwhile
                    break
            else:  # pragma: no cover - would need 1000 concurrent writers
                raise RegistryError(f"could not allocate a version number under {self.root}")
        except BaseException:
            remove_quietly(tmp)
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

    def find_run(self, run_digest: str, eval_date: str) -> ModelVersion | None:
        """The version registered from the training run whose record digest is ``run_digest`` after
        its evaluation on ``eval_date`` (the newest, if several), or None."""
        found = [v for v in self.list_versions()
                 if v.lineage.get("run_digest") == run_digest and v.lineage.get("eval_date") == eval_date]
        return found[-1] if found else None

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
        """The version's weights on CPU, through ``load_weights``: SHA-256 of ``model.pt`` and
        ``config.json`` checked against the version's record, ``torch.load(weights_only=True)``."""
        return load_weights(self.show(version).path, map_location="cpu")

    def verify(self, version: str | None = None) -> "Verification":
        """Check the SHA-256 of every file of every version (or of one), and the alias file."""
        result = Verification()
        if version is None:
            result.problems += [f"model {self.name!r}: {p}" for p in self.alias_problems()]
        for v in [self.resolve(version)] if version else self.versions():
            folder = self.root / v
            if "checksums" not in (read_record(folder) or {}):
                result.unchecked.append(v)
                continue
            result.checked.append(v)
            result.problems += [f"{self.name} {v}: {p}" for p in verify_checksums(folder)]
        return result

    # --- aliases ----------------------------------------------------------------------------

    @staticmethod
    def _parse(path: Path) -> tuple[dict | None, str | None]:
        """(state, None), (None, None) when the file does not exist, or (None, what is wrong)."""
        if not path.exists():
            return None, None
        try:
            state = json.loads(path.read_text())
        except (ValueError, UnicodeDecodeError) as e:
            return None, f"{path} is not valid JSON ({e})"
        if not isinstance(state, dict):
            return None, f"{path} holds a JSON {type(state).__name__}, not the alias object"
        champions, log = state.setdefault("champions", []), state.setdefault("log", [])
        if not isinstance(champions, list) or not all(isinstance(v, str) for v in champions) \
                or not isinstance(log, list):
            return None, f"{path} has a 'champions' entry that is not a list of versions or a 'log' that is not a list"
        odd = sorted(k for k, v in state.items() if k not in ("champions", "log") and not isinstance(v, str))
        if odd:
            return None, f"{path} has aliases that are not version names: {odd}"
        return state, None

    def _exists(self, version: Any) -> bool:
        return isinstance(version, str) and bool(_VERSION.match(version)) and (self.root / version / COMPLETE).exists()

    def _dangling(self, state: dict, path: Path) -> list[str]:
        """Every alias and champion-history entry of ``state`` that names no complete version."""
        out = [f"alias {alias!r} in {path} points at version {version!r}, which does not exist"
               for alias, version in state.items() if alias not in ("champions", "log") and not self._exists(version)]
        out += [f"champion history entry {version!r} in {path} names a version that does not exist"
                for version in dict.fromkeys(state["champions"]) if not self._exists(version)]
        if out:
            out[-1] += f" (versions: {self.versions()})"
        return out

    def _last_good(self) -> tuple[dict | None, str | None]:
        """The last-good copy when it is usable now, else (None, why not)."""
        path = self.root / LAST_GOOD
        state, problem = self._parse(path)
        if state is None:
            return None, problem or f"there is no last-good copy {path}"
        dangling = self._dangling(state, path)
        return (None, "; ".join(dangling)) if dangling else (state, None)

    def alias_problems(self) -> list[str]:
        """What is wrong with ``aliases.json`` (unreadable, or naming missing versions); empty when fine."""
        path = self.root / ALIASES
        state, problem = self._parse(path)
        if problem:
            return [problem]
        if state is None:
            lg = self.root / LAST_GOOD
            return [f"{path} is missing, but its last-good copy {lg} exists"] if lg.exists() else []
        return self._dangling(state, path)

    def _state(self) -> dict:
        problems = self.alias_problems()
        if problems:
            good, _ = self._last_good()
            does = (f"restores the last-good copy {self.root / LAST_GOOD}" if good is not None
                    else "rebuilds the aliases from the versions' lineage")
            raise RegistryError(f"model {self.name!r}: {'; '.join(problems)}; repair it with "
                                f"`dea registry --model {self.name} repair` ({does}; --dry-run shows what it changes)")
        state, _ = self._parse(self.root / ALIASES)
        return state if state is not None else {"champions": [], "log": []}

    def aliases(self) -> dict[str, str]:
        """Alias -> version (``champion``, ``challenger``)."""
        return {k: v for k, v in self._state().items() if isinstance(v, str)}

    def champion(self) -> ModelVersion | None:
        version = self.aliases().get("champion")
        return None if version is None else self.show(version)

    def champion_history(self) -> list[str]:
        """Every version promoted to champion and not rolled back, oldest first (rollback targets)."""
        return list(self._state()["champions"])

    def log(self) -> list[dict]:
        """Every alias change, oldest first."""
        return self._state()["log"]

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with lock(self.root / ".aliases.lock", what=f"model {self.name!r}: another alias change"):
            yield

    def _write(self, state: dict) -> None:
        """Validate ``state``, replace ``aliases.json`` with it, then save it as the last-good copy."""
        dangling = self._dangling(state, self.root / ALIASES)
        if dangling:
            raise RegistryError(f"model {self.name!r}: alias change not saved: {'; '.join(dangling)}")
        write_json_atomic(self.root / ALIASES, state)
        write_json_atomic(self.root / LAST_GOOD, state)

    @contextlib.contextmanager
    def _edit(self) -> Iterator[dict]:
        """Read-modify-write ``aliases.json`` under an exclusive lock, validated, replaced atomically."""
        with self._lock():
            state = self._state()
            yield state
            self._write(state)

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

    def remove(self, versions: list[str], reason: str) -> None:
        """Delete ``versions`` (retention): refused for a version an alias names; they leave the
        champion history first, so a rollback never targets a deleted version."""
        doomed = {self.resolve(v) for v in versions}
        if not doomed:
            return
        with self._edit() as state:
            held = sorted(v for k, v in state.items() if isinstance(v, str) and v in doomed)
            if held:
                raise RegistryError(f"model {self.name!r}: cannot remove {held}: an alias points at it")
            state["champions"] = [v for v in state["champions"] if v not in doomed]
            for v in sorted(doomed):
                self._note(state, "remove", "-", v, reason)
        for v in sorted(doomed):
            remove_tree(self.root / v)

    # --- repair -----------------------------------------------------------------------------

    def _rebuilt(self) -> tuple[dict, list[str]]:
        """Aliases from the versions' lineage: every version whose recorded decision promoted it is
        on the champion history, the latest of them is champion; the latest one not promoted is
        challenger (what the register flow leaves). Returns (state without log, what was decided)."""
        promoted, kept = [], []
        for v in self.versions():
            lineage_path = self.root / v / "lineage.json"
            try:
                decision = json.loads(lineage_path.read_text()).get("decision")
            except (OSError, ValueError, AttributeError):
                decision = None
            {True: promoted, False: kept}.get(promoted_by(decision), []).append(v)
        state: dict = {"champions": promoted}
        if promoted:
            state["champion"] = promoted[-1]
            said = [f"champion {promoted[-1]} (the latest version whose registration decision promoted it), "
                    f"champion history {promoted}"]
        else:
            said = ["no champion (no version's registration decision promoted it)"]
        if kept:
            state["challenger"] = kept[-1]
            said.append(f"challenger {kept[-1]} (the latest version not promoted)")
        return state, said

    def repair(self, *, dry_run: bool = False, reason: str = "repair") -> list[str]:
        """Make ``aliases.json`` valid again; returns what it did (or, with ``dry_run``, would do).

        Restores the last-good copy when it is usable (every entry names a complete version), else
        rebuilds the aliases from the versions' lineage (``_rebuilt``), keeping the readable log.
        The damaged file is kept as ``aliases.broken-<time>.json``; the repair is logged.
        """
        path, lg = self.root / ALIASES, self.root / LAST_GOOD
        with self._lock():
            problems = self.alias_problems()
            if not problems:
                note = "" if lg.exists() else f"; no last-good copy yet ({lg} is written on the next alias change)"
                return [f"model {self.name!r}: {path} is valid: nothing to repair{note}"]
            def did(verb: str, past: str) -> str:
                return f"would {verb}" if dry_run else past

            lines = [f"model {self.name!r}: {'; '.join(problems)}"]
            good, why_not = self._last_good()
            if good is not None:
                state = good
                how = f"restored from the last-good copy {lg}"
                lines.append(f"{did('restore', 'restored')} {path} from its last-good copy {lg}: champion "
                             f"{good.get('champion', 'none')}, champion history {good['champions']}, other aliases "
                             f"{ {k: v for k, v in good.items() if k not in ('champion', 'champions', 'log')} }")
            else:
                current, _ = self._parse(path)
                old_log = (current or self._parse(lg)[0] or {}).get("log", [])
                state, said = self._rebuilt()
                state["log"] = old_log
                how = f"rebuilt from the versions' lineage: {'; '.join(said)}"
                lines.append(f"no usable last-good copy ({why_not})")
                lines.append(f"{did('rebuild', 'rebuilt')} {path} from the versions' lineage: {'; '.join(said)}; "
                             f"{did('keep', 'kept')} the {len(old_log)} log entries that were readable")
            self._note(state, "repair", "champion", state.get("champion"), f"{reason}: {'; '.join(problems)}; {how}")
            if path.exists():
                broken = self.root / f"aliases.broken-{dt.datetime.now().strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:4]}.json"
                lines.append(f"{did('keep', 'kept')} the damaged file as {broken}")
                if not dry_run:
                    copy_file(path, broken)
            lines.append(f"{did('log', 'logged')} the repair in {path} (and {did('save', 'saved')} it as {lg})")
            if not dry_run:
                self._write(state)
            return lines


@dataclass
class Verification:
    """What ``Registry.verify`` checked and found."""

    checked: list[str] = field(default_factory=list)     # versions whose checksums were compared
    unchecked: list[str] = field(default_factory=list)   # versions registered before records had checksums
    problems: list[str] = field(default_factory=list)    # one line each, naming model, version and file
