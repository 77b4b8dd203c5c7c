"""The data-quality gate on fault-injected synthetic days: each fault is caught by the expectation
named for it, a clean day passes, the first day warns, the verdict JSON is always written.

One base lake per module: four clean reference days (20k rows) with features and statistics; each
fault case copies it and lands a faulty fifth day.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from features import pipeline, synthetic
from features.lake import Lake, atomic_dir, make_record, write_record
from features.spec import load_spec
from validation import gate_config, read_verdict, reference_window, run_gate
from validation.checks import psi

ROWS = 20_000
SEED = 7
REFERENCE = ["2026-01-01", "2026-01-02", "2026-01-03", "2026-01-04"]
DAY = "2026-01-05"


def _write_raw(lake: Lake, spec, date: str, table: pa.Table) -> None:
    with atomic_dir(lake.raw(spec.name, date)) as tmp:
        pq.write_table(table, tmp / "part-00000.parquet")
        write_record(tmp, make_record("ingest", {"synthetic": f"{date}:{table.num_rows}"}, spec.config_hash(),
                                      rows=table.num_rows))


def _clean(spec, date: str = DAY) -> pa.Table:
    return synthetic.generate_day(date, rows=ROWS, seed=SEED, spec=spec)


def _land(lake: Lake, spec, date: str, table: pa.Table) -> str | None:
    """Write a raw day and try the feature stage on it; returns the stage's error, if any."""
    _write_raw(lake, spec, date, table)
    try:
        pipeline.transform(spec, lake, date, pipeline.Manifest.load(lake.manifest(spec.name)))
    except ValueError as e:
        return str(e)
    return None


@pytest.fixture(scope="module")
def spec():
    """The hard world: 300 k users, new IDs every day (the bounds and planted faults here are sized to it)."""
    return load_spec("synthetic_hard")


@pytest.fixture(scope="module")
def base(tmp_path_factory, spec) -> Lake:
    lake = Lake(tmp_path_factory.mktemp("gate") / "lake")
    for d in REFERENCE:
        _write_raw(lake, spec, d, _clean(spec, d))
    manifest = pipeline.fit(spec, lake, REFERENCE[:3])
    for d in REFERENCE:
        pipeline.transform(spec, lake, d, manifest)          # writes the day's statistics too
    return lake


@pytest.fixture
def lake(base, tmp_path) -> Lake:
    """A private copy of the base lake (reference days only)."""
    shutil.copytree(base.root, tmp_path / "lake")
    return Lake(tmp_path / "lake")


# --- faults: (name, how the raw day is broken, the expectation named for it) ----------------------

def _all_null(t: pa.Table) -> pa.Table:
    return t.set_column(t.schema.get_field_index("brand"), "brand", pa.nulls(t.num_rows, pa.string()))


def _label_zero(t: pa.Table) -> pa.Table:
    return t.set_column(0, "click", pa.array(np.zeros(t.num_rows, np.int8)))


def _dense_x10(t: pa.Table) -> pa.Table:
    return t.set_column(t.schema.get_field_index("price"), "price", pc.multiply(t["price"], 10.0))


def _one_id_90(t: pa.Table) -> pa.Table:
    users = t["user_id"].to_numpy().copy()
    rng = np.random.default_rng(0)
    users[rng.random(len(users)) < 0.9] = users[0]
    return t.set_column(t.schema.get_field_index("user_id"), "user_id", pa.array(users))


def _dropped(t: pa.Table) -> pa.Table:
    return t.drop_columns(["city"])


def _wrong_type(t: pa.Table) -> pa.Table:
    return t.set_column(t.schema.get_field_index("price"), "price", t["price"].cast(pa.string()))


def _duplicated(t: pa.Table) -> pa.Table:
    return pa.concat_tables([t, t.slice(0, t.num_rows // 2)])


def _new_ids(t: pa.Table) -> pa.Table:
    items = t["item_id"].to_numpy().copy()
    fresh = np.random.default_rng(1).random(len(items)) < 0.6
    items[fresh] = 10**12 + np.arange(fresh.sum())
    return t.set_column(t.schema.get_field_index("item_id"), "item_id", pa.array(items))


def _tiny(t: pa.Table) -> pa.Table:
    return t.slice(0, t.num_rows // 100)


FAULTS = [  # (fault, breaker, the expectation named for it, what it must observe)
    ("field all null", _all_null, "null_rate.brand", lambda v: v == 1.0),
    ("label rate 0", _label_zero, "label_rate", lambda v: v == 0.0),
    ("dense field x10", _dense_x10, "psi.price", lambda v: v > 1.0),
    ("one ID at 90%", _one_id_90, "top1_share.user_id", lambda v: 0.88 < v < 0.92),
    ("dropped column", _dropped, "columns", lambda v: v == "missing ['city']"),
    ("wrong column type", _wrong_type, "dtype.price", lambda v: v == "string"),
    ("half the rows duplicated", _duplicated, "duplicate_rate", lambda v: v == pytest.approx(1 / 3, abs=0.01)),
    ("explosion of new IDs", _new_ids, "new_id_rate.item_id", lambda v: v > 0.6),
    ("1% of the usual rows", _tiny, "rows", lambda v: v == ROWS // 100),
]


@pytest.mark.parametrize("fault, breaker, expectation, observed", FAULTS, ids=[f[0] for f in FAULTS])
def test_gate_catches_fault(lake, spec, fault, breaker, expectation, observed):
    stage_error = _land(lake, spec, DAY, breaker(_clean(spec)))
    result = run_gate(spec, lake, DAY, reports=False)

    assert result.verdict == "fail", result.summary
    named = result.check(expectation)
    assert named["status"] == "fail", (fault, named)
    assert observed(named["observed"]), (fault, named["observed"])
    assert named["severity"] == "error"
    assert expectation in {c["expectation"] for c in result.failing}
    doc = json.loads(result.verdict_path.read_text())
    assert doc["verdict"] == "fail" and doc["blocked"] is True
    assert doc["reference_dates"] == REFERENCE
    if expectation.startswith("top1_share."):  # the dominating value is named by its raw value, not its ID
        value = str(_clean(spec)["user_id"][0].as_py())
        assert named["details"]["top1_value"] == value
        assert f"(user_id={value})" in result.summary_path.read_text()
    if stage_error is not None:   # schema faults stop the feature stage: the gate says so too
        assert result.check("features_complete")["status"] == "fail"
        assert "no complete feature day" in result.check("features_complete")["note"]


def test_gate_clean_day_passes(lake, spec):
    assert _land(lake, spec, DAY, _clean(spec)) is None
    result = run_gate(spec, lake, DAY, reports=False)

    assert result.verdict == "pass", result.failing
    assert result.failing == []
    statuses = {c["expectation"]: c["status"] for c in result.checks}
    for name in ("rows", "label_rate", "duplicate_rate", "null_rate.brand", "top1_share.user_id",
                 "new_id_rate.item_id", "psi.price", "kl.price", "columns", "dtype.price", "label_values",
                 "combo_collision_rate", "unique_ids.user_id", "tail_share.item_id"):
        assert statuses[name] == "pass", name
    assert result.check("rows")["observed"] == ROWS
    summary = result.summary_path.read_text()
    assert "**PASS**" in summary and "| `psi.price` |" in summary
    again = run_gate(spec, lake, DAY, reports=False)                    # same inputs: nothing to do
    assert again.skipped and again.verdict == "pass"


def test_gate_first_day_has_no_reference_and_warns(base, spec, tmp_path):
    lake = Lake(tmp_path / "lake")
    shutil.copytree(base.root / "raw", lake.root / "raw")
    shutil.copytree(base.root / "features", lake.root / "features")
    shutil.copytree(base.root / "stats", lake.root / "stats")          # the feature stage's statistics
    result = run_gate(spec, lake, REFERENCE[0], reports=False)

    assert result.verdict == "warn"
    assert result.doc["reference_dates"] == []
    assert any("no reference window" in n for n in result.doc["notes"])
    assert result.check("rows")["status"] == "pass"                  # absolute bound (>= 1 row) still holds
    assert result.check("psi.price")["status"] == "skipped"
    assert result.check("unique_ids.user_id")["note"] == "no reference window"
    assert result.check("new_id_rate.user_id")["note"] == "not measured (no previous day)"


def test_gate_verdict_written_when_inputs_missing(lake, spec):
    result = run_gate(spec, lake, "2026-02-01", reports=False)      # nothing landed on that day

    assert result.verdict == "fail"
    assert {c["expectation"] for c in result.failing} == {"raw_complete", "features_complete", "stats_complete"}
    assert read_verdict(lake, spec.name, "2026-02-01")["verdict"] == "fail"


def test_gate_verdict_written_when_feature_day_is_corrupt(lake, spec):
    assert _land(lake, spec, DAY, _clean(spec)) is None
    part = next(lake.features(spec.name, DAY).glob("*.parquet"))
    part.write_bytes(b"not parquet")
    result = run_gate(spec, lake, DAY, reports=False)

    assert result.verdict == "fail"
    stats = result.check("stats_complete")
    assert stats["status"] == "fail" and stats["note"]
    assert result.check("columns")["status"] == "pass"               # the raw day itself is fine


def test_gate_override_is_logged_and_failed_days_leave_the_reference(lake, spec):
    _land(lake, spec, DAY, _label_zero(_clean(spec)))
    failed = run_gate(spec, lake, DAY, reports=False)
    assert failed.verdict == "fail"
    cfg = gate_config(spec)
    dates, _ = reference_window(spec, lake, "2026-01-06", cfg)
    assert DAY not in dates and dates == REFERENCE

    result = run_gate(spec, lake, DAY, override="campaign paused all clicks on purpose", reports=False)
    assert not result.skipped                                         # the override is part of the record
    assert result.verdict == "warn" and result.doc["checks_verdict"] == "fail"
    assert result.doc["override"]["reason"] == "campaign paused all clicks on purpose"
    assert result.doc["override"]["user"]
    assert "Manual override" in result.summary_path.read_text()
    dates, _ = reference_window(spec, lake, "2026-01-06", cfg)
    assert dates[-1] == DAY                                           # a person judged it acceptable

    again = run_gate(spec, lake, DAY, reports=False)                  # the next run, without an override
    assert again.skipped and again.verdict == "warn"                  # the override stands for this data
    assert again.doc["override"]["reason"] == "campaign paused all clicks on purpose"
    _land(lake, spec, DAY, _label_zero(_clean(spec)).slice(1))       # new data for the day: judged afresh
    fresh = run_gate(spec, lake, DAY, reports=False)
    assert not fresh.skipped and fresh.verdict == "fail" and fresh.doc["override"] is None


def test_gate_bounds_come_from_the_spec(spec):
    cfg = gate_config(spec.model_copy(update={"gate": {"null_rate": {"max": 0.5},
                                                        "fields": {"os": {"top1_share": {"max": 1.0}}}}}))
    assert cfg.null_rate.max == 0.5 and cfg.null_rate.slack == 0.1        # merged over the default
    assert cfg.bound("top1_share", "os").max == 1.0
    assert cfg.bound("top1_share", "user_id").max == 0.999
    with pytest.raises(ValueError, match=r"gate\.null_rat: unknown key"):
        gate_config(spec.model_copy(update={"gate": {"null_rat": {"max": 0.5}}}))
    with pytest.raises(ValueError, match="not a field"):
        gate_config(spec.model_copy(update={"gate": {"fields": {"nope": {"psi": {"max": 1}}}}}))
    with pytest.raises(ValueError, match="min 0.9 > max 0.1"):
        gate_config(spec.model_copy(update={"gate": {"label_rate": {"min": 0.9, "max": 0.1}}}))


def test_an_absolute_bound_every_reference_day_broke_follows_the_reference():
    from validation.config import Bound, GateConfig

    top1 = GateConfig().top1_share
    assert top1.resolve([])[:2] == (None, 0.999)                       # no reference: the absolute bound
    lo, hi, basis = top1.resolve([1.0, 1.0, 1.0])                      # a constant field, accepted before
    assert (lo, hi) == (0.8, 1.0) and "widened to the reference's constant 1" in basis
    assert top1.resolve([0.5, 1.0])[1] == 0.999                        # one day within it: the bound holds
    assert top1.resolve([1.0, 0.9995])[1] == 0.999                     # not constant: a user's bound holds
    assert Bound(min=10, follow_constant=True).resolve([3, 3])[:2] == (3.0, None)
    assert GateConfig().rows.resolve([3, 3])[0] == 1.0 and Bound(min=10).resolve([3, 3])[0] == 10  # counts do not


def test_gate_bound_resolution_and_psi():
    from validation.config import Bound

    lo, hi, basis = Bound(min=1, ratio=(0.5, 2.0)).resolve([100, 300, 200])
    assert (lo, hi) == (100.0, 400.0) and "median 200" in basis
    lo, hi, _ = Bound(max=0.9, slack=0.1).resolve([0.2, 0.3, None])
    assert lo == pytest.approx(0.1) and hi == pytest.approx(0.4)
    assert Bound(slack=0.1).resolve([]) == (None, None, "")
    same = np.array([10, 50, 30, 10.0])
    assert psi(same, same * 3) == pytest.approx(0.0, abs=1e-3)
    p, q = np.array([10, 10, 80.0]), np.array([40, 40, 20.0])
    ps, qs = (p + 0.5) / (p + 0.5).sum(), (q + 0.5) / (q + 0.5).sum()
    assert psi(p, q) == pytest.approx(float(np.sum((ps - qs) * np.log(ps / qs))))


def test_gate_cli_validate_prints_verdict_and_writes_reports(lake, spec, capsys):
    from flows.cli import main

    _land(lake, spec, DAY, _clean(spec))
    assert main(["--home", str(lake.root), "validate", "--dataset", spec.name, "--date", DAY]) == 0
    out = capsys.readouterr().out
    assert "verdict PASS" in out and "Data Docs:" in out and "rank_frequency.png" in out
    folder = lake.validation(spec.name, DAY)
    site = folder / "gx/uncommitted/data_docs/local_site"
    assert (site / "index.html").exists()
    pages = {p.name: p.read_text() for p in (site / "validations").rglob("*.html")}
    assert set(pages) == {"gate-metrics.html", "gate-schema.html", "gate-raw_sample.html", "gate-buckets.html"}
    assert "population stability index" in pages["gate-metrics.html"]      # the custom PSI expectation
    for png in ("rank_frequency.png", "dense_buckets.png"):
        assert (folder / png).stat().st_size > 10_000

    _land(lake, spec, "2026-01-06", _tiny(_clean(spec, "2026-01-06")))
    assert main(["--home", str(lake.root), "validate", "--dataset", spec.name, "--date", "2026-01-06",
                 "--no-reports"]) == 1
    out = capsys.readouterr().out
    assert "verdict FAIL" in out and "FAIL  rows" in out
    assert main(["--home", str(lake.root), "validate", "--dataset", spec.name, "--date", "2026-01-06",
                 "--no-reports", "--override", "holiday traffic"]) == 0
    assert "override by" in capsys.readouterr().out


# --- a bad day stays contained ----------------------------------------------------------------------

def test_a_failed_day_is_not_the_next_days_yesterday(lake, spec):
    """An all-null ``brand`` day fails; the clean day after it measures new IDs against the last
    accepted day (every brand ID seen), not against the failed one (where every brand ID is new)."""
    _land(lake, spec, DAY, _all_null(_clean(spec)))
    assert run_gate(spec, lake, DAY, reports=False).verdict == "fail"
    nxt = "2026-01-06"
    _land(lake, spec, nxt, _clean(spec, nxt))
    result = run_gate(spec, lake, nxt, reports=False)

    assert result.verdict == "pass", result.failing
    new = result.check("new_id_rate.brand")
    assert new["status"] == "pass" and new["observed"] < 0.1, new          # 1.0 against the failed day
    assert result.doc["day_over_day"]["previous_date"] == REFERENCE[-1]    # the failed DAY is skipped
    assert result.doc["day_over_day"]["fields"]["brand"]["new_id_rate"] == new["observed"]
    # as a reference day later, its new-ID rates are measured the same way (against REFERENCE[-1])
    dates, reference = reference_window(spec, lake, "2026-01-07", gate_config(spec))
    assert dates == [*REFERENCE, nxt] and reference[-1]["previous_date"] == REFERENCE[-1]
    assert reference[-1]["fields"]["brand"]["new_id_rate"] == new["observed"]
    assert DAY not in result.doc["reference_dates"]


def test_a_feature_day_recomputed_from_changed_raw_is_checked_again(lake, spec):
    """Raw day rewritten in place (every label 1), then features --force: the gate must not answer
    from the statistics of the old table."""
    _land(lake, spec, DAY, _clean(spec))
    assert run_gate(spec, lake, DAY, reports=False).verdict == "pass"
    part = next(lake.raw(spec.name, DAY).glob("*.parquet"))
    table = pq.read_table(part)
    pq.write_table(table.set_column(0, "click", pa.array(np.ones(table.num_rows, np.int8))), part)  # record untouched
    pipeline.transform(spec, lake, DAY, pipeline.Manifest.load(lake.manifest(spec.name)), force=True)
    result = run_gate(spec, lake, DAY, reports=False)

    assert not result.skipped
    assert result.verdict == "fail"
    assert result.check("label_rate")["observed"] == 1.0 and result.check("label_rate")["status"] == "fail"


def test_an_override_never_turns_missing_data_into_a_pass(lake, spec):
    result = run_gate(spec, lake, "2026-02-01", override="looked fine to me", reports=False)

    assert result.verdict == "fail" and result.blocked
    assert result.doc["override"]["reason"] == "looked fine to me" and result.doc["override"]["applied"] is False
    assert any("override not applied" in n for n in result.doc["notes"])
    assert read_verdict(lake, spec.name, "2026-02-01")["verdict"] == "fail"


def test_a_bound_no_value_can_meet_is_a_configuration_error(lake, spec):
    """label_rate: the reference gives [0.5 × median, 2 × median] ≈ [0.02, 0.08]; a max of 0.01 leaves
    nothing: an error naming the key and the file, raised before any check or verdict is written."""
    from validation.config import GateConfigError

    _land(lake, spec, DAY, _clean(spec))
    strict = spec.model_copy(update={"gate": {"label_rate": {"max": 0.01}}})
    with pytest.raises(GateConfigError, match=r"label_rate is empty, \[0\.0\d+, 0\.01\].*raise gate\.label_rate\.max "
                                              r".*deployments/configs/synthetic_hard\.yaml"):
        run_gate(strict, lake, DAY, reports=False)
    assert read_verdict(lake, spec.name, DAY) is None


# --- the gate reads the statistics the feature stage wrote ---------------------------------------------

def test_the_gate_computes_no_statistics(lake, spec, monkeypatch):
    """Every statistic the gate checks was written by the feature stage: with every way of
    computing statistics broken, a clean day still passes, from what is stored."""
    from features import stats
    from validation import gate

    assert _land(lake, spec, DAY, _clean(spec)) is None

    def forbidden(*args, **kwargs):
        raise AssertionError("the gate computed statistics")

    for name in ("table_counts", "merge_counts", "stored_counts", "write_stats", "write_day_stats",
                 "compute_day_stats", "day_stats"):
        for module in (stats, gate):
            monkeypatch.setattr(module, name, forbidden, raising=False)
    result = run_gate(spec, lake, DAY, reports=False)
    assert result.verdict == "pass", result.failing
    assert result.doc["inputs"]["stats"].startswith("rec:")
    assert result.doc["day_over_day"]["previous_date"] == REFERENCE[-1]


def test_a_feature_day_without_statistics_fails_and_says_what_to_run(lake, spec):
    """A feature day written before the feature stage wrote statistics: the gate does not compute
    them; it fails stats_complete naming the command, which (``dea features``) writes them."""
    assert _land(lake, spec, DAY, _clean(spec)) is None
    shutil.rmtree(lake.stats(spec.name, DAY))
    result = run_gate(spec, lake, DAY, reports=False)
    assert result.verdict == "fail"
    note = result.check("stats_complete")["note"]
    assert result.check("stats_complete")["status"] == "fail"
    assert "no statistics of the feature day" in note and f"dea features --dataset {spec.name} --dates 2026-01-05" in note
    assert pipeline.transform(spec, lake, DAY, pipeline.Manifest.load(lake.manifest(spec.name))).skipped
    assert run_gate(spec, lake, DAY, reports=False).verdict == "pass"        # statistics written: checked again


def test_a_reference_day_without_statistics_is_left_out_and_named(lake, spec):
    shutil.rmtree(lake.stats(spec.name, REFERENCE[1]))
    assert _land(lake, spec, DAY, _clean(spec)) is None
    result = run_gate(spec, lake, DAY, reports=False)

    assert result.verdict == "pass", result.failing
    assert result.doc["reference_dates"] == [REFERENCE[0], *REFERENCE[2:]]
    assert any(f"feature day(s) {REFERENCE[1]}" in n and f"--dates {REFERENCE[1]}" in n for n in result.doc["notes"])
    _, reference = reference_window(spec, lake, DAY, gate_config(spec))
    assert reference[1]["fields"]["item_id"]["new_id_rate"] is None          # its yesterday has no counts


def test_a_feature_file_altered_after_its_statistics_is_not_trusted(lake, spec):
    """The statistics describe the bytes the feature day's record vouches for; a file changed since
    (same record) fails features_complete, naming the file, instead of passing on stale numbers."""
    assert _land(lake, spec, DAY, _clean(spec)) is None
    assert run_gate(spec, lake, DAY, reports=False).verdict == "pass"
    part = next(lake.features(spec.name, DAY).glob("*.parquet"))
    table = pq.read_table(part)
    pq.write_table(table.set_column(table.schema.get_field_index("label"), "label",
                                    pa.array(np.ones(table.num_rows, np.int8))), part)
    result = run_gate(spec, lake, DAY, reports=False)
    assert not result.skipped and result.verdict == "fail"
    assert result.check("features_complete")["status"] == "fail"
    assert str(part) in result.check("features_complete")["note"]


def test_the_tail_threshold_of_the_statistics_is_the_gates():
    from features.stats import MIN_COUNT
    from validation.config import GateConfig

    assert MIN_COUNT == GateConfig().min_count


def test_the_gate_keys_are_documented_from_the_code():
    """`dea validate --gate-keys` lists every key of GateConfig with its default and meaning; the README's
    copy is the same table, so a new key or default shows up in both or the test fails."""
    from pathlib import Path

    from validation.checks import gate_keys
    from validation.config import GateConfig

    table = gate_keys()
    keys = [line.split("`")[1] for line in table.splitlines()[2:]]
    assert set(keys) == (set(GateConfig.model_fields) - {"combo"}) | {"combo.codebook_size", "combo.siamese"}
    assert "| `top1_share` | max 0.999, slack ± 0.2 around the ref range, follows a constant reference (error) |" in table
    assert all(line.count("|") == 4 and "None" not in line for line in table.splitlines())
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert table in readme
