"""The synthetic ad-log generator: determinism, shape of the data, planted signal, partitioned writing."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from features.spec import load_spec
from features.synthetic import (
    BLOCK_ROWS,
    DENSE_FIELDS,
    SPARSE_FIELDS,
    SyntheticConfig,
    _z,
    generate_day,
    oracle_auc,
    write_day,
)

SEED = 7
ROWS = 100_000
DAYS = ("2026-01-01", "2026-01-02")
CFG = SyntheticConfig()


@pytest.fixture(scope="module")
def days() -> dict[str, pa.Table]:
    return {d: generate_day(d, rows=ROWS, seed=SEED) for d in DAYS}


@pytest.fixture(scope="module")
def spec():
    return load_spec("synthetic")


def assert_same_table(a: pa.Table, b: pa.Table) -> None:
    """Equal schemas and values, NaN equal to NaN (``Table.equals`` treats NaN as unequal)."""
    assert a.schema == b.schema
    pd.testing.assert_frame_equal(a.to_pandas(), b.to_pandas())


def _born_on(ids: np.ndarray, base: int, per_day: int, date: str) -> np.ndarray:
    return (ids >= base) & ((ids - base) // per_day == dt.date.fromisoformat(date).toordinal())


def test_same_seed_same_rows_and_other_dates_or_seeds_differ(days):
    again = generate_day(DAYS[0], rows=ROWS, seed=SEED)
    assert_same_table(again, days[DAYS[0]])
    other_day, other_seed = days[DAYS[1]], generate_day(DAYS[0], rows=ROWS, seed=SEED + 1)
    for other in (other_day, other_seed):
        for col in ("user_id", "item_id", "p_true"):
            a, b = days[DAYS[0]][col].to_numpy(), other[col].to_numpy()
            assert np.mean(a == b) < 0.05, col


def test_columns_and_dtypes_follow_the_raw_contract(days, spec):
    t = generate_day(DAYS[0], rows=1000, seed=SEED, spec=spec)
    assert t.column_names == spec.raw_columns
    assert t.schema.field("click").type == pa.int8()
    for f in spec.sparse:
        assert t.schema.field(f).type in (pa.int64(), pa.string()), f
        assert t[f].null_count == 0, f
    assert {f for f in spec.sparse if t.schema.field(f).type == pa.string()} >= {"merchant_id", "category", "os"}
    for f in (*spec.dense_names, "p_true"):
        assert t.schema.field(f).type == pa.float64(), f
    full = days[DAYS[0]].to_pandas()
    nan_rate = full[list(DENSE_FIELDS)].isna().mean()
    assert 0.001 < nan_rate["price"] < 0.01
    assert 0.03 < nan_rate["user_age"] < 0.10
    assert 0.01 < nan_rate["item_ctr_hist"] < 0.12
    assert full["position"].between(1, 10).all() and full["hour"].between(0, 23).all()
    assert set(full["click"].unique()) == {0, 1}


def test_sparse_fields_have_zipf_long_tails(days):
    d = days[DAYS[0]].to_pandas()
    share = {f: d[f].value_counts(normalize=True) for f in SPARSE_FIELDS}
    assert 0.002 < share["user_id"].iloc[0] < 0.03           # a heavy user, not a dominant one
    assert 0.01 < share["item_id"].iloc[0] < 0.08
    assert 0.05 < share["category"].iloc[0] < 0.30
    counts = d["user_id"].map(d["user_id"].value_counts())
    assert (counts <= 5).mean() > 0.4                          # most rows come from rare users
    items = d["item_id"].value_counts()
    assert items.iloc[:100].sum() / ROWS > 0.2                 # ... and a small head carries a lot
    assert (items == 1).mean() > 0.4                           # half of the seen items are singletons


def test_ctr_and_oracle_auc_are_in_range_and_pair_effects_matter(days):
    for t in days.values():
        click, p, p_no_pair = (t[c].to_numpy() for c in ("click", "p_true", "p_no_pair"))
        ctr = click.mean()
        assert 0.03 < ctr < 0.10
        assert abs(p.mean() - ctr) < 4 * np.sqrt(ctr * (1 - ctr) / ROWS)   # labels drawn from p_true
        auc, auc_no_pair = oracle_auc(p, click), oracle_auc(p_no_pair, click)
        assert 0.75 < auc < 0.88
        assert auc - auc_no_pair > 0.03


def test_without_pair_effects_p_true_is_the_no_pair_probability():
    t = generate_day(DAYS[0], rows=5000, seed=SEED, config=SyntheticConfig(pair_scale=0.0))
    np.testing.assert_allclose(t["p_true"].to_numpy(), t["p_no_pair"].to_numpy(), rtol=1e-12)


def test_pair_effects_are_not_low_rank():
    """v(merchant, hour) over 300 merchants × 24 hours: a random matrix, not a rank-4 product."""
    m, h = np.meshgrid(np.arange(300), np.arange(24), indexing="ij")
    v = _z(SEED, "pair:merchant_hour", m.ravel(), h.ravel()).reshape(300, 24)
    assert abs(v.mean()) < 0.05 and 0.95 < v.std() < 1.05
    s = np.linalg.svd(v, compute_uv=False)
    assert (s[:4] ** 2).sum() / (s ** 2).sum() < 0.35          # rank 4 explains little of it


def test_ids_keep_their_attributes_across_days(days):
    a, b = (days[d].to_pandas() for d in DAYS)
    users = a.drop_duplicates("user_id").merge(b.drop_duplicates("user_id"), on="user_id")
    assert len(users) > 1000
    np.testing.assert_array_equal(users["user_age_x"].to_numpy(), users["user_age_y"].to_numpy())
    items = a.drop_duplicates("item_id").merge(b.drop_duplicates("item_id"), on="item_id")
    for col in ("merchant_id", "brand", "category"):
        assert (items[f"{col}_x"] == items[f"{col}_y"]).all(), col


def test_new_ids_appear_every_day_and_recent_ones_come_back(days):
    day1, day2 = (days[d] for d in DAYS)
    for field, base, per_day in (("user_id", CFG.users, CFG.new_users_per_day),
                                 ("item_id", CFG.items, CFG.new_items_per_day)):
        ids1, ids2 = day1[field].to_numpy(), day2[field].to_numpy()
        born_today = np.unique(ids2[_born_on(ids2, base, per_day, DAYS[1])])
        assert len(born_today) > 0.1 * per_day, field
        assert not np.isin(born_today, ids1).any(), field      # new: never seen before
        born_yesterday = np.unique(ids1[_born_on(ids1, base, per_day, DAYS[0])])
        assert np.isin(born_yesterday, ids2).mean() > 0.1, field   # and they come back
    merchants = day2["merchant_id"].to_pandas().str[1:].astype(np.int64)
    assert (merchants >= CFG.merchants).sum() > 0               # new merchants arrive with new items


def test_mild_drift_between_days(days):
    ctr = [t["click"].to_numpy().mean() for t in days.values()]
    assert ctr[0] != ctr[1] and abs(np.log(ctr[0] / ctr[1])) < 0.3
    price = [np.nanmedian(t["price"].to_numpy()) for t in days.values()]
    assert abs(np.log(price[0] / price[1])) < 0.1


def test_write_day_partitions_match_one_table_and_are_byte_identical(tmp_path, spec):
    rows, part = 70_000, 30_000                                # parts straddle the 50,000-row blocks
    assert part % BLOCK_ROWS and rows > BLOCK_ROWS
    runs = []
    for name in ("a", "b"):
        out = tmp_path / name
        out.mkdir()
        assert write_day(spec, DAYS[0], out, rows=rows, seed=SEED, partition_rows=part) == rows
        runs.append(sorted(out.iterdir()))
    assert [p.name for p in runs[0]] == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    assert [pq.read_metadata(p).num_rows for p in runs[0]] == [30_000, 30_000, 10_000]
    assert [p.read_bytes() for p in runs[0]] == [p.read_bytes() for p in runs[1]]
    written = pa.concat_tables(pq.read_table(p) for p in runs[0])
    assert_same_table(written, generate_day(DAYS[0], rows=rows, seed=SEED, spec=spec))


def test_write_day_with_no_rows_writes_an_empty_part_with_the_schema(tmp_path, spec):
    assert write_day(spec, DAYS[0], tmp_path, rows=0, seed=SEED) == 0
    t = pq.read_table(tmp_path / "part-00000.parquet")
    assert t.num_rows == 0 and t.column_names == spec.raw_columns


def test_spec_errors_name_the_dataset_and_field(tmp_path, spec):
    bad = spec.model_copy(update={"sparse": [*spec.sparse, "weather"]})
    with pytest.raises(ValueError, match=r"'synthetic'.*\['weather'\]"):
        write_day(bad, DAYS[0], tmp_path, rows=10, seed=SEED)
    source = spec.source.model_copy(update={"options": {"generator": {"pair_scal": 2.0}}})
    with pytest.raises(ValueError, match="pair_scal"):
        write_day(spec.model_copy(update={"source": source}), DAYS[0], tmp_path, rows=10, seed=SEED)
    with pytest.raises(ValueError, match="rows=-1"):
        write_day(spec, DAYS[0], tmp_path, rows=-1, seed=SEED)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        write_day(spec, DAYS[0], tmp_path / "missing", rows=10, seed=SEED)


def test_generator_options_from_the_spec_change_the_world(tmp_path, spec):
    source = spec.source.model_copy(update={"options": {"generator": {"intercept": -2.0}}})
    t = generate_day(DAYS[0], rows=20_000, seed=SEED, spec=spec.model_copy(update={"source": source}))
    assert t["click"].to_numpy().mean() > 0.12                  # a higher intercept, more clicks


def test_the_default_world_repeats_its_planted_pairs_enough_to_learn_them():
    """`synthetic` (the default dataset) is a small world: most of a day's planted pairs were seen
    ≥ 5 times in the two days before, unlike the hard world's (test above: 300 k users)."""
    spec = load_spec("synthetic")
    days = [generate_day(d, rows=100_000, seed=SEED, spec=spec).to_pandas()
            for d in ("2026-01-01", "2026-01-02", "2026-01-03")]
    train, test = pd.concat(days[:2]), days[2]
    for a, b, floor in (("user_id", "category", 0.8), ("item_id", "device", 0.9)):
        counts = train.groupby([a, b]).size().reindex(pd.MultiIndex.from_frame(test[[a, b]])).fillna(0)
        assert (counts.to_numpy() >= 5).mean() > floor, (a, b)
    hard = generate_day("2026-01-03", rows=100_000, seed=SEED).to_pandas()
    assert hard["user_id"].nunique() > 5 * test["user_id"].nunique()
    assert 0.15 < test["click"].mean() < 0.30 and 0.75 < oracle_auc(test["p_true"], test["click"]) < 0.85
