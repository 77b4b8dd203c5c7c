"""What an operator leaves unattended: a ``dea run`` killed with ``kill -9`` or SIGTERM leaves no
process behind (its private Prefect server and Dask workers die with it) and the next run of the
dataset removes the temporary folders it left, never those of a live run; a read-only lake fails in
one line; two training runs never share a folder.

The kill tests start a real ``dea run`` (a private Prefect server, a Dask LocalCluster) and kill it
while the feature stage is writing; every process they start is killed in a ``finally``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from features.lake import Lake, stale_temporaries
from flows.guard import LockTimeout, dataset_lock

DEA = str(Path(sys.executable).with_name("dea"))


def _wait(predicate, timeout: float, what: str, proc: subprocess.Popen | None = None, log: Path | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(0.01)
    tail = log.read_text()[-3000:] if log and log.exists() else ""
    raise AssertionError(f"{what} within {timeout:.0f} s (exit {proc and proc.poll()}):\n{tail}")


def _temporaries(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.startswith((".tmp-", ".old-"))] if root.exists() else []


def _writing_features(root: Path) -> bool:
    """A feature day is being written (cheap enough to poll every few milliseconds)."""
    folder = root / "features" / "synthetic"
    return folder.is_dir() and any(e.name.startswith(".tmp-") for e in os.scandir(folder))


def _start_run(home: Path, log: Path) -> subprocess.Popen:
    env = {**os.environ, "DEA_HOME": str(home), "PREFECT_HOME": str(home / "prefect"), "DEA_DASK_ADDRESS": ""}
    env.pop("PREFECT_API_URL", None)
    return subprocess.Popen([DEA, "run", "--date", "2026-01-05", "--rows", "100000", "--workers", "1",
                             "--set", "model=fm", "--set", "epochs=1"],
                            env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT)


def _dask_worker(tree: list[psutil.Process]) -> bool:
    def cmd(p):
        try:
            return " ".join(p.cmdline())
        except psutil.Error:
            return ""
    return any("spawn_main" in cmd(p) or cmd(p).startswith("dask worker") for p in tree)   # setproctitle renames it


@contextlib.contextmanager
def _killed_mid_write(tmp_path: Path, sig: int):
    """Start ``dea run``, wait until Dask workers run and a temporary folder exists, send ``sig``;
    yield (the process, its descendants just before the signal, the lake root, the log). Whatever
    the test asserts, every process is gone afterwards."""
    home, log = tmp_path / "lake", tmp_path / "dea-run.log"
    proc, tree = _start_run(home, log), []
    try:
        me = psutil.Process(proc.pid)
        tree = _wait(lambda: (t := me.children(recursive=True)) and _dask_worker(t) and t, 240, "no Dask worker",
                     proc, log)
        # a day's write lasts a fraction of a second: signal the moment it is seen, look afterwards
        _wait(lambda: _writing_features(home), 240, "no feature day being written", proc, log)
        proc.send_signal(sig)
        names = {" ".join(p.cmdline()[1:]) for p in tree if p.is_running()}
        assert any("prefect server start" in n for n in names), names      # the command's private server
        yield proc, tree, home, log
    finally:
        if proc.poll() is None:
            proc.kill()
        _gone(tree, timeout=1)


def _gone(tree: list[psutil.Process], timeout: float = 30.0) -> list[psutil.Process]:
    """Wait for every process of ``tree`` to exit; return (and kill) those still alive."""
    _, alive = psutil.wait_procs(tree, timeout=timeout)
    for p in alive:
        p.kill()
    return alive


@pytest.mark.integration
@pytest.mark.slow
def test_kill_9_leaves_no_process_and_the_next_run_removes_its_temporaries(tmp_path):
    with _killed_mid_write(tmp_path, signal.SIGKILL) as (proc, tree, home, log):
        assert proc.wait(30) == -signal.SIGKILL
        alive = _gone(tree)
        assert alive == [], f"left running after kill -9: {[p.pid for p in alive]}"
        left = _temporaries(home)
        assert left, "kill -9 mid-write leaves temporary folders (the premise of the test)"
        with dataset_lock(Lake(home), "synthetic"):                  # what the next run of the dataset does first
            assert stale_temporaries(Lake(home), "synthetic") == []
        assert not any(p.exists() for p in left)


@pytest.mark.integration
@pytest.mark.slow
def test_sigterm_unwinds_removes_its_temporaries_and_stops_its_children(tmp_path):
    with _killed_mid_write(tmp_path, signal.SIGTERM) as (proc, tree, home, log):
        assert proc.wait(60) == 128 + signal.SIGTERM, log.read_text()[-3000:]
        alive = _gone(tree)
        assert alive == [], f"left running after SIGTERM: {[p.pid for p in alive]}"
        assert _temporaries(home) == []                              # finally blocks ran
        assert "Traceback" not in log.read_text()


HOLD = """
import sys
from pathlib import Path
from features.lake import Lake
from flows.guard import dataset_lock
lake = Lake(Path(sys.argv[1]))
with dataset_lock(lake, "synthetic"):
    (lake.features("synthetic") / ".tmp-dt=2026-01-05-live").mkdir(parents=True)
    print("writing", flush=True)
    sys.stdin.readline()
"""


@pytest.mark.integration
def test_a_live_runs_temporaries_are_never_removed(tmp_path):
    lake = Lake(tmp_path)
    dead = lake.runs() / "synthetic" / "dt=2026-01-04" / ".tmp-fm-abc-w3-1234"
    dead.mkdir(parents=True)
    (dead / "model.pt").write_bytes(b"x" * 1000)
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    live = lake.features("synthetic") / ".tmp-dt=2026-01-05-live"
    try:
        assert holder.stdout.readline().strip() == "writing"
        assert not dead.exists()                                     # the holder's lock removed the dead run's
        dead.mkdir(parents=True)
        with pytest.raises(LockTimeout):
            with dataset_lock(lake, "synthetic", timeout=0.5, poll=0.1):
                pass
        assert live.exists() and dead.exists()                       # nothing removed while a run is alive
    finally:
        holder.communicate("\n", timeout=30)
    with dataset_lock(lake, "synthetic", timeout=5):
        assert not live.exists() and not dead.exists()
    with dataset_lock(lake, "other", timeout=5):                      # other datasets' folders are not touched
        pass


def _unshare_works() -> bool:
    return shutil.which("unshare") is not None and \
        subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode == 0


@pytest.mark.integration
@pytest.mark.skipif(not _unshare_works(), reason="needs `unshare -rm` (user and mount namespaces) for a read-only mount")
def test_a_read_only_lake_fails_at_once_in_one_line(tmp_path):
    lake = tmp_path / "lake"
    lake.mkdir()
    script = f'mount --bind "{lake}" "{lake}" && mount -o remount,bind,ro "{lake}" && exec "{DEA}" --home "{lake}" run'
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_HOME", "PREFECT_API_URL")}
    start = time.monotonic()
    done = subprocess.run(["unshare", "-rm", "sh", "-c", script], env=env, capture_output=True, text=True, timeout=120)
    seconds = time.monotonic() - start

    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        f"dea run: error: DEA_HOME {lake} is not writable (Read-only file system): point DEA_HOME at a writable "
        f"folder (export DEA_HOME=..., or `dea --home DIR` for the lake)"]
    assert seconds < 30                                              # not a 131 s wait for a server


def test_two_training_runs_never_share_a_folder(tmp_path):
    from dea_model.runs import new_run_dir

    lake = Lake(tmp_path)
    folders = {new_run_dir(lake, "synthetic", "fm") for _ in range(1000)}
    assert len(folders) == 1000
    assert all(f.parent == lake.runs() / "synthetic" / "adhoc" and f.name.startswith("fm-") for f in folders)


def test_prefects_home_follows_the_lake_unless_the_user_set_it(tmp_path, monkeypatch):
    """``flows`` applies defaults on import (DEA_HOME's lake); ``dea --home DIR`` moves Prefect's
    home under DIR; a PREFECT_HOME the user exported always stays."""
    from flows import settings

    monkeypatch.delenv("PREFECT_HOME", raising=False)
    monkeypatch.setenv("DEA_HOME", str(tmp_path / "env-lake"))
    monkeypatch.setattr(settings, "_DEFAULTED", set())
    settings.apply()
    assert os.environ["PREFECT_HOME"] == str(tmp_path / "env-lake" / "prefect")
    settings.apply(tmp_path / "cli-lake")
    assert os.environ["PREFECT_HOME"] == str(tmp_path / "cli-lake" / "prefect")
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "mine"))
    monkeypatch.setattr(settings, "_DEFAULTED", set())
    settings.apply(tmp_path / "cli-lake")
    assert os.environ["PREFECT_HOME"] == str(tmp_path / "mine")


@pytest.mark.integration
def test_a_local_cluster_leaves_this_process_environment_alone(monkeypatch):
    """Dask's nannies set OMP_NUM_THREADS=1 for their workers, and did so in the caller's process too:
    a torch imported after the feature stage then trained on one thread (the DEA run of `dea run`
    took 89 s instead of 56 s on 2 cores)."""
    from features.cluster import dask_client

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    with dask_client(n_workers=1) as client:
        assert set(client.run(lambda: os.environ.get("OMP_NUM_THREADS")).values()) == {"1"}   # workers: one thread
        assert "OMP_NUM_THREADS" not in os.environ
    assert "OMP_NUM_THREADS" not in os.environ
