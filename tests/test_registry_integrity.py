"""Registry integrity: checksums verified on load, unsafe pickles refused, damaged aliases named and
repaired (last-good copy, else rebuilt from lineage), ``dea registry verify``, hard-linked weights."""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import pytest
import torch

import dea_model.registry as registry_module
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

    monkeypatch.setattr(registry_module.os, "link", cross_device)
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
