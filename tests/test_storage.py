"""The lake on any filesystem (features/storage.py): atomic publish, the lock, an S3 lake end to end.

The lease lock is tested on a local folder (it only needs an exclusive create) and on S3; the S3
tests run against a local ``moto_server`` (tests/object_store.py) through the same s3fs code a user
runs against AWS.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time

import pytest

from features import storage
from features.lake import COMPLETE, Lake, read_record, stale_temporaries, write_record
from tests.object_store import DaskCluster, S3Server
from tests.prefect_server import DEA

# --- the lease lock ----------------------------------------------------------------------------


def _hold(path, seconds: float, lease: float, held: threading.Event, log: list) -> None:
    with storage.lease_lock(storage.lake_path(path), 30, 0.05, lease, lambda h: None, "a test holder"):
        log.append(("in", time.monotonic()))
        held.set()
        time.sleep(seconds)
        log.append(("out", time.monotonic()))


def test_a_second_holder_waits_for_the_lease_and_a_long_holder_keeps_it(tmp_path):
    path, held, log = tmp_path / "x.lock", threading.Event(), []
    first = threading.Thread(target=_hold, args=(path, 1.5, 0.6, held, log))   # holds 2.5 leases: renewed
    first.start()
    held.wait(10)
    waits = []
    with storage.lease_lock(storage.lake_path(path), 30, 0.05, 0.6, waits.append, "second"):
        got = time.monotonic()
        assert json.loads(path.read_text())["owner"].endswith(tuple("0123456789abcdef"))
    first.join()
    assert [k for k, _ in log] == ["in", "out"] and got >= log[1][1]          # never both inside
    assert len(waits) == 1 and ":" in waits[0]                                 # told who holds it
    assert not path.exists()                                                   # released


def test_a_dead_holders_lease_expires_and_is_taken_over(tmp_path):
    path = tmp_path / "x.lock"
    path.write_text(json.dumps({"owner": "host:123:dead", "expires": time.time() + 0.5}))
    start = time.monotonic()
    with storage.lease_lock(storage.lake_path(path), 30, 0.05, 60, lambda h: None, "x"):
        waited = time.monotonic() - start
        assert json.loads(path.read_text())["owner"] != "host:123:dead"
    assert 0.3 < waited < 5


def test_the_lease_lock_times_out_naming_the_holder(tmp_path):
    path = tmp_path / "x.lock"
    path.write_text(json.dumps({"owner": "host:123:alive", "expires": time.time() + 60}))
    with pytest.raises(storage.LockTimeout, match=r"dataset 'toy': another run has held .*x.lock \(host:123:alive\)"):
        with storage.lease_lock(storage.lake_path(path), 0.3, 0.05, 60, lambda h: None, "dataset 'toy': another run"):
            pass


# --- S3 ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    with S3Server(tmp_path_factory.mktemp("moto")) as server:
        yield server


@pytest.fixture
def s3_env(s3, monkeypatch):
    for k, v in s3.env.items():
        monkeypatch.setenv(k, v)
    return s3.env


@pytest.mark.integration
def test_publish_on_s3_replaces_a_folder_record_last_and_leaves_no_temporary(s3, s3_env):
    root = storage.lake_path(s3.bucket("publish") + "/lake")
    final = root / "features" / "toy" / "dt=2026-01-01"
    for content in ("one", "two"):
        with storage.atomic_dir(final) as tmp:
            (tmp / "part-0.parquet").write_text(content)
            if content == "one":
                (tmp / "part-1.parquet").write_text("only in the first")
            write_record(tmp, {"digest": content})
    assert read_record(final)["digest"] == "two"
    assert sorted(p.name for p in final.iterdir()) == [COMPLETE, "part-0.parquet"]
    assert (final / "part-0.parquet").read_text() == "two"
    assert stale_temporaries(Lake(root), "toy") == []
    with pytest.raises(RuntimeError):
        with storage.atomic_dir(root / "features" / "toy" / "dt=2026-01-02") as tmp:
            (tmp / "part-0.parquet").write_text("half")
            raise RuntimeError("writer died")
    assert not (root / "features" / "toy" / "dt=2026-01-02").exists()
    assert stale_temporaries(Lake(root), "toy") == []


@pytest.mark.integration
def test_the_lock_on_s3_waits_and_a_dead_holders_lease_expires(s3, s3_env):
    path = storage.lake_path(s3.bucket("locks") + "/lake/locks/toy.lock")
    held, log = threading.Event(), []
    first = threading.Thread(target=_hold, args=(path, 1.0, 0.6, held, log))
    first.start()
    held.wait(10)
    with storage.lock(path, poll=0.05):
        assert log[-1][0] == "out"
    first.join()
    path.write_text(json.dumps({"owner": "other-host:1:dead", "expires": time.time() + 0.5}))
    start = time.monotonic()
    with storage.lock(path, poll=0.05):
        assert 0.3 < time.monotonic() - start < 10
    assert not path.exists()


# --- dea run on an S3 lake with a Dask cluster of separate processes -----------------------------

DATE, ROWS = "2026-12-01", "8000"


def _dea_run(home: str, env: dict, cwd, *extra: str) -> subprocess.CompletedProcess:
    done = subprocess.run([DEA, "--home", home, "run", "--date", DATE, "--rows", ROWS, "--epochs", "1", "--window", "2",
                           "--set", "seed=7", *extra], env=env, cwd=cwd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def _tables(lake: Lake) -> dict:
    """What the comparison looks at: feature files' checksums, the gate verdict, the model's metrics."""
    days = lake.dates("features", "synthetic")
    verdict = json.loads((lake.validation("synthetic", DATE) / "verdict.json").read_text())
    run = next(p for p in (lake.runs() / "synthetic" / f"dt={DATE}").iterdir() if p.name.endswith(".eval"))
    return {"days": days,
            "features": {d: read_record(lake.features("synthetic", d))["checksums"] for d in days},
            "verdict": (verdict["verdict"], verdict["counts"]),
            "evaluation": {k: json.loads((run / "evaluation.json").read_text())["candidate"][k]
                           for k in ("auc", "gauc", "logloss", "rows")}}


@pytest.mark.integration
def test_dea_run_on_s3_with_a_dask_cluster_equals_the_local_lake(s3, s3_env, tmp_path, monkeypatch):
    import os

    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"), "COLUMNS": "250"}
    _dea_run(str(tmp_path / "local"), env, tmp_path, "--workers", "2")
    url = s3.bucket("dea-run") + "/lake"
    with DaskCluster(2, cwd=tmp_path / "elsewhere", env=s3.env) as cluster:
        _dea_run(url, env, tmp_path, "--dask", cluster.address)
    local, remote = _tables(Lake.default(tmp_path / "local")), _tables(Lake.default(url))
    assert remote["days"] == local["days"] and len(local["days"]) == 3
    assert remote["features"] == local["features"]            # bit-identical files (SHA-256 per file)
    assert remote["verdict"] == local["verdict"]
    assert remote["evaluation"] == pytest.approx(local["evaluation"], rel=1e-9)
    assert stale_temporaries(Lake.default(url), "synthetic") == []
    from tests.test_pipeline import feature_table_readers

    frames = feature_table_readers(url + "/features/synthetic")
    local_frames = feature_table_readers(str(tmp_path / "local" / "features" / "synthetic"))
    for name, frame in frames.items():
        assert len(frame) == 3 * int(ROWS) and frame["dt"].nunique() == 3, name
        assert frame.equals(local_frames[name]), name


def test_dea_reports_refuses_an_object_store_lake_and_says_what_to_do(capsys):
    from flows.cli import main

    assert main(["reports", "--home", "s3://some-bucket/dea", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "dea reports serves a local lake; s3://some-bucket/dea is an object store" in err
    assert "aws s3 sync s3://some-bucket/dea/validation" in err and err.count("\n") == 1
