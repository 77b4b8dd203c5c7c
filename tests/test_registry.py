"""Registry: versions are immutable and atomic, aliases move by the promotion rule, rollback works."""

from __future__ import annotations

import json
import math
import threading
from pathlib import Path

import pytest
import torch

from dea_model.registry import Decision, Registry, RegistryError, decide
from features.lake import Lake


def _trained(tmp_path: Path, seed: int) -> Path:
    """A training output folder: a real state_dict and a config."""
    out = tmp_path / f"run-{seed}"
    out.mkdir()
    torch.manual_seed(seed)
    torch.save(torch.nn.Linear(4, 1).state_dict(), out / "model.pt")
    (out / "config.json").write_text(json.dumps({"model": "lr", "seed": seed}))
    return out


@pytest.fixture
def reg(tmp_path: Path) -> Registry:
    return Registry(Lake(tmp_path / "lake"), "dea")


def test_register_creates_numbered_complete_versions(reg, tmp_path):
    manifest = tmp_path / "manifest.json"
    manifest.write_text('{"fields": ["a"]}')
    v1 = reg.register(_trained(tmp_path, 1), metrics={"auc": 0.7}, lineage={"dataset": "synthetic"},
                      files={"manifest.json": manifest})
    assert json.loads((v1.path / "manifest.json").read_text()) == {"fields": ["a"]}
    v2 = reg.register(_trained(tmp_path, 2), metrics={"auc": 0.71}, lineage={"dataset": "synthetic"})
    assert (v1.version, v2.version) == ("v0001", "v0002")
    assert reg.versions() == ["v0001", "v0002"]
    shown = reg.show("2")
    assert shown.metrics == {"auc": 0.71} and shown.lineage == {"dataset": "synthetic"}
    assert json.loads((shown.path / "config.json").read_text())["seed"] == 2
    sd = reg.load_state_dict("v0002")
    torch.manual_seed(2)
    assert torch.equal(sd["weight"], torch.nn.Linear(4, 1).state_dict()["weight"])
    assert not [p for p in reg.root.iterdir() if p.name.startswith(".tmp")]


def test_register_without_weights_fails_and_leaves_nothing(reg, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(RegistryError, match="model.pt"):
        reg.register(empty, metrics={}, lineage={})
    assert reg.versions() == []


def test_crash_mid_register_leaves_no_version(reg, tmp_path, monkeypatch):
    import dea_model.registry as registry

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(registry, "write_record", boom)
    with pytest.raises(OSError, match="disk full"):
        reg.register(_trained(tmp_path, 1), metrics={"auc": 0.7}, lineage={})
    assert reg.versions() == [] and list(reg.root.iterdir()) == []
    monkeypatch.undo()
    assert reg.register(_trained(tmp_path, 2), metrics={"auc": 0.7}, lineage={}).version == "v0001"


def test_concurrent_registrations_get_distinct_versions(reg, tmp_path):
    sources = [_trained(tmp_path, s) for s in range(6)]
    got: list[str] = []
    threads = [threading.Thread(target=lambda s=s: got.append(
        reg.register(s, metrics={"auc": 0.5}, lineage={}).version)) for s in sources]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == [f"v{i:04d}" for i in range(1, 7)]
    seeds = sorted(json.loads((reg.root / v / "config.json").read_text())["seed"] for v in got)
    assert seeds == list(range(6))


def test_promote_rollback_and_aliases(reg, tmp_path):
    for s in range(3):
        reg.register(_trained(tmp_path, s), metrics={"auc": 0.6 + s / 100}, lineage={})
    assert reg.champion() is None
    reg.promote("v0001", "first")
    reg.set_alias("challenger", "v0002")
    reg.promote("v0002")
    assert reg.aliases() == {"champion": "v0002"}  # challenger cleared when it is promoted
    reg.promote("v0003")
    assert reg.champion().version == "v0003" and reg.show("champion").aliases == ("champion",)
    assert reg.rollback().version == "v0002"
    assert reg.rollback().version == "v0001"
    with pytest.raises(RegistryError, match="no previous champion"):
        reg.rollback()
    actions = [(e["action"], e["version"]) for e in reg.log()]
    assert actions == [("promote", "v0001"), ("set", "v0002"), ("promote", "v0002"), ("promote", "v0003"),
                       ("rollback", "v0002"), ("rollback", "v0001")]


def test_unknown_version_and_alias_errors_name_what_exists(reg, tmp_path):
    reg.register(_trained(tmp_path, 0), metrics={"auc": 0.6}, lineage={})
    with pytest.raises(RegistryError, match=r"no version 'v0009'.*\['v0001'\]"):
        reg.show("v0009")
    with pytest.raises(RegistryError, match="no version or alias 'best'"):
        reg.promote("best")
    with pytest.raises(RegistryError, match="promote"):
        reg.set_alias("champion", "v0001")


@pytest.mark.parametrize("cand, champ, promote, why", [
    ({"auc": 0.70, "gauc": 0.60}, None, True, "first model"),
    ({"auc": 0.70, "gauc": 0.61}, {"auc": 0.70, "gauc": 0.60}, True, "GAUC 0.61000 > champion 0.60000"),
    ({"auc": 0.699, "gauc": 0.61}, {"auc": 0.70, "gauc": 0.60}, True, "GAUC"),       # within tolerance
    ({"auc": 0.69, "gauc": 0.61}, {"auc": 0.70, "gauc": 0.60}, False, "beyond tolerance"),
    ({"auc": 0.80, "gauc": 0.60}, {"auc": 0.70, "gauc": 0.60}, False, "does not beat"),  # GAUC first
    ({"auc": 0.71, "gauc": math.nan}, {"auc": 0.70, "gauc": 0.60}, True, "AUC 0.71000 > champion"),
    ({"auc": 0.69}, {"auc": 0.70}, False, "AUC 0.69000 does not beat"),
])
def test_promotion_rule(cand, champ, promote, why):
    d = decide(cand, champ, auc_tolerance=0.002)
    assert isinstance(d, Decision) and d.promote is promote
    assert why in d.reason


def test_promotion_rule_min_gain_and_bad_metrics():
    assert not decide({"auc": 0.7, "gauc": 0.605}, {"auc": 0.7, "gauc": 0.60}, min_gain=0.01).promote
    assert decide({"auc": 0.7, "gauc": 0.615}, {"auc": 0.7, "gauc": 0.60}, min_gain=0.01).promote
    with pytest.raises(RegistryError, match="candidate metrics have no finite 'auc'"):
        decide({"auc": math.nan}, {"auc": 0.7})


# --- edges the mutation run found unpinned (benchmarks/results/mutation.md) ---------------------

def test_promotion_rule_boundaries_are_inclusive_for_auc_and_strict_for_the_key():
    # a_c >= a_b - auc_tolerance promotes at equality (values exact in binary); k_c > k_b + min_gain is strict
    assert decide({"auc": 0.5, "gauc": 0.75}, {"auc": 0.75, "gauc": 0.5}, auc_tolerance=0.25).promote
    assert not decide({"auc": 0.5, "gauc": 0.75}, {"auc": 0.75, "gauc": 0.5}, auc_tolerance=0.125).promote
    assert not decide({"auc": 0.75, "gauc": 0.75}, {"auc": 0.75, "gauc": 0.5}, min_gain=0.25).promote
    with pytest.raises(RegistryError, match=r"^champion metrics have no finite 'auc': \{'auc': nan\}$"):
        decide({"auc": 0.7}, {"auc": math.nan})


def test_alias_log_records_every_change_exactly(reg, tmp_path):
    import re

    for s in range(3):
        reg.register(_trained(tmp_path, s), metrics={"auc": 0.6}, lineage={})
    reg.promote("v0001")
    reg.set_alias("challenger", "v0002")
    reg.promote("v0002", "beat v0001")
    reg.rollback()
    assert reg.aliases() == {"champion": "v0001"} and reg.champion().version == "v0001"
    reg.set_alias("shadow", "3", "canary")
    log = reg.log()
    assert [{k: v for k, v in e.items() if k != "at"} for e in log] == [
        {"action": "promote", "alias": "champion", "version": "v0001", "reason": "manual"},
        {"action": "set", "alias": "challenger", "version": "v0002", "reason": ""},
        {"action": "promote", "alias": "champion", "version": "v0002", "reason": "beat v0001"},
        {"action": "rollback", "alias": "champion", "version": "v0001", "reason": "manual rollback (was v0002)"},
        {"action": "set", "alias": "shadow", "version": "v0003", "reason": "canary"}]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", e["at"]) for e in log)   # UTC, seconds


def test_promoting_the_champion_again_keeps_one_history_entry(reg, tmp_path):
    for s in range(2):
        reg.register(_trained(tmp_path, s), metrics={"auc": 0.6}, lineage={})
    assert reg.champion_history() == []
    reg.promote("v0001")
    reg.promote("v0002")
    reg.promote("champion", "re-confirmed")
    assert reg.champion_history() == ["v0001", "v0002"]
    assert reg.rollback().version == "v0001" and reg.champion_history() == ["v0001"]


def test_reserved_and_champion_aliases_are_refused_without_a_write(reg, tmp_path):
    reg.register(_trained(tmp_path, 0), metrics={"auc": 0.6}, lineage={})
    reg.promote("v0001")
    before = (reg.root / "aliases.json").read_text()
    with pytest.raises(RegistryError, match=r"^use promote\(\) / rollback\(\) to move 'champion' \(they keep its history\)$"):
        reg.set_alias("champion", "v0001")
    for reserved in ("champions", "log"):
        with pytest.raises(RegistryError, match=rf"^'{reserved}' is reserved$"):
            reg.set_alias(reserved, "v0001")
    assert (reg.root / "aliases.json").read_text() == before


def test_remove_deletes_unaliased_versions_and_prunes_the_champion_history(reg, tmp_path):
    for s in range(4):
        reg.register(_trained(tmp_path, s), metrics={"auc": 0.6}, lineage={})
    reg.promote("v0001")
    reg.promote("v0002")
    reg.set_alias("challenger", "v0003")
    reg.remove([], "retention")                                     # nothing to do: nothing logged
    assert len(reg.log()) == 3
    for held in (["v0002"], ["v0003"], ["v0004", "champion"]):      # an alias names it: refused whole
        with pytest.raises(RegistryError, match=r"^model 'dea': cannot remove \['v000[23]'\]: an alias points at it$"):
            reg.remove(held, "retention")
    assert reg.versions() == ["v0001", "v0002", "v0003", "v0004"] and len(reg.log()) == 3
    reg.remove(["v0004", "1"], "retention: keep 2")
    assert reg.versions() == ["v0002", "v0003"]
    assert sorted(p.name for p in reg.root.iterdir() if not p.name.startswith("aliases")) == [".aliases.lock", "v0002", "v0003"]
    assert reg.champion_history() == ["v0002"]                      # a rollback can no longer target v0001
    assert [{k: v for k, v in e.items() if k != "at"} for e in reg.log()[-2:]] == [
        {"action": "remove", "alias": "-", "version": "v0001", "reason": "retention: keep 2"},
        {"action": "remove", "alias": "-", "version": "v0004", "reason": "retention: keep 2"}]
    with pytest.raises(RegistryError, match="no previous champion"):
        reg.rollback()
    with pytest.raises(RegistryError, match="no version 'v0004'"):
        reg.remove(["v0004"], "again")
