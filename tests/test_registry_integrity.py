"""Registry integrity: checksums verified on load, unsafe pickles refused, damaged aliases named and
repaired (last-good copy, else rebuilt from lineage), ``dea registry verify``, hard-linked weights."""

from __future__ import annotations

import errno
import re
import json
import os
import shutil
from pathlib import Path

import pytest
import torch

import dea_model.registry as registry_module
import features.storage as storage
from dea_model import scoring
from dea_model.models import build_model
from dea_model.registry import LAST_GOOD, ModelFileError, Registry, RegistryError, decide, promoted_by
from features.lake import atomic_dir, make_record, write_record
from flows.cli import main

FIELDS = ["user", "item", "ctx"]
HP = {"embedding_dim": 4, "embedding_rows": 64}


def _trained(tmp_path: Path, seed: int, *, record: bool = True) -> Path:
    """A training folder as ``dea_model.train`` writes it: an FM state_dict, config, completion record."""
    out = tmp_path / f"run-{seed}"
    with atomic_dir(out) as tmp:
        torch.manual_seed(seed)
        model = build_model("fm", len(FIELDS), **HP)
        torch.save(model.state_dict(), tmp / "model.pt")
        (tmp / "config.json").write_text(json.dumps({"model": "fm", "fields": FIELDS, "hparams": model.hparams,
                                                     "seed": seed}))
        if record:
            write_record(tmp, make_record("train", {}, "", model="fm", dataset="synthetic"))
    return out


def _zeroed(path: Path) -> None:
    """Overwrite a model.pt in place with a valid state_dict of zeros (what served p = 0.5 everywhere)."""
    state = torch.load(path, weights_only=True)
    with open(path, "r+b") as f:            # in place: the inode every hard link shares
        torch.save({k: torch.zeros_like(v) for k, v in state.items()}, f)
        f.truncate()


@pytest.fixture
def reg(tmp_path: Path) -> Registry:
    return Registry(tmp_path / "lake", "dea")


def _cli(reg: Registry, *args: str) -> list[str]:
    return ["--home", str(reg.lake.root), "registry", "--model", reg.name, *args]


# --- 5. hard links ----------------------------------------------------------------------------

def test_a_version_hard_links_its_runs_files_and_survives_the_runs_removal(reg, tmp_path):
    run = _trained(tmp_path, 1)
    want = torch.load(run / "model.pt", weights_only=True)
    v = reg.register(run, metrics={"auc": 0.7}, lineage={})
    for name in ("model.pt", "config.json"):
        assert (v.path / name).stat().st_ino == (run / name).stat().st_ino
        assert (v.path / name).stat().st_nlink == 2
    shutil.rmtree(run)
    got = reg.load_state_dict("v0001")
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)
    assert reg.verify().problems == []
    scoring.load_model(v.path)                                         # what evaluate / predict do


def test_a_retrained_run_folder_leaves_the_version_its_own_weights(reg, tmp_path):
    run = _trained(tmp_path, 1)
    want = torch.load(run / "model.pt", weights_only=True)
    v = reg.register(run, metrics={"auc": 0.7}, lineage={})
    (tmp_path / "other").mkdir()
    retrained = _trained(tmp_path / "other", 2)
    with atomic_dir(run) as tmp:                                 # a retrain: new folder, then rename
        for name in ("model.pt", "config.json", "_COMPLETE.json"):
            shutil.copy2(retrained / name, tmp / name)
    assert (v.path / "model.pt").stat().st_ino != (run / "model.pt").stat().st_ino
    got = reg.load_state_dict("v0001")
    assert all(torch.equal(got[k], want[k]) for k in want)
    assert reg.verify().problems == []


def test_registration_copies_when_hard_links_are_impossible(reg, tmp_path, monkeypatch):
    def cross_device(src, dst, **kw):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(storage.os, "link", cross_device)
    run = _trained(tmp_path, 1)
    v = reg.register(run, metrics={"auc": 0.7}, lineage={})
    assert (v.path / "model.pt").stat().st_ino != (run / "model.pt").stat().st_ino
    assert (v.path / "model.pt").read_bytes() == (run / "model.pt").read_bytes()
    assert reg.verify().problems == [] and reg.load_state_dict("v0001").keys()


def test_extra_files_replace_a_linked_file_without_writing_through_to_the_run(reg, tmp_path):
    run = _trained(tmp_path, 1)
    (run / "manifest.json").write_text('{"from": "run"}')
    newer = tmp_path / "manifest.json"
    newer.write_text('{"from": "lake"}')
    v = reg.register(run, metrics={"auc": 0.7}, lineage={}, files={"manifest.json": newer})
    assert json.loads((v.path / "manifest.json").read_text()) == {"from": "lake"}
    assert json.loads((run / "manifest.json").read_text()) == {"from": "run"}


# --- 1. checksums on load ---------------------------------------------------------------------

def test_weights_altered_through_the_runs_name_are_refused_for_the_version(reg, tmp_path, capsys):
    run = _trained(tmp_path, 1)
    reg.register(run, metrics={"auc": 0.7}, lineage={})
    reg.promote("v0001")
    _zeroed(run / "model.pt")                                    # edits the version too: one inode
    with pytest.raises(ModelFileError) as e:
        reg.load_state_dict("champion")
    msg = str(e.value)
    assert isinstance(e.value, RegistryError) and isinstance(e.value, ValueError)
    for part in ("model 'dea' version v0001 (models/dea/v0001)", str(reg.root / "v0001" / "model.pt"),
                 "SHA-256", "will not be loaded", "restore", "from a backup", f"re-register its training run {run}",
                 "`dea registry --model dea verify`"):
        assert part in msg
    with pytest.raises(ModelFileError, match=r"model 'dea' version v0001 .*model\.pt"):
        scoring.load_model(reg.root / "v0001")                       # evaluate / predict of the champion


def test_load_model_refuses_an_altered_run_folder_and_config(reg, tmp_path):
    run = _trained(tmp_path, 1)
    scoring.load_model(run)                                            # intact: loads
    cfg = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**cfg, "seed": 99}))
    with pytest.raises(ModelFileError) as e:
        scoring.load_model(run)
    assert f"training run {run} (model 'fm' on 'synthetic')" in str(e.value)
    assert str(run / "config.json") in str(e.value) and "retrain" in str(e.value)
    run2 = _trained(tmp_path, 2)
    _zeroed(run2 / "model.pt")
    with pytest.raises(ModelFileError, match=r"training run .*run-2.*model\.pt has SHA-256"):
        scoring.load_model(run2)


def test_a_removed_config_of_a_version_is_named(reg, tmp_path):
    v = reg.register(_trained(tmp_path, 1), metrics={"auc": 0.7}, lineage={})
    (v.path / "config.json").unlink()
    with pytest.raises(ModelFileError, match=r"version v0001 .*config\.json is missing"):
        reg.load_state_dict("v0001")


def test_folders_without_checksums_still_load(reg, tmp_path):
    run = _trained(tmp_path, 1, record=False)
    model, config = scoring.load_model(run)
    assert config["seed"] == 1


# --- 2. unsafe pickles ------------------------------------------------------------------------

CALLED: list[str] = []


def _mark(*args):  # what an unpickled payload would call; must never run
    CALLED.append("ran")
    return {}


class Payload:
    def __reduce__(self):
        return (_mark, ("payload",))


@pytest.mark.parametrize("payload, global_name", [({"weight": os.system}, "posix.system" if os.name == "posix" else "nt.system"),
                                                  (Payload(), "_mark")])
def test_a_model_pt_that_pickles_objects_is_refused(reg, tmp_path, payload, global_name):
    run = _trained(tmp_path, 1, record=False)
    torch.save(payload, run / "model.pt")                      # pickles a reference: nothing runs
    v = reg.register(run, metrics={"auc": 0.7}, lineage={})    # checksums match: the pickle itself is refused
    for load in (lambda: reg.load_state_dict("v0001"), lambda: scoring.load_model(v.path), lambda: scoring.load_model(run)):
        with pytest.raises(ModelFileError) as e:
            load()
        msg = str(e.value)
        assert "model.pt is not a plain state_dict" in msg and "will not be loaded" in msg and global_name in msg
        assert "weights_only" not in msg and e.value.__suppress_context__
    assert "model 'dea' version v0001 (models/dea/v0001)" in str(pytest.raises(ModelFileError, reg.load_state_dict, "1").value)
    assert CALLED == []


def test_a_model_pt_holding_no_dict_is_refused(reg, tmp_path):
    run = _trained(tmp_path, 1, record=False)
    torch.save(torch.zeros(3), run / "model.pt")
    with pytest.raises(ModelFileError, match=r"model folder .*model\.pt is not a plain state_dict \(it holds a Tensor\)"):
        scoring.load_model(run)


# --- 3. damaged aliases -----------------------------------------------------------------------

def _two_promoted(reg, tmp_path) -> None:
    for s in (1, 2):
        reg.register(_trained(tmp_path, s), metrics={"auc": 0.7}, lineage={})
        reg.promote(f"v000{s}", f"promote {s}")


def test_an_unreadable_aliases_file_is_an_error_naming_file_and_repair(reg, tmp_path, capsys):
    _two_promoted(reg, tmp_path)
    path = reg.root / "aliases.json"
    broken = path.read_text()[:36]
    path.write_text(broken)
    with pytest.raises(RegistryError) as e:
        reg.champion()
    msg = str(e.value)
    assert f"{path} is not valid JSON (Expecting value" in msg or f"{path} is not valid JSON (" in msg
    assert "`dea registry --model dea repair` (restores the last-good copy" in msg and "\n" not in msg
    assert main(_cli(reg, "list")) == 2
    err = capsys.readouterr().err
    assert err.startswith("dea registry: error: model 'dea': ") and err.count("\n") == 1 and str(path) in err
    with pytest.raises(RegistryError, match="not valid JSON"):
        reg.promote("v0001")                                     # no write over a damaged history
    assert path.read_text() == broken


def test_a_champion_pointing_at_a_missing_version_is_an_error(reg, tmp_path, capsys):
    _two_promoted(reg, tmp_path)
    path = reg.root / "aliases.json"
    state = json.loads(path.read_text())
    path.write_text(json.dumps({**state, "champion": "v0007"}))
    assert main(_cli(reg, "list")) == 2
    err = capsys.readouterr().err
    assert (f"alias 'champion' in {path} points at version 'v0007', which does not exist "
            f"(versions: ['v0001', 'v0002'])") in err
    assert "`dea registry --model dea repair`" in err and err.count("\n") == 1
    with pytest.raises(RegistryError, match="v0007"):
        reg.champion()


def test_a_missing_aliases_file_with_a_last_good_copy_is_an_error(reg, tmp_path):
    _two_promoted(reg, tmp_path)
    (reg.root / "aliases.json").unlink()
    with pytest.raises(RegistryError, match=r"aliases\.json is missing, but its last-good copy .* exists"):
        reg.champion()


def test_every_alias_write_keeps_a_validated_last_good_copy(reg, tmp_path, monkeypatch):
    _two_promoted(reg, tmp_path)
    reg.set_alias("challenger", "v0001")
    reg.rollback()
    assert json.loads((reg.root / LAST_GOOD).read_text()) == json.loads((reg.root / "aliases.json").read_text())
    before = (reg.root / "aliases.json").read_text(), (reg.root / LAST_GOOD).read_text()
    # a version vanishing between resolve() and the write: the new state does not validate, nothing is written
    monkeypatch.setattr(Registry, "resolve", lambda self, v: "v0009")
    with pytest.raises(RegistryError, match="alias change not saved: alias 'champion' .* 'v0009'"):
        reg.promote("v0009")
    assert ((reg.root / "aliases.json").read_text(), (reg.root / LAST_GOOD).read_text()) == before


# --- 4. repair --------------------------------------------------------------------------------

def test_repair_restores_the_last_good_copy(reg, tmp_path, capsys):
    _two_promoted(reg, tmp_path)
    reg.set_alias("challenger", "v0001", "manual")
    path = reg.root / "aliases.json"
    good = json.loads(path.read_text())
    path.write_text(path.read_text()[:50])
    assert main(_cli(reg, "repair", "--dry-run")) == 0
    out = capsys.readouterr().out
    assert "not valid JSON" in out and f"would restore {path} from its last-good copy" in out
    assert "champion v0002" in out and path.read_text() == json.dumps(good, indent=2, sort_keys=True)[:50]
    assert main(_cli(reg, "repair")) == 0
    out = capsys.readouterr().out
    assert f"restored {path} from its last-good copy {reg.root / LAST_GOOD}" in out and "kept the damaged file" in out
    assert reg.champion().version == "v0002" and reg.aliases() == {"champion": "v0002", "challenger": "v0001"}
    assert reg.rollback().version == "v0001"                      # the champion history came back too
    entry = reg.log()[-2]
    assert entry["action"] == "repair" and entry["version"] == "v0002" and "not valid JSON" in entry["reason"]
    assert [p.name for p in reg.root.glob("aliases.broken-*.json")]
    assert main(_cli(reg, "list")) == 0


def test_repair_rebuilds_from_lineage_without_a_usable_copy(reg, tmp_path, capsys):
    champion = {"auc": 0.70, "gauc": 0.60}
    outcomes = [decide({"auc": 0.70, "gauc": 0.60}, None),             # v1 first model: promoted
                decide({"auc": 0.71, "gauc": 0.61}, champion),          # v2 promoted
                decide({"auc": 0.69, "gauc": 0.59}, champion),          # v3 not promoted
                decide({"auc": 0.72, "gauc": 0.62}, champion),          # v4 promoted
                decide({"auc": 0.60, "gauc": 0.61}, champion)]          # v5 not promoted (AUC)
    assert [d.promote for d in outcomes] == [True, True, False, True, False]
    for s, d in enumerate(outcomes, 1):
        reg.register(_trained(tmp_path, s), metrics={"auc": 0.7}, lineage={"decision": d.reason})
        (reg.promote if d.promote else lambda v, r: reg.set_alias("challenger", v, r))(f"v000{s}", d.reason)
    shutil.rmtree(reg.root / "v0004")                              # the champion's folder is lost
    (reg.root / "aliases.json").write_text("{")                    # and the alias file damaged
    assert main(_cli(reg, "list")) == 2
    assert "rebuilds the aliases from the versions' lineage" in capsys.readouterr().err
    assert main(_cli(reg, "repair")) == 0
    out = capsys.readouterr().out
    assert f"no usable last-good copy (alias 'champion' in {reg.root / LAST_GOOD} points at version 'v0004'" in out
    assert ("rebuilt " in out and "champion v0002 (the latest version whose registration decision promoted it), "
            "champion history ['v0001', 'v0002']; challenger v0005 (the latest version not promoted)") in out
    assert reg.aliases() == {"champion": "v0002", "challenger": "v0005"}
    log = reg.log()
    assert log[-1]["action"] == "repair" and "rebuilt from the versions' lineage" in log[-1]["reason"]
    assert len(log) == 6                        # the unreadable file's log is gone; last-good's five + repair
    assert reg.rollback().version == "v0001"


def test_repair_with_nothing_to_go_on_leaves_no_champion(reg, tmp_path, capsys):
    reg.register(_trained(tmp_path, 1), metrics={"auc": 0.7}, lineage={})
    (reg.root / "aliases.json").write_text("[1, 2]")
    with pytest.raises(RegistryError, match=r"holds a JSON list, not the alias object"):
        reg.aliases()
    assert main(_cli(reg, "repair")) == 0
    assert "no champion (no version's registration decision promoted it)" in capsys.readouterr().out
    assert reg.champion() is None and reg.log()[-1]["action"] == "repair"


def test_repair_of_a_healthy_registry_changes_nothing(reg, tmp_path, capsys):
    _two_promoted(reg, tmp_path)
    before = sorted((p.name, p.read_bytes()) for p in reg.root.glob("aliases*.json"))
    assert main(_cli(reg, "repair")) == 0
    assert "is valid: nothing to repair" in capsys.readouterr().out
    assert sorted((p.name, p.read_bytes()) for p in reg.root.glob("aliases*.json")) == before


@pytest.mark.parametrize("cand, champ", [
    ({"auc": 0.70, "gauc": 0.60}, None), ({"auc": 0.70, "gauc": 0.61}, {"auc": 0.70, "gauc": 0.60}),
    ({"auc": 0.69, "gauc": 0.61}, {"auc": 0.70, "gauc": 0.60}), ({"auc": 0.80, "gauc": 0.60}, {"auc": 0.70, "gauc": 0.60}),
    ({"auc": 0.71, "gauc": float("nan")}, {"auc": 0.70, "gauc": 0.60}), ({"auc": 0.69}, {"auc": 0.70})])
def test_promoted_by_reads_every_decide_reason(cand, champ):
    d = decide(cand, champ)
    assert promoted_by(d.reason) is d.promote
    assert promoted_by("already registered: skipped") is None and promoted_by(None) is None


# --- 4. verify --------------------------------------------------------------------------------

def test_verify_names_every_altered_file_and_exits_1(reg, tmp_path, capsys):
    _two_promoted(reg, tmp_path)
    assert main(_cli(reg, "verify")) == 0
    assert "dea: 2 version(s) checked" in capsys.readouterr().out
    cfg = reg.root / "v0002" / "config.json"
    cfg.write_text(cfg.read_text() + " ")
    (reg.root / "v0001" / "model.pt").unlink()
    assert main(_cli(reg, "verify")) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"dea v0001: {reg.root / 'v0001' / 'model.pt'} is missing"
    assert lines[1].startswith(f"dea v0002: {cfg} has SHA-256 ")
    assert lines[-1].endswith("2 problem(s)")
    assert main(_cli(reg, "verify", "v0001")) == 1 and main(_cli(reg, "verify", "champion")) == 1
    assert capsys.readouterr().out.count("problem(s)") == 2


def test_verify_reports_a_damaged_alias_file_and_old_versions(reg, tmp_path, capsys):
    v = reg.register(_trained(tmp_path, 1), metrics={"auc": 0.7}, lineage={})
    record = json.loads((v.path / "_COMPLETE.json").read_text())
    del record["checksums"]
    (v.path / "_COMPLETE.json").write_text(json.dumps(record))    # registered before checksums
    (reg.root / "aliases.json").write_text("{oops")
    assert main(_cli(reg, "verify")) == 1
    out = capsys.readouterr().out
    assert f"model 'dea': {reg.root / 'aliases.json'} is not valid JSON" in out
    assert "1 version(s) registered before records carried checksums, not checked: v0001" in out


# --- edges the mutation run found unpinned (benchmarks/results/mutation.md) ---------------------

BROKEN_NAME = r"aliases\.broken-\d{8}T\d{6}-[0-9a-f]{4}\.json"     # aliases.broken-<local time>-<4 hex>.json


def _undecided(lineage_decisions: list[str | None], reg, tmp_path) -> None:
    for s, decision in enumerate(lineage_decisions, 1):
        reg.register(_trained(tmp_path, s), metrics={"auc": 0.7}, lineage={} if decision is None else {"decision": decision})


def test_an_alias_file_without_history_or_log_reads_as_empty(reg, tmp_path):
    _undecided([None, None], reg, tmp_path)
    (reg.root / "aliases.json").write_text('{"champion": "v0001"}')    # written by hand, or by an older version
    assert reg.aliases() == {"champion": "v0001"} and reg.champion_history() == [] and reg.log() == []
    reg.promote("v0002")
    assert reg.champion_history() == ["v0002"] and [e["action"] for e in reg.log()] == ["promote"]


@pytest.mark.parametrize("state, problem", [
    ({"champions": "v0001"}, "has a 'champions' entry that is not a list of versions or a 'log' that is not a list"),
    ({"champions": ["v0001", 1]}, "has a 'champions' entry that is not a list of versions or a 'log' that is not a list"),
    ({"champions": [], "log": {}}, "has a 'champions' entry that is not a list of versions or a 'log' that is not a list"),
    ({"champion": 3, "challenger": "v0001", "shadow": None}, "has aliases that are not version names: ['champion', 'shadow']"),
])
def test_malformed_alias_entries_are_named(reg, tmp_path, state, problem):
    _undecided([None], reg, tmp_path)
    path = reg.root / "aliases.json"
    path.write_text(json.dumps(state))
    assert reg.alias_problems() == [f"{path} {problem}"]
    with pytest.raises(RegistryError, match="repair"):
        reg.aliases()


def test_the_damaged_aliases_error_is_one_line_naming_every_problem_and_the_fix(reg, tmp_path):
    _two_promoted(reg, tmp_path)
    path = reg.root / "aliases.json"
    (reg.root / LAST_GOOD).unlink()
    path.write_text(json.dumps({"champion": "v0007", "challenger": "v0008", "champions": ["v0001"], "log": []}))
    with pytest.raises(RegistryError) as e:
        reg.aliases()
    assert str(e.value) == (
        f"model 'dea': alias 'champion' in {path} points at version 'v0007', which does not exist; "
        f"alias 'challenger' in {path} points at version 'v0008', which does not exist (versions: ['v0001', 'v0002']); "
        "repair it with `dea registry --model dea repair` (rebuilds the aliases from the versions' lineage; "
        "--dry-run shows what it changes)")


def test_an_invalid_alias_change_names_the_alias_file_and_every_missing_version(reg, tmp_path, monkeypatch):
    _two_promoted(reg, tmp_path)
    monkeypatch.setattr(Registry, "resolve", lambda self, v: "v0009")    # the version vanished meanwhile
    with pytest.raises(RegistryError) as e:
        reg.promote("v0009")
    path = reg.root / "aliases.json"
    assert str(e.value) == (
        f"model 'dea': alias change not saved: alias 'champion' in {path} points at version 'v0009', which does "
        f"not exist; champion history entry 'v0009' in {path} names a version that does not exist "
        "(versions: ['v0001', 'v0002'])")


def test_repair_of_a_healthy_registry_says_whether_a_last_good_copy_exists(reg, tmp_path):
    _two_promoted(reg, tmp_path)
    path, lg = reg.root / "aliases.json", reg.root / LAST_GOOD
    assert reg.repair() == [f"model 'dea': {path} is valid: nothing to repair"]
    lg.unlink()
    assert reg.repair() == [f"model 'dea': {path} is valid: nothing to repair; no last-good copy yet "
                            f"({lg} is written on the next alias change)"]


def test_repair_rebuild_report_dry_run_then_for_real(reg, tmp_path):
    """Three promoted (v1, v2, v4) and three kept (v3, v5, v6) registrations; the alias file names two
    missing versions and its last-good copy is unusable (two missing entries too): the report says
    exactly what is wrong and what is rebuilt; the dry run writes nothing; the real run keeps the damaged
    bytes and the readable log."""
    champion = {"auc": 0.70, "gauc": 0.60}
    yes, no = decide({"auc": 0.71, "gauc": 0.61}, champion).reason, decide({"auc": 0.69, "gauc": 0.59}, champion).reason
    _undecided([decide(champion, None).reason, yes, no, yes, no, no], reg, tmp_path)
    path, lg = reg.root / "aliases.json", reg.root / LAST_GOOD
    old_log = [{"at": "2026-01-01T06:00:00+00:00", "action": "promote", "alias": "champion", "version": "v0007",
                "reason": "manual"}]
    damaged = json.dumps({"champion": "v0007", "challenger": "v0008", "champions": ["v0007"], "log": old_log})
    path.write_text(damaged)
    lg.write_text(json.dumps({"champion": "v0009", "champions": ["v0009"], "log": []}))
    problems = reg.alias_problems()
    assert len(problems) == 3
    listing = sorted(p.name for p in reg.root.iterdir())
    versions = "(versions: ['v0001', 'v0002', 'v0003', 'v0004', 'v0005', 'v0006'])"
    why_not = (f"alias 'champion' in {lg} points at version 'v0009', which does not exist; champion history "
               f"entry 'v0009' in {lg} names a version that does not exist {versions}")
    said = ("champion v0004 (the latest version whose registration decision promoted it), champion history "
            "['v0001', 'v0002', 'v0004']; challenger v0006 (the latest version not promoted)")

    def expected(would: bool, broken: str) -> list[str]:
        w = (lambda verb, past: f"would {verb}") if would else (lambda verb, past: past)
        return [f"model 'dea': {'; '.join(problems)}", f"no usable last-good copy ({why_not})",
                f"{w('rebuild', 'rebuilt')} {path} from the versions' lineage: {said}; {w('keep', 'kept')} the 1 log "
                "entries that were readable",
                f"{w('keep', 'kept')} the damaged file as {reg.root / broken}",
                f"{w('log', 'logged')} the repair in {path} (and {w('save', 'saved')} it as {lg})"]

    lines = reg.repair(dry_run=True)
    broken = Path(lines[3].rsplit(" ", 1)[1]).name
    assert re.fullmatch(BROKEN_NAME, broken) and lines == expected(True, broken)
    assert sorted(p.name for p in reg.root.iterdir() if p.name != ".aliases.lock") == listing  # the lock only
    assert path.read_text() == damaged
    lines = reg.repair()
    broken = Path(lines[3].rsplit(" ", 1)[1]).name
    assert re.fullmatch(BROKEN_NAME, broken) and lines == expected(False, broken)
    assert (reg.root / broken).read_text() == damaged
    assert reg.aliases() == {"champion": "v0004", "challenger": "v0006"}
    assert reg.champion_history() == ["v0001", "v0002", "v0004"]
    log = reg.log()
    assert log[:-1] == old_log and {k: log[-1][k] for k in ("action", "alias", "version")} == {
        "action": "repair", "alias": "champion", "version": "v0004"}
    assert log[-1]["reason"] == f"repair: {'; '.join(problems)}; rebuilt from the versions' lineage: {said}"
    assert json.loads(lg.read_text()) == json.loads(path.read_text())


def test_repair_rebuild_without_any_promotion_reports_no_champion(reg, tmp_path):
    _undecided([None, "already registered: skipped"], reg, tmp_path)
    (reg.root / "aliases.json").write_text("[]")
    lines = reg.repair(reason="after disk failure")
    assert lines[1] == f"no usable last-good copy (there is no last-good copy {reg.root / LAST_GOOD})"
    assert lines[2].startswith(f"rebuilt {reg.root / 'aliases.json'} from the versions' lineage: no champion (no "
                               "version's registration decision promoted it); kept the 0 log entries")
    assert reg.aliases() == {} and reg.log()[-1]["reason"].startswith("after disk failure: ")


@pytest.mark.parametrize("promote", [True, False])
def test_repair_restore_report_names_champion_history_and_other_aliases(reg, tmp_path, promote):
    _undecided([None, None], reg, tmp_path)
    if promote:
        reg.promote("v0001")
        reg.promote("v0002")
    reg.set_alias("challenger", "v0001", "manual")
    reg.set_alias("shadow", "v0002", "canary")
    path, lg = reg.root / "aliases.json", reg.root / LAST_GOOD
    path.write_text("nonsense")
    lines = reg.repair()
    champion, history = ("v0002", ["v0001", "v0002"]) if promote else ("none", [])
    assert lines[1] == (f"restored {path} from its last-good copy {lg}: champion {champion}, champion history "
                        f"{history}, other aliases {{'challenger': 'v0001', 'shadow': 'v0002'}}")
    assert reg.log()[-1]["reason"] == f"repair: {reg.root / 'aliases.json'} is not valid JSON " \
        f"(Expecting value: line 1 column 1 (char 0)); restored from the last-good copy {lg}"
