"""Retention (``dea gc``): on a lake of twelve days, the policy keeps exactly the newest days, what
the next run needs (its training and gate reference windows, stepping over a failed day), the
newest run days, the newest versions, every aliased version and the rollback history; a dry run
removes nothing; freed bytes count hard-linked weights only when every link goes; a rollback still
works afterwards; the ``gc`` flow and the weekly deployment apply it."""

from __future__ import annotations

import datetime as dt
import os

import pytest
import yaml

from dea_model.registry import Registry
from dea_model.retention import apply_gc, freed_bytes, lake_bytes, plan_gc
from features.lake import Lake, atomic_dir, date_range, make_record, write_json_atomic, write_record
from features.spec import CONFIG_DIR, load_spec

DAYS = date_range("2026-01-01", 12)                       # 01-01 .. 01-12
POLICY = {"data_days": 5, "run_days": 3, "versions": 2, "champions": 2}


def _day(folder, payload: bytes = b"x" * 1000) -> None:
    with atomic_dir(folder) as tmp:
        (tmp / "part-00000.parquet").write_bytes(payload)
        write_record(tmp, make_record("test", {}, ""))


@pytest.fixture
def lake(tmp_path) -> Lake:
    """Twelve days in every data stage and in runs/; 01-10's gate failed; six model versions with
    champion history v0001, v0003, v0005 and challenger v0006, each hard-linking its run's weights."""
    lake = Lake(tmp_path / "lake")
    for d in DAYS:
        for stage in ("raw", "features", "stats", "validation"):
            _day(lake.root / stage / "synthetic" / f"dt={d}")
        write_json_atomic(lake.validation("synthetic", d) / "verdict.json",
                          {"verdict": "fail" if d == "2026-01-10" else "pass"})
        _day(lake.runs() / "synthetic" / f"dt={d}" / "fm-abc-w3")
    reg = Registry(lake, "synthetic")
    for i, d in enumerate(DAYS[-6:], start=1):
        run = lake.runs() / "synthetic" / f"dt={d}" / "fm-abc-w3"
        (run / "model.pt").write_bytes(os.urandom(10_000))
        reg.register(run, metrics={"auc": 0.7}, lineage={"eval_date": d})
        if i in (1, 3, 5):
            reg.promote(f"v{i:04d}", "test")
    reg.set_alias("challenger", "v0006")
    return lake


def _spec(**policy):
    return load_spec("synthetic", {"retention": {**POLICY, **policy}})


def test_the_policy_keeps_what_is_needed_and_nothing_more(lake):
    plan = plan_gc(_spec(), lake, window=3)

    # newest 5 days (01-08..01-12) plus the 7 accepted days before 01-12 that the gate's reference
    # window needs (reference_days 7 > window 3), stepping over the failed 01-10: 01-04..01-11
    assert plan.newest == "2026-01-12"
    assert plan.kept["data days"] == date_range("2026-01-04", 9)
    assert plan.kept["run days"] == ["2026-01-10", "2026-01-11", "2026-01-12"]
    assert plan.kept["model versions"] == ["v0003", "v0005", "v0006"]   # newest 2, aliases, last 2 champions
    removed = {(r.kind, r.path.relative_to(lake.root).as_posix()) for r in plan.removals}
    assert {p for k, p in removed if k == "features day"} == {f"features/synthetic/dt={d}" for d in DAYS[:3]}
    assert sum(k == "raw day" for k, _ in removed) == 3 and sum(k == "validation day" for k, _ in removed) == 3
    assert {p for k, p in removed if k == "run day"} == {f"runs/synthetic/dt={d}" for d in DAYS[:9]}
    assert {p for k, p in removed if k == "model version"} == {"models/synthetic/v0001", "models/synthetic/v0002",
                                                                "models/synthetic/v0004"}


def test_a_dry_run_removes_nothing_and_apply_removes_exactly_the_plan(lake):
    aliases = [lake.models("synthetic") / n for n in ("aliases.json", "aliases.last-good.json")]
    before, aliases_before = lake_bytes(lake.root), sum(p.stat().st_size for p in aliases)
    plan = plan_gc(_spec(), lake, window=3)
    assert lake_bytes(lake.root) == before
    apply_gc(plan, lake)
    logged = sum(p.stat().st_size for p in aliases) - aliases_before          # the removals' log entries
    assert before - lake_bytes(lake.root) == plan.freed_bytes - logged

    assert not any(r.path.exists() for r in plan.removals)
    assert lake.dates("features", "synthetic") == date_range("2026-01-04", 9)
    reg = Registry(lake, "synthetic")
    assert reg.versions() == ["v0003", "v0005", "v0006"]
    assert reg.champion_history() == ["v0003", "v0005"]                # no rollback target was deleted
    assert reg.aliases() == {"champion": "v0005", "challenger": "v0006"}
    assert reg.verify().problems == []
    assert reg.rollback("test").version == "v0003"
    assert plan_gc(_spec(), lake, window=3).removals == []              # nothing more to do


def test_freed_bytes_count_hard_linked_weights_only_when_every_link_goes(lake):
    run = lake.runs() / "synthetic" / "dt=2026-01-12" / "fm-abc-w3"          # v0006 links its model.pt
    assert (run / "model.pt").stat().st_nlink == 2
    assert freed_bytes([run]) == (run / "_COMPLETE.json").stat().st_size      # its files are the version's too
    assert freed_bytes([run, lake.models("synthetic") / "v0006"]) > 10_000   # both links go: the weights too


def test_ad_hoc_runs_go_by_age(lake):
    old = lake.runs() / "synthetic" / "adhoc" / "fm-20251101-000000-000000-abcdef"
    _day(old)
    week_ago = (dt.datetime.now() - dt.timedelta(days=8)).timestamp()
    os.utime(old, (week_ago, week_ago))
    new = lake.runs() / "synthetic" / "adhoc" / "fm-new"
    _day(new)
    removed = {r.path for r in plan_gc(_spec(), lake, window=3).removals if r.kind == "ad-hoc run"}
    assert removed == {old}


def test_dea_gc_is_a_dry_run_unless_applied(lake, capsys):
    from flows.cli import main

    home = ["--home", str(lake.root)]
    # the shipped synthetic policy (30 data days, 7 run days, 5 versions, 3 champions): 5 run days go
    assert main(home + ["gc", "--dataset", "synthetic", "--list"]) == 0
    out = capsys.readouterr().out
    assert "dry run: 5 item(s) would free" in out and "add --apply" in out
    assert f"  - {lake.runs() / 'synthetic' / 'dt=2026-01-05'}  (run day: older than the 7 run days kept)" in out
    assert lake.runs().joinpath("synthetic", "dt=2026-01-01").exists()
    assert main(home + ["gc", "--dataset", "synthetic", "--apply"]) == 0
    assert "removed 5 item(s), freed" in capsys.readouterr().out
    assert [p.name for p in sorted((lake.runs() / "synthetic").iterdir())] == [f"dt={d}" for d in DAYS[5:]]
    assert len(Registry(lake, "synthetic").versions()) == 6


@pytest.mark.slow
def test_gc_flow_applies_the_policy(lake, prefect_harness):
    from flows.gc import gc_flow

    result = gc_flow(home=str(lake.root), apply=True, spec_overrides={"retention": POLICY})
    assert result["applied"] and result["removals"] == 3 * 4 + 9 + 3
    assert Registry(lake, "synthetic").versions() == ["v0003", "v0005", "v0006"]


def test_the_weekly_deployment_applies_retention_on_a_schedule():
    spec = yaml.safe_load((CONFIG_DIR.parent / "prefect.yaml").read_text())
    weekly = next(d for d in spec["deployments"] if d["entrypoint"] == "flows/gc.py:gc_flow")
    assert weekly["name"] == "weekly" and weekly["parameters"]["apply"] is True
    assert weekly["schedules"] == [{"cron": "0 7 * * 0", "timezone": "UTC"}]
