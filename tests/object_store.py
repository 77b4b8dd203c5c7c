"""Services of the scale-out tests: a local S3-compatible server (``moto_server``) and a Dask cluster
of separate processes (``dask scheduler`` + ``dask worker``), each on a free 127.0.0.1 port, started in
its own session and stopped with its process group at the end, also when the test fails.

    with S3Server() as s3:                          # s3.env: the AWS_* variables pointing at it
        s3.bucket("lake")                           # -> "s3://lake"
    with DaskCluster(workers=2, env=s3.env, cwd=elsewhere) as cluster:
        cluster.address                             # tcp://127.0.0.1:PORT
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.prefect_server import free_port, stop

BIN = Path(sys.executable).parent


def require(program: str) -> str:
    path = shutil.which(program, path=str(BIN)) or shutil.which(program)
    if path is None:
        raise RuntimeError(f"{program} is not installed: `make setup` installs the test extra")
    return path


class S3Server:
    """``moto_server`` on a free loopback port; ``env`` holds the variables s3fs/boto read."""

    def __init__(self, log_dir: Path | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                    "AWS_ENDPOINT_URL": self.url, "AWS_DEFAULT_REGION": "us-east-1"}
        self.log = (log_dir or Path(os.environ.get("TMPDIR", "/tmp"))) / f"moto-{self.port}.log"
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> "S3Server":
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([require("moto_server"), "-H", "127.0.0.1", "-p", str(self.port)],
                                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(self.url, timeout=1).close()
                return self
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.close()
                    raise RuntimeError(f"moto_server did not start: {self.log.read_text()[-2000:]}")
                time.sleep(0.2)

    def bucket(self, name: str) -> str:
        import s3fs

        s3fs.S3FileSystem(key="testing", secret="testing", endpoint_url=self.url).mkdir(name)
        return f"s3://{name}"

    def close(self) -> None:
        if self.proc is not None:
            stop(self.proc)

    def __exit__(self, *exc) -> None:
        self.close()


class DaskCluster:
    """``dask scheduler`` and ``workers`` × ``dask worker`` (one thread each), in ``cwd``, with ``env``."""

    def __init__(self, workers: int, *, cwd: Path, env: dict[str, str] | None = None):
        self.n, self.cwd = workers, Path(cwd)
        self.env = {**os.environ, **(env or {}), "DASK_DISTRIBUTED__WORKER__DAEMON": "False"}
        self.port = free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.procs: list[subprocess.Popen] = []

    def _spawn(self, name: str, *args: str) -> None:
        with open(self.cwd / f"{name}.log", "ab") as log:
            self.procs.append(subprocess.Popen([require("dask"), *args], cwd=self.cwd, env=self.env, stdout=log,
                                               stderr=subprocess.STDOUT, start_new_session=True))

    def __enter__(self) -> "DaskCluster":
        self.cwd.mkdir(parents=True, exist_ok=True)
        self._spawn("scheduler", "scheduler", "--host", "127.0.0.1", "--port", str(self.port),
                    "--dashboard-address", ":0", "--no-show")
        for i in range(self.n):
            self._spawn(f"worker-{i}", "worker", self.address, "--nthreads", "1", "--nworkers", "1",
                        "--host", "127.0.0.1", "--dashboard-address", ":0", "--no-nanny",
                        "--memory-limit", "2GiB", "--local-directory", str(self.cwd / f"w{i}"))
        try:
            self._wait_for_workers()
        except BaseException:
            self.close()
            raise
        return self

    def _wait_for_workers(self, timeout: float = 60) -> None:
        from distributed import Client

        with Client(self.address, timeout=timeout) as client:
            client.wait_for_workers(self.n, timeout=timeout)

    def close(self) -> None:
        for proc in reversed(self.procs):
            stop(proc)

    def __exit__(self, *exc) -> None:
        self.close()
