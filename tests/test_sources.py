"""Source adapters: real files in ../shared/data (figures from each SOURCE.md) and bad input on tiny files."""

from __future__ import annotations

import os
import sys
import types
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pv
import pyarrow.parquet as pq
import pytest

from features.hashing import combo_hash
from features.lake import COMPLETE, Lake, date_range
from features.spec import DatasetSpec, available_specs, load_spec
from features.sources import SourceError, ingest, resolve_path, source_dates

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
OWN_CONFIGS = ["avazu", "criteo", "criteo_raw", "frappe", "movielens"]


def need(*parts: str) -> Path:
    path = DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is not here")
    return path


def spec_of(name: str, **source) -> DatasetSpec:
    """A shipped spec with some source keys replaced."""
    base = load_spec(name)
    return load_spec(name, overrides={"source": {**base.source.model_dump(), **source}})


def tiny(path: Path, name: str = "tiny", **source) -> DatasetSpec:
    """A small Criteo-like spec reading ``path``."""
    return DatasetSpec.model_validate({
        "name": name, "label": "label", "sparse": ["C1"], "dense": [{"name": "I1"}],
        "source": {"kind": "criteo_tsv", "path": str(path), "days": 3, **source}})


def day(lake: Lake, spec: DatasetSpec, date: str) -> pa.Table:
    return pq.read_table(lake.raw(spec.name, date))


def days(lake: Lake, spec: DatasetSpec) -> list[pa.Table]:
    return [day(lake, spec, d) for d in source_dates(spec)]


def positives(tables: list[pa.Table], label: str = "label") -> list[int]:
    return [int(t[label].to_numpy().sum()) for t in tables]


def records_mtimes(lake: Lake, spec: DatasetSpec) -> list[int]:
    return [(lake.raw(spec.name, d) / COMPLETE).stat().st_mtime_ns for d in source_dates(spec)]


# --- configs ----------------------------------------------------------------------------------------

def test_every_config_loads_and_points_at_its_data():
    names = available_specs()
    assert set(OWN_CONFIGS) <= set(names)
    for name in names:
        spec = load_spec(name)
        assert spec.name == name
    for name in OWN_CONFIGS:
        path = resolve_path(load_spec(name).source.path)
        assert path.is_relative_to(DATA.resolve()) or os.environ.get("DEA_DATA_DIR")
        if DATA.exists():
            assert path.exists(), path


def test_shared_data_root_can_be_overridden(monkeypatch, tmp_path):
    repo = Path(__file__).resolve().parents[1]
    assert resolve_path("../shared/data/frappe") == (repo.parent / "shared" / "data" / "frappe").resolve()
    assert resolve_path("deployments/configs") == repo / "deployments" / "configs"
    monkeypatch.setenv("DEA_DATA_DIR", str(tmp_path))
    assert resolve_path("../shared/data/frappe/x.libfm") == tmp_path / "frappe" / "x.libfm"
    assert resolve_path(tmp_path / "abs") == tmp_path / "abs"


# --- real datasets (counts and rates from SOURCE.md) ------------------------------------------------

def test_criteo_encoded_folds_are_days(tmp_path):
    need("criteo_100k_preprocessed", "k_fold")
    spec, lake = load_spec("criteo"), Lake(tmp_path)
    result = ingest(spec, lake)
    assert list(result.written.values()) == [10007, 10007, 10006, 10004, 10001, 9999, 9996, 9994, 9993, 9993]
    tables = days(lake, spec)
    assert positives(tables) == [2270, 2270, 2269, 2269, 2266, 2265, 2265, 2263, 2263, 2263]
    t = tables[0]
    assert t.schema.field("label").type == pa.int8()
    assert {t.schema.field(f"C{i}").type for i in range(1, 27)} == {pa.int64()}
    assert {t.schema.field(f"I{i}").type for i in range(1, 14)} == {pa.float64()}
    everything = pa.concat_tables(tables)
    assert everything["C1"].to_numpy().max() == 99 and everything["C6"].to_numpy().max() == 8  # 100 and 9 ids
    dense = np.stack([everything[f"I{i}"].to_numpy() for i in range(1, 14)])
    assert dense.min() >= 0.0 and dense.max() <= 1.0


def test_criteo_raw_is_cut_in_file_order_with_missing_values(tmp_path):
    path = need("criteo_kaggle_10k", "train_examples.txt")
    spec, lake = load_spec("criteo_raw"), Lake(tmp_path)
    assert ingest(spec, lake).written == dict.fromkeys(date_range("2026-01-01", 5), 2000)
    tables = days(lake, spec)
    assert sum(positives(tables)) == 2182
    first = tables[0].slice(0, 1).to_pylist()[0]   # the well-known first row of Kaggle train.txt
    assert (first["label"], first["I1"], first["I5"], first["C1"], first["C26"]) == (0, 1.0, 1382.0, "68fd1e64", "9727dd16")
    assert np.isnan(first["I12"]) and first["C22"] is None   # empty cells are missing
    assert tables[0].schema.field("C1").type == pa.string()
    line = path.read_text().split("\n")[2000].split("\t")  # file row 2000 opens day 1
    second = tables[1].slice(0, 1).to_pylist()[0]
    assert (second["label"], second["C1"], second["C2"]) == (int(line[0]), line[14], line[15])


def test_criteo_deepctr_sample_reads_comma_separated_with_header(tmp_path):
    path = need("criteo_deepctr_200", "criteo_sample.txt")
    spec = spec_of("criteo_raw", path=str(path), days=2, options={"sep": ",", "header": True})
    result = ingest(spec, Lake(tmp_path))
    assert result.written == {"2026-01-01": 100, "2026-01-02": 100}
    assert sum(positives(days(Lake(tmp_path), spec))) == 49


def test_frappe_validation_is_cut_by_seed_and_test_is_the_last_day(tmp_path):
    folder = need("frappe")
    spec, lake = load_spec("frappe"), Lake(tmp_path)
    result = ingest(spec, lake)
    assert list(result.written.values()) == [11545, 11544, 11545, 11544, 11544, 28860]
    tables = days(lake, spec)
    assert sum(positives(tables[:5])) == 19063 and positives(tables[5:]) == [9536]
    everything = pa.concat_tables(tables)
    for f, lo, hi in [("user", 0, 956), ("item", 957, 5038), ("city", 5149, 5381)]:  # SOURCE.md field ranges
        v = everything[f].to_numpy()
        assert v.min() >= lo and v.max() <= hi, f
    # the documented rule: row r of the validation file -> day rank(combo_hash(r, 0, seed)) * 5 // n
    valid = pv.read_csv(folder / "frappe.validation.libfm", read_options=pv.ReadOptions(autogenerate_column_names=True),
                        parse_options=pv.ParseOptions(delimiter=" "))
    n = valid.num_rows
    rank = np.argsort(np.argsort(combo_hash(np.arange(n), 0, spec.source.options["seed"]), kind="stable"), kind="stable")
    users = np.array([int(s.split(":")[0]) for s in valid["f1"].to_pylist()])
    for k in range(5):
        np.testing.assert_array_equal(tables[k]["user"].to_numpy(), users[rank * 5 // n == k])


def test_day_assignment_is_deterministic_and_follows_the_seed(tmp_path):
    need("frappe")
    spec = load_spec("frappe")
    first, again = Lake(tmp_path / "a"), Lake(tmp_path / "b")
    ingest(spec, first, dates=["2026-01-01"])
    ingest(spec, again, dates=["2026-01-01"])
    assert day(first, spec, "2026-01-01").equals(day(again, spec, "2026-01-01"))
    other = spec_of("frappe", options={**spec.source.options, "seed": 7})
    ingest(other, Lake(tmp_path / "c"), dates=["2026-01-01"])
    reseeded = day(Lake(tmp_path / "c"), other, "2026-01-01")
    assert reseeded.num_rows == 11545 and not reseeded.equals(day(first, spec, "2026-01-01"))


def test_movielens_label_threshold_and_days_in_time_order(tmp_path):
    need("movielens_100k", "movielens_100k.dat")
    spec = load_spec("movielens", overrides={"passthrough": ["timestamp"]})
    lake = Lake(tmp_path / "a")
    assert list(ingest(spec, lake).written.values()) == [10000] * 10
    tables = days(lake, spec)
    assert sum(positives(tables)) == 55375
    stamps = [t["timestamp"].to_numpy() for t in tables]
    assert all(a.max() <= b.min() for a, b in zip(stamps, stamps[1:]))
    assert len(np.unique(np.concatenate([t["user_id"].to_numpy() for t in tables]))) == 943
    fives = spec_of("movielens", options={"threshold": 5})
    ingest(fives, Lake(tmp_path / "b"))
    assert sum(positives(days(Lake(tmp_path / "b"), fives))) == 21201   # ratings == 5 in ml-100k


def test_avazu_headerless_dev_and_test_are_the_last_days(tmp_path):
    folder = need("avazu_sample_9k")
    spec, lake = load_spec("avazu"), Lake(tmp_path / "a")
    assert list(ingest(spec, lake).written.values()) == [2696, 2696, 2695, 480, 432]
    tables = days(lake, spec)
    assert sum(positives(tables[:3], "click")) == 1397 and positives(tables[3:], "click") == [86, 80]
    first_dev = (folder / "dev.csv").read_text().split("\n")[0].split(",")   # data, not a header
    assert (tables[3]["device_ip"][0].as_py(), tables[3]["C21"][0].as_py()) == (first_dev[12], first_dev[23])
    assert tables[0].schema.field("C14").type == pa.string()
    dated = spec_of("avazu", date_column="hour", options={**spec.source.options, "date_format": "%y%m%d%H"})
    assert ingest(dated, Lake(tmp_path / "b")).written == {"2014-10-21": 8999}  # one hour of Kaggle traffic


# --- re-ingest --------------------------------------------------------------------------------------

def test_reingest_does_no_work_and_force_rewrites(tmp_path):
    need("movielens_100k", "movielens_100k.dat")
    spec, lake = load_spec("movielens"), Lake(tmp_path)
    ingest(spec, lake)
    before = records_mtimes(lake, spec)
    again = ingest(spec, lake)
    assert again.written == {} and again.skipped == source_dates(spec) and records_mtimes(lake, spec) == before
    assert set(again.paths) == set(again.skipped)
    assert ingest(spec, lake, dates=["2026-01-03"], force=True).written == {"2026-01-03": 10000}
    changed = spec_of("movielens", options={"threshold": 5})   # another label rule: every day is stale
    assert len(ingest(changed, lake).written) == 10


def _libfm(path: Path, labels: list[int]) -> Path:
    rows = [f"{y} {i % 3}:1 {10 + i}:1" for i, y in enumerate(labels)]
    path.write_bytes(("\r\n".join(rows) + "\r\n").encode())
    return path


def test_touching_one_file_relands_only_its_days(tmp_path):
    _libfm(tmp_path / "valid.libfm", [1, -1, -1] * 4)
    test = _libfm(tmp_path / "test.libfm", [1, -1, 1])
    spec = DatasetSpec.model_validate({
        "name": "fm", "label": "label", "group": "user", "sparse": ["user", "item"],
        "source": {"kind": "libfm", "path": str(tmp_path), "days": 3, "options": {"files": ["valid.libfm", "test.libfm"]}}})
    lake = Lake(tmp_path / "lake")
    assert ingest(spec, lake).written == {"2026-01-01": 6, "2026-01-02": 6, "2026-01-03": 3}
    assert day(lake, spec, "2026-01-03")["label"].to_pylist() == [1, 0, 1]
    assert day(lake, spec, "2026-01-03")["item"].to_pylist() == [10, 11, 12]
    os.utime(test, ns=(test.stat().st_atime_ns, test.stat().st_mtime_ns + 10**9))
    result = ingest(spec, lake)
    assert result.written == {"2026-01-03": 3} and result.skipped == ["2026-01-01", "2026-01-02"]


def test_dated_csv_lands_each_day_from_the_files_that_hold_it(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.csv").write_text("ts,label,user,price\n2026-03-01,1,u1,2.5\n2026-03-02,0,u2,\n2026-03-01,0,u3,1\n")
    b = tmp_path / "src" / "b.csv"
    b.write_text("ts,label,user,price\n2026-03-02,1,u4,3\n2026-03-03,1,NA,4\n")
    spec = DatasetSpec.model_validate({
        "name": "logs", "label": "label", "sparse": ["user"], "dense": [{"name": "price"}],
        "source": {"kind": "csv", "path": str(tmp_path / "src"), "date_column": "ts"}})
    lake = Lake(tmp_path / "lake")
    assert source_dates(spec) == ["2026-03-01", "2026-03-02", "2026-03-03"]
    assert ingest(spec, lake, dates=["2026-03-02"]).written == {"2026-03-02": 2}
    assert ingest(spec, lake).written == {"2026-03-01": 2, "2026-03-03": 1}
    d2 = day(lake, spec, "2026-03-02").to_pydict()
    assert d2["user"] == ["u2", "u4"] and np.isnan(d2["price"][0]) and d2["label"] == [0, 1]
    assert day(lake, spec, "2026-03-03")["user"].to_pylist() == ["NA"]   # only the empty cell is missing
    os.utime(b, ns=(b.stat().st_atime_ns, b.stat().st_mtime_ns + 10**9))
    assert sorted(ingest(spec, lake).written) == ["2026-03-02", "2026-03-03"]
    with pytest.raises(SourceError, match=r"'logs'.*no day\(s\) \['2026-03-09'\]"):
        ingest(spec, lake, dates=["2026-03-09"])


def test_parquet_source_is_cut_contiguously_and_typed(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    pq.write_table(pa.table({"label": pa.array([0, 1, 0, 1], pa.int32()), "shop": pa.array([1, 2, 3, 4], pa.int32()),
                             "age": pa.array([20, None, 30, 40], pa.int16()), "extra": ["a", "b", "c", "d"]}),
                   src / "part-1.parquet")
    pq.write_table(pa.table({"label": pa.array([1, 0], pa.int32()), "shop": pa.array([5, 6], pa.int32()),
                             "age": pa.array([50, 60], pa.int16()), "extra": ["e", "f"]}), src / "part-10.parquet")
    spec = DatasetSpec.model_validate({
        "name": "pq", "label": "label", "sparse": ["shop"], "dense": [{"name": "age"}],
        "source": {"kind": "parquet", "path": str(src), "days": 2}})
    lake = Lake(tmp_path / "lake")
    assert ingest(spec, lake).written == {"2026-01-01": 3, "2026-01-02": 3}
    first = day(lake, spec, "2026-01-01")
    assert first.column_names == ["label", "shop", "age"]
    assert [f.type for f in first.schema] == [pa.int8(), pa.int64(), pa.float64()]
    assert first["shop"].to_pylist() == [1, 2, 3] and np.isnan(first["age"][1].as_py())
    assert day(lake, spec, "2026-01-02")["shop"].to_pylist() == [4, 5, 6]   # part-1 before part-10


# --- synthetic dispatch ---------------------------------------------------------------------------------

def _fake_synthetic(monkeypatch, tmp_path, label: int = 1) -> list:
    calls = []

    def write_day(spec, date, out_dir, *, rows, seed):
        calls.append((date, rows, seed))
        pq.write_table(pa.table({"click": pa.array([label] * rows, pa.int8()), "user_id": ["u"] * rows}),
                       Path(out_dir) / "part-00000.parquet")
        return rows

    module = types.ModuleType("features.synthetic")
    module.__file__ = str(tmp_path / "synthetic.py")
    Path(module.__file__).write_text("# fake\n")
    module.write_day = write_day
    monkeypatch.setitem(sys.modules, "features.synthetic", module)
    return calls


def _synthetic_spec(**options) -> DatasetSpec:
    return DatasetSpec.model_validate({
        "name": "synthetic", "label": "click", "sparse": ["user_id"],
        "source": {"kind": "synthetic", "days": 2, "start_date": "2026-02-01", "options": options}})


def test_synthetic_kind_dispatches_to_write_day(monkeypatch, tmp_path):
    calls = _fake_synthetic(monkeypatch, tmp_path)
    spec, lake = _synthetic_spec(rows_per_day=7, seed=3), Lake(tmp_path / "lake")
    assert ingest(spec, lake).written == {"2026-02-01": 7, "2026-02-02": 7}
    assert calls == [("2026-02-01", 7, 3), ("2026-02-02", 7, 3)]
    assert ingest(spec, lake).skipped == ["2026-02-01", "2026-02-02"] and len(calls) == 2
    assert lake.dates("raw", "synthetic") == ["2026-02-01", "2026-02-02"]


def test_synthetic_day_with_a_bad_label_is_not_landed(monkeypatch, tmp_path):
    _fake_synthetic(monkeypatch, tmp_path, label=2)
    lake = Lake(tmp_path / "lake")
    with pytest.raises(SourceError, match="'synthetic'.*2026-02-01.*outside"):
        ingest(_synthetic_spec(rows_per_day=5), lake)
    assert lake.dates("raw", "synthetic") == [] and not lake.raw("synthetic", "2026-02-01").exists()


# --- bad input ----------------------------------------------------------------------------------------

def _tsv(path: Path, rows: list[str]) -> Path:
    path.write_text("".join(r + "\n" for r in rows))
    return path


def test_missing_source_names_dataset_and_path(tmp_path):
    gone = tmp_path / "nowhere.txt"
    with pytest.raises(FileNotFoundError, match=rf"'tiny'.*{gone}"):
        ingest(tiny(gone), Lake(tmp_path / "lake"))
    (tmp_path / "folder").mkdir()
    with pytest.raises(FileNotFoundError, match=rf"'tiny'.*{tmp_path / 'folder' / 'b.txt'}"):
        ingest(tiny(tmp_path / "folder", options={"files": ["b.txt"]}), Lake(tmp_path / "lake"))


def test_label_outside_01_names_dataset_date_and_file(tmp_path):
    row = "\t".join(["{}", "1"] + [""] * 12 + ["ab"] + [""] * 25)
    path = _tsv(tmp_path / "logs.tsv", [row.format(y) for y in [0, 1, 0, 1, 2, 0]])   # row 4 -> day 4*3//6 = 2
    lake = Lake(tmp_path / "lake")
    with pytest.raises(SourceError, match=rf"'tiny'.*label 'label'.*1 value.*\[2\].*'2026-01-03'.*{path}"):
        ingest(tiny(path), lake)
    assert lake.dates("raw", "tiny") == []
    fm = _libfm(tmp_path / "x.libfm", [1, -1, 2])   # libFM maps -1 -> 0 only
    spec = DatasetSpec.model_validate({"name": "fm", "label": "label", "sparse": ["u", "i"],
                                       "source": {"kind": "libfm", "path": str(fm), "days": 1}})
    with pytest.raises(SourceError, match=rf"'fm'.*\[2\].*'2026-01-01'.*{fm}"):
        ingest(spec, lake)


def test_unreadable_files_are_named(tmp_path):
    lake = Lake(tmp_path / "lake")
    short = _tsv(tmp_path / "short.tsv", ["0\t1\tx"])
    with pytest.raises(SourceError, match=rf"'tiny'.*cannot read {short}"):
        ingest(tiny(short), lake)
    fm = tmp_path / "bad.libfm"
    fm.write_text("1 3:1 x:1\n")
    spec = DatasetSpec.model_validate({"name": "fm", "label": "label", "sparse": ["u", "i"],
                                       "source": {"kind": "libfm", "path": str(fm), "days": 1}})
    with pytest.raises(SourceError, match=rf"'fm'.*cannot read {fm}"):
        ingest(spec, lake)
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 this is not parquet")
    spec = DatasetSpec.model_validate({"name": "pq", "label": "label", "sparse": ["a"],
                                       "source": {"kind": "parquet", "path": str(broken), "days": 1}})
    with pytest.raises(SourceError, match=rf"'pq'.*cannot read {broken}"):
        ingest(spec, lake)
    assert not (lake.root / "raw").exists()


def test_missing_column_and_wrong_dtype_are_named(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("label,user\n1,a\n")
    spec = DatasetSpec.model_validate({"name": "c", "label": "label", "sparse": ["user", "shop"],
                                       "source": {"kind": "csv", "path": str(path), "days": 1}})
    with pytest.raises(SourceError, match=rf"'c'.*{path} has no column\(s\) \['shop'\]"):
        ingest(spec, Lake(tmp_path / "lake"))
    pq.write_table(pa.table({"label": [1, 0], "shop": [1.5, 2.5]}), tmp_path / "x.parquet")
    spec = DatasetSpec.model_validate({"name": "p", "label": "label", "sparse": ["shop"],
                                       "source": {"kind": "parquet", "path": str(tmp_path / "x.parquet"), "days": 1}})
    with pytest.raises(SourceError, match=r"'p'.*column 'shop' is sparse.*double"):
        ingest(spec, Lake(tmp_path / "lake"))


def test_bad_source_options_are_named(tmp_path):
    path = _tsv(tmp_path / "x.tsv", ["0"] * 3)
    with pytest.raises(SourceError, match=r"'tiny'.*unknown source.options \['thresold'\]"):
        ingest(tiny(path, options={"thresold": 4}), Lake(tmp_path))
    with pytest.raises(SourceError, match=r"'tiny'.*options.cut 'random'"):
        ingest(tiny(path, options={"cut": "random"}), Lake(tmp_path))
    (tmp_path / "f").mkdir()
    for i in range(4):
        _tsv(tmp_path / "f" / f"part{i}.tsv", ["0"])
    with pytest.raises(SourceError, match=r"'tiny'.*4 source files need source.days >= 4"):
        ingest(tiny(tmp_path / "f"), Lake(tmp_path))


@pytest.mark.slow
def test_the_readme_bring_your_own_data_spec_runs_as_written(prefect_harness, tmp_path):
    """The README's "Bring your own data" spec, as written but for its folder, takes four days of CSV
    logs to a registered champion with `dea run --dataset <spec>.yaml`."""
    import json
    import re

    import yaml

    from flows.cli import main

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("## Bring your own data", 1)[1].split("\n## ", 1)[0]
    spec = yaml.safe_load(re.search(r"```yaml\n(.*?)```", section, re.S).group(1))
    folder = tmp_path / "clicks"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for day in range(1, 5):
        n = 600
        user, ad = rng.integers(0, 40, n), rng.integers(0, 25, n)
        dwell = np.where(rng.random(n) < 0.1 + 0.3 * (ad % 3 == 0), 5000, 500)     # ms
        ts = [f"2026-03-{day:02d} {h:02d}:{m:02d}:00" for h, m in zip(rng.integers(0, 24, n), rng.integers(0, 60, n))]
        pv.write_csv(pa.table({"ts": ts, "user": user, "ad": ad, "site": rng.integers(0, 4, n),
                               "price": rng.lognormal(2, 1, n).round(2), "dwell_ms": dwell}),
                     folder / f"2026-03-{day:02d}.csv")
    ads = np.arange(22)                                   # ads 22-24 have no row: missing advertiser and tags
    tags = ["sports|outdoor", "sports", "", "food|drinks|wine"]
    pv.write_csv(pa.table({"ad": ads, "advertiser": [f"acme{a % 5}" for a in ads], "tags": [tags[a % 4] for a in ads]}),
                 tmp_path / "ads.csv")
    spec["source"]["path"] = str(folder)
    spec["source"]["join"][0]["path"] = str(tmp_path / "ads.csv")
    path = tmp_path / "myclicks.yaml"
    path.write_text(yaml.safe_dump(spec))
    home = tmp_path / "lake"
    assert main(["--home", str(home), "run", "--dataset", str(path), "--date", "2026-03-04",
                 "--set", "model=fm", "--set", "epochs=1"]) == 0
    assert (home / "models" / "myclicks" / "v0001" / "model.pt").is_file()
    lake = Lake(home)
    assert lake.dates("raw", "myclicks") == ["2026-03-01", "2026-03-02", "2026-03-03", "2026-03-04"]
    raw = pq.read_table(lake.raw("myclicks", "2026-03-04"))
    assert raw.column_names == ["clicked", "user", "ad", "site", "advertiser", "tags", "price"]
    assert 0.1 < np.mean(raw["clicked"].to_numpy()) < 0.45                  # dwell_ms >= 3000
    assert raw["tags"].type == pa.list_(pa.string()) and raw["advertiser"].null_count > 0   # ads 22-24 unknown
    stats = json.loads((lake.stats("myclicks", "2026-03-04") / "stats.json").read_text())
    assert stats["fields"]["advertiser"]["top1_value"].startswith("acme")
    assert stats["fields"]["tags"]["kind"] == "multi" and stats["lengths"]["tags"]["n_buckets"] == 4
