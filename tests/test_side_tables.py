"""Side tables joined at ingest and label rules: rows kept, missing keys missing, clear errors."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from features.lake import Lake
from features.spec import DatasetSpec, LabelRule, SpecError, load_spec
from features.sources import SourceError, ingest

LOGS = "user_id,item_id,rating\n" + "1,10,5\n2,11,3\n3,10,4\n9,12,1\n" * 3


def toy(folder: Path, *, users: str = "user_id,age,gender\n1,25,M\n2,33,F\n3,,F\n",
        items: str = "id,genres\n10,Action|Comedy\n11,Drama\n", **extra) -> DatasetSpec:
    """Logs of 12 rows (users 1, 2, 3, 9; items 10, 11, 12), a users and an items table."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "logs.csv").write_text(LOGS)
    (folder / "users.csv").write_text(users)
    (folder / "items.tsv").write_text(items.replace(",", "\t"))
    return DatasetSpec.model_validate({
        "name": "toy", "label": "click", "label_rule": "rating >= 4",
        "sparse": ["user_id", "item_id", "gender", "genres"], "dense": [{"name": "age", "buckets": 4}],
        "source": {"kind": "csv", "path": str(folder / "logs.csv"), "days": 2, "join": [
            {"path": str(folder / "users.csv"), "key": "user_id", "columns": ["age", "gender"]},
            {"path": str(folder / "items.tsv"), "key": "item_id", "table_key": "id", "columns": ["genres"]}]},
        **extra})


def raw(lake: Lake, date: str = "2026-01-01"):
    return pq.read_table(lake.raw("toy", date)).to_pydict()


def test_a_left_join_keeps_every_row_and_a_missing_key_is_a_missing_value(tmp_path):
    lake = Lake(tmp_path / "lake")
    result = ingest(toy(tmp_path / "src"), lake)
    assert result.written == {"2026-01-01": 6, "2026-01-02": 6}            # 12 log rows, none dropped
    day = raw(lake)
    assert list(day) == ["click", "user_id", "item_id", "gender", "genres", "age"]
    assert day["user_id"] == ["1", "2", "3", "9", "1", "2"]                 # log order kept
    assert day["gender"] == ["M", "F", "F", None, "M", "F"]                 # user 9 is not in the table
    assert day["genres"] == ["Action|Comedy", "Drama", "Action|Comedy", None, "Action|Comedy", "Drama"]
    assert day["age"][:2] == [25.0, 33.0] and all(a != a for a in day["age"][2:4])   # NaN: empty cell, no user
    assert day["click"] == [1, 0, 1, 0, 1, 0]                               # rating >= 4


def test_label_rules_parse_from_text_and_mappings():
    assert LabelRule.model_validate("rating >= 4") == LabelRule(column="rating", op=">=", value=4)
    assert LabelRule.model_validate("action in [click, buy]").value == ["click", "buy"]
    assert LabelRule.model_validate({"column": "x", "op": "==", "value": "yes"}).op == "=="
    with pytest.raises(ValueError, match="write `<column> <op> <value>`"):
        LabelRule.model_validate("rating is high")
    with pytest.raises(ValueError, match="op 'in' takes a list"):
        LabelRule.model_validate("rating in 4")


def test_a_set_of_values_labels_string_actions(tmp_path):
    folder = tmp_path / "src"
    folder.mkdir()
    (folder / "logs.csv").write_text("user,action\n" + "a,view\nb,click\nc,buy\nd,view\n" * 2)
    spec = DatasetSpec.model_validate({
        "name": "toy", "label": "clicked", "label_rule": "action in [click, buy]", "sparse": ["user"],
        "source": {"kind": "csv", "path": str(folder / "logs.csv"), "days": 1}})
    lake = Lake(tmp_path / "lake")
    ingest(spec, lake)
    assert raw(lake)["clicked"] == [0, 1, 1, 0, 0, 1, 1, 0]


def test_a_missing_value_under_the_label_rule_names_the_file(tmp_path):
    spec = toy(tmp_path / "src")
    (tmp_path / "src" / "logs.csv").write_text("user_id,item_id,rating\n1,10,5\n2,11,\n3,10,4\n")
    with pytest.raises(SourceError, match=r"label rule `rating >= 4` meets 1 missing 'rating'.*logs.csv"):
        ingest(spec, Lake(tmp_path / "lake"))


def test_a_side_table_with_a_repeated_key_is_refused(tmp_path):
    spec = toy(tmp_path / "src", users="user_id,age,gender\n1,25,M\n1,26,M\n2,33,F\n")
    with pytest.raises(SourceError, match=r"users.csv must have one row per 'user_id'.*repeated keys e.g. \[1\]"):
        ingest(spec, Lake(tmp_path / "lake"))


def test_a_side_table_without_a_listed_column_is_named(tmp_path):
    spec = toy(tmp_path / "src", users="user_id,age\n1,25\n")
    with pytest.raises(SourceError, match=r"users.csv has no column\(s\) \['gender'\]"):
        ingest(spec, Lake(tmp_path / "lake"))


def test_an_edited_side_table_relands_the_days(tmp_path):
    spec, lake = toy(tmp_path / "src"), Lake(tmp_path / "lake")
    ingest(spec, lake)
    assert ingest(spec, lake).skipped == ["2026-01-01", "2026-01-02"]
    users = tmp_path / "src" / "users.csv"
    users.write_text(users.read_text().replace("1,25,M", "1,25,F"))
    os.utime(users, (1, 1))                    # a different mtime and size: a new fingerprint
    assert sorted(ingest(spec, lake).written) == ["2026-01-01", "2026-01-02"]
    assert raw(lake)["gender"][0] == "F"


def test_joined_columns_must_be_used_and_come_from_one_table(tmp_path):
    spec = toy(tmp_path / "src").model_dump()
    spec["source"]["join"][0]["columns"] = ["age", "gender", "zip"]
    with pytest.raises(ValueError, match=r"columns \['zip'\] are not fields"):
        DatasetSpec.model_validate(spec)
    spec["source"]["join"][0]["columns"] = ["age", "gender", "genres"]
    with pytest.raises(ValueError, match=r"columns \['genres'\] come from another table too"):
        DatasetSpec.model_validate(spec)


def test_a_shipped_spec_with_a_typo_in_a_join_key_is_named(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: bad\nlabel: click\nsparse: [u]\nsource: {kind: csv, path: x.csv, "
                    "join: [{path: u.csv, key: u, colums: [a]}]}\n")
    with pytest.raises(SpecError, match=r"source.join.0.colums: unknown key"):
        load_spec(path)


def test_side_tables_are_read_once_per_ingest_and_not_when_every_day_is_current(tmp_path, monkeypatch):
    import features.sources.joins as joins

    folder = tmp_path / "src"
    folder.mkdir()
    for i in range(3):                                   # three files: three pieces of a split source
        rows = [f"{u}\t{10 + u}\t{u % 5 + 1}\t{100 * i + u}\n" for u in range(1, 9)]
        (folder / f"part{i}.data").write_text("".join(rows))
    (folder / "users.csv").write_text("user_id,gender\n" + "".join(f"{u},{'MF'[u % 2]}\n" for u in range(1, 6)))
    spec = DatasetSpec.model_validate({
        "name": "toy", "label": "liked", "label_rule": "rating >= 4", "sparse": ["user_id", "item_id", "gender"],
        "source": {"kind": "movielens", "path": str(folder), "days": 3, "options": {"files": ["part*.data"]},
                   "join": [{"path": str(folder / "users.csv"), "key": "user_id", "columns": ["gender"]}]}})
    reads = []
    real = joins.read_side_table
    monkeypatch.setattr(joins, "read_side_table", lambda ctx, side: reads.append(side.path) or real(ctx, side))
    lake = Lake(tmp_path / "lake")
    assert sorted(ingest(spec, lake).written) == ["2026-01-01", "2026-01-02", "2026-01-03"]
    assert reads == [str(folder / "users.csv")]
    assert ingest(spec, lake).written == {} and len(reads) == 1
    assert raw(lake, "2026-01-03")["gender"] == ["F", "M", "F", "M", "F", None, None, None]
