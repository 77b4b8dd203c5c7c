"""A private Prefect API server for one ``dea`` command, tied to the command's life.

Without ``PREFECT_API_URL`` Prefect would start its own ephemeral server in a child process that
outlives a ``dea`` killed with ``kill -9`` (re-parented to PID 1, ~270 MB, never stopped). The
``dea`` commands that run flows start this one instead: ``prefect server start`` on a free loopback
port, its database in ``PREFECT_HOME``, asked by the kernel to receive SIGTERM the moment its
parent dies (``PR_SET_PDEATHSIG``, Linux), and stopped on any exit of the block. With
``PREFECT_API_URL`` set the flows report to that server and nothing is started.

Call ``private_server()`` before ``prefect`` is imported: Prefect reads ``PREFECT_API_URL`` once.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """In a child between fork and exec: SIGTERM when the parent dies (no-op off Linux)."""
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before prctl: nobody will send it
        os._exit(1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def _configured_api_url() -> str | None:
    """The API URL of an already imported Prefect (a test harness, a profile), if any."""
    if "prefect" not in sys.modules:
        return None
    from prefect.settings import get_current_settings

    return get_current_settings().api.url


def stop(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds; always reaped."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def private_server(home: str | os.PathLike, timeout: float = 120.0) -> Iterator[str]:
    """Yield the API URL of a Prefect server that lives exactly as long as the block (and this process).

    ``home`` is ``PREFECT_HOME``: the database and ``server.log`` go there. A server that exits or is
    not healthy within ``timeout`` seconds is an error quoting the end of its log.
    """
    given = os.environ.get("PREFECT_API_URL") or _configured_api_url()
    if given:
        yield given
        return
    home = Path(home)
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_API_HOST": "127.0.0.1",
           "PREFECT_SERVER_API_PORT": str(port), "PREFECT_UI_ENABLED": "false",
           "PREFECT_SERVER_UI_ENABLED": "false",
           "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false"}   # deployments belong to the real server
    log_path = home / "server.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                                 "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, preexec_fn=die_with_parent)
    try:
        deadline = time.monotonic() + timeout
        while not _healthy(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = log_path.read_text(errors="replace")[-2000:]
                why = f"exited with code {proc.returncode}" if proc.poll() is not None else f"not healthy in {timeout:.0f} s"
                raise RuntimeError(f"the Prefect server for this command (PREFECT_HOME={home}) {why}; "
                                   f"its log {log_path} ends with:\n{tail}")
            time.sleep(0.25)
        os.environ["PREFECT_API_URL"] = url
        yield url
    finally:
        _drain_prefect_clients()
        os.environ.pop("PREFECT_API_URL", None)
        stop(proc)


def _drain_prefect_clients(timeout: float = 10.0) -> None:
    """Send the logs and events Prefect still holds before their server goes (else "Error logging to API")."""
    if "prefect" not in sys.modules:
        return
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for service in (APILogWorker, EventsWorker):
        service.drain_all(timeout=timeout)
