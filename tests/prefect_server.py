"""A real ``prefect server start`` (and its process workers) for the integration tests: one owner for
starting and stopping them.

Everything listens on 127.0.0.1 on a free port, under a temporary ``PREFECT_HOME`` and ``DEA_HOME``;
every process is started in its own session and killed with its process group in ``close()`` (also
when a test fails: use ``with PrefectServer(...) as server:`` in a fixture).

    with PrefectServer(tmp, scheduler=True, env={"PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "2"}) as s:
        s.deploy()                                  # the dea-process pool + deployments/prefect.yaml
        s.start_worker()                            # prefect worker start --pool dea-process
        s.api("POST", "/flow_runs/filter", {...})   # the REST API
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PREFECT = str(Path(sys.executable).with_name("prefect"))
DEA = str(Path(sys.executable).with_name("dea"))
POOL = "dea-process"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM the process group (a worker ignores the first one), then SIGKILL what is left."""
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGTERM, 5), (signal.SIGKILL, 10)):
        if proc.poll() is not None:
            break
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(wait)
        except subprocess.TimeoutExpired:
            continue
    try:  # children left in the group (a flow-run subprocess) go too
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


class PrefectServer:
    """``prefect server start`` on a free loopback port; its scheduler service only when ``scheduler``,
    its UI (at ``ui_url``) only when ``ui``."""

    def __init__(self, tmp: Path, *, scheduler: bool = False, ui: bool = False, env: dict[str, str] | None = None):
        self.tmp = Path(tmp)
        self.port = free_port()
        self.ui_url = f"http://127.0.0.1:{self.port}"
        self.url = f"{self.ui_url}/api"
        self.lake_root = self.tmp / "lake"
        self.env = {**os.environ,
                    "PREFECT_HOME": str(self.tmp / "prefect"), "PREFECT_API_URL": self.url,
                    "PREFECT_SERVER_API_HOST": "127.0.0.1", "PREFECT_SERVER_API_PORT": str(self.port),
                    "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1",
                    "PREFECT_UI_ENABLED": str(ui).lower(), "PREFECT_SERVER_UI_ENABLED": str(ui).lower(),
                    "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "true" if scheduler else "false",
                    "PREFECT_WORKER_QUERY_SECONDS": "1", "PREFECT_LOGGING_LEVEL": "INFO",
                    # as the README starts it: runs' logs streamed to `prefect deployment run --watch`
                    "PREFECT_SERVER_LOGS_STREAM_OUT_ENABLED": "true",
                    "PREFECT_SERVER_LOGS_STREAM_PUBLISHING_ENABLED": "true",
                    "DEA_HOME": str(self.lake_root), "DEA_DASK_ADDRESS": "",
                    **(env or {})}
        self.procs: list[subprocess.Popen] = []

    # -- processes ---------------------------------------------------------------------------------
    def spawn(self, name: str, *args: str, program: str = PREFECT) -> subprocess.Popen:
        """``prefect <args>`` (or ``program``) in the background, in its own process group, output to
        ``<tmp>/<name>.log``; stopped by ``close()``."""
        with open(self.tmp / f"{name}.log", "w") as log:
            proc = subprocess.Popen([program, *args], env=self.env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        self.procs.append(proc)
        return proc

    def start(self, timeout: float = 120) -> "PrefectServer":
        """Start the server and wait until /health answers."""
        srv = self.spawn("server", "server", "start")
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                pass
            assert srv.poll() is None, f"prefect server exited:\n{self.log()[-3000:]}"
            assert time.monotonic() < deadline, f"prefect server not healthy in {timeout:.0f} s:\n{self.log()[-3000:]}"
            time.sleep(0.5)

    def start_worker(self, pool: str = POOL, *args: str) -> subprocess.Popen:
        return self.spawn(f"worker-{pool}", "worker", "start", "--pool", pool, *args)

    def close(self) -> None:
        for proc in reversed(self.procs):
            stop(proc)
        self.procs.clear()

    def __enter__(self) -> "PrefectServer":
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc) -> None:
        self.close()

    # -- talking to it -----------------------------------------------------------------------------
    def cli(self, *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
        """``prefect <args>``, as a terminal 250 columns wide would print it (rich wraps at 80 otherwise)."""
        return subprocess.run([PREFECT, *args], env={**self.env, "COLUMNS": "250"}, cwd=REPO, capture_output=True,
                              text=True, timeout=timeout)

    def check(self, *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
        """``cli``, asserting exit code 0."""
        done = self.cli(*args, timeout=timeout)
        assert done.returncode == 0, f"prefect {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        return done

    def deploy(self, prefect_file: str | Path = "deployments/prefect.yaml", pool: str = POOL) -> None:
        """The process work pool, then every deployment of ``prefect_file``, from the repository root."""
        self.check("work-pool", "create", pool, "--type", "process", "--overwrite")
        self.check("--no-prompt", "deploy", "--all", "--prefect-file", str(prefect_file))

    def api(self, method: str, path: str, body: dict | None = None, timeout: float = 30):
        """One REST call, e.g. ``api("POST", "/flow_runs/filter", {...})``; the decoded JSON answer."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"{self.url}{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.loads(r.read() or b"null")

    def log(self, name: str = "server") -> str:
        path = self.tmp / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def logs_tail(self, chars: int = 3000) -> str:
        return "\n".join(f"--- {p.name} ---\n{p.read_text(errors='replace')[-chars:]}" for p in sorted(self.tmp.glob("*.log")))

    def explain(self, run: subprocess.CompletedProcess) -> str:
        return f"rc={run.returncode}\n{run.stdout[-3000:]}\n{run.stderr[-2000:]}\n--- logs ---\n{self.logs_tail()}"
