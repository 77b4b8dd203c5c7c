import hashlib
import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from dea_model import data
from features.lake import Lake, write_json_atomic
from features.manifest import Manifest
from helpers import FIELDS, toy_manifest, write_feature_days  # shared with other test files


def test_load_days_gives_contiguous_typed_tensors(tmp_path):
    lake, dates = write_feature_days(tmp_path, days=2, rows=500)
    t = data.load_days(lake, "toy", dates)
    assert len(t) == 1000 and t.fields == FIELDS
    assert t.ids.dtype == torch.int64 and t.ids.shape == (1000, 3) and t.ids.is_contiguous()
    assert t.label.dtype == torch.float32 and t.group.dtype == torch.int64
    first = pq.read_table(lake.features("toy", dates[0]))
    np.testing.assert_array_equal(t.ids[:500, 1].numpy(), first.column("item").to_numpy())
    np.testing.assert_array_equal(t.label[:500].numpy(), first.column("label").to_numpy())
    assert torch.equal(t.group, t.ids[:, 0])
    assert t.nbytes == 1000 * (3 * 8 + 4 + 8)


def test_shuffled_batches_cover_every_row_once_and_follow_the_seed(tmp_path):
    lake, dates = write_feature_days(tmp_path, days=1, rows=1000)
    t = data.load_days(lake, "toy", dates)

    def epoch(seed):
        return list(t.batches(128, shuffle=True, generator=torch.Generator().manual_seed(seed)))

    a, b, c = epoch(1), epoch(1), epoch(2)
    assert [len(x.label) for x in a] == [128] * 7 + [104]
    ids = torch.cat([x.ids for x in a])
    assert sorted(map(tuple, ids.tolist())) == sorted(map(tuple, t.ids.tolist()))
    assert all(torch.equal(x.ids, y.ids) for x, y in zip(a, b))
    assert not torch.equal(a[0].ids, c[0].ids)
    ordered = torch.cat([x.ids for x in t.batches(300)])
    assert torch.equal(ordered, t.ids)


def test_streaming_matches_in_memory_rows(tmp_path):
    lake, dates = write_feature_days(tmp_path, days=2, rows=700, row_group_size=100, files_per_day=2)
    s = data.StreamingDays(lake, "toy", dates, buffer_rows=250)
    assert len(s) == 1400 and len(s.units) == 16
    t = data.load_days(lake, "toy", dates)
    ordered = list(s.batches(64))
    assert torch.equal(torch.cat([b.ids for b in ordered]), t.ids)
    g = torch.Generator().manual_seed(3)
    shuffled = list(s.batches(64, generator=g, shuffle=True))
    assert all(len(b.label) == 64 for b in shuffled[:-1])
    rows = torch.cat([torch.cat([b.ids, b.label[:, None].long(), b.group[:, None]], 1) for b in shuffled])
    want = torch.cat([t.ids, t.label[:, None].long(), t.group[:, None]], 1)
    assert sorted(map(tuple, rows.tolist())) == sorted(map(tuple, want.tolist()))   # rows stay intact
    assert not torch.equal(rows[:, :3], t.ids)                                        # and are shuffled
    # rows from different row groups mix within a batch (a real shuffle, not just group order)
    first_day = set(map(tuple, t.ids[:700].tolist()))
    mixed = [len({tuple(r) in first_day for r in b.ids.tolist()}) for b in shuffled]
    assert max(mixed) == 2


def test_open_days_streams_above_the_budget(tmp_path):
    lake, dates = write_feature_days(tmp_path, days=2, rows=300)
    assert isinstance(data.open_days(lake, "toy", dates, budget_bytes=1e9), data.FeatureTable)
    assert isinstance(data.open_days(lake, "toy", dates, budget_bytes=1000), data.StreamingDays)


def test_errors_name_dataset_date_and_field(tmp_path):
    lake, dates = write_feature_days(tmp_path, days=1, rows=50)
    with pytest.raises(FileNotFoundError, match=r"dataset 'toy', date 2026-03-01: no complete feature day"):
        data.load_days(lake, "toy", ["2026-03-01"])
    with pytest.raises(FileNotFoundError, match="no feature manifest"):
        data.load_days(lake, "other", dates)
    with pytest.raises(ValueError, match=r"day 2026-01-01 file .*missing columns \['price'\]"):
        data.load_days(lake, "toy", dates, fields=FIELDS + ["price"])


def test_feature_signature_tracks_what_changes_ids(tmp_path):
    lake, _ = write_feature_days(tmp_path, days=1, rows=10)
    m = Manifest.of(lake, "toy")
    base = m.feature_signature
    assert m.model_copy(update={"fit_dates": ["x"], "record": {"digest": "other"}}).feature_signature == base
    assert m.model_copy(update={"dense": {"p": {"boundaries": [1.0]}}}).feature_signature != base
    assert m.model_copy(update={"fields": FIELDS[::-1]}).feature_signature != base
    assert m.model_copy(update={"hash_seed": 2}).feature_signature != base
    assert m.model_copy(update={"config_hash": "other"}).feature_signature != base
    assert json.loads(lake.manifest("toy").read_text())["fields"] == FIELDS


def test_feature_signature_is_the_hash_registered_models_store():
    """The value registered models carry (``config.json: feature_signature``) must never change:
    the SHA-256 of the sorted-key JSON of five manifest keys, as ``dea_model.data.feature_signature``
    computed it from the manifest file's dict, pinned on a fixed manifest."""
    m = toy_manifest().model_copy(update={"dense": {"price": {"boundaries": [0.5, 1.25, 3.0], "buckets": 4,
                                                              "log1p": True}}})
    stored = json.loads(json.dumps(m.model_dump(mode="json")))           # the file's dict
    core = {k: stored.get(k) for k in ("fields", "hash_spec_version", "hash_seed", "config_hash", "dense")}
    old = hashlib.sha256(json.dumps(core, sort_keys=True, default=str).encode()).hexdigest()[:16]
    assert m.feature_signature == old == "614662eb80d9ff45"          # dea_model.data.feature_signature at 09f9111


def test_manifest_errors_name_the_path_and_what_to_run(tmp_path):
    lake = Lake(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"no feature manifest at .*manifest\.json: dataset 'toy' has "
                                                r"none yet; run `dea features --dataset toy`"):
        Manifest.of(lake, "toy")
    write_json_atomic(lake.manifest("toy"), {"dataset": "toy", "fields": FIELDS})
    with pytest.raises(ValueError, match=r"feature manifest .*manifest\.json is not a valid manifest.*"
                                         r"`dea features --force`"):
        Manifest.of(lake, "toy")
    write_json_atomic(lake.manifest("toy"), toy_manifest().model_copy(update={"fields": []}).model_dump(mode="json"))
    with pytest.raises(ValueError, match="lists no 'fields'"):
        Manifest.of(lake, "toy")


def test_split_days():
    days = [f"2026-01-0{i}" for i in range(1, 7)]
    assert data.split_days(days) == (days[:4], days[4], days[5])
    assert data.split_days(days[:2]) == (days[:1], days[1], None)
    assert data.split_days(days, train_days=2) == (days[2:4], days[4], days[5])
    assert data.split_days(days, valid_date=days[2]) == (days[:2], days[2], days[3])
    assert data.split_days(days, dates=[days[0], days[2]]) == ([days[0], days[2]], days[3], days[4])
    with pytest.raises(ValueError, match="at least 2"):
        data.split_days(days[:1])
    with pytest.raises(ValueError, match="not before the validation day"):
        data.split_days(days, dates=[days[3]], valid_date=days[2])
    with pytest.raises(ValueError, match="2026-02-01 is not a complete feature day"):
        data.split_days(days, valid_date="2026-02-01")
