"""Prefect environment defaults, applied before ``prefect`` is first imported.

Prefect 3 reads its settings once, when ``prefect.context`` is imported, so importing the ``flows``
package calls ``apply()`` (``flows/__init__.py``), and the ``dea`` command calls ``apply(args.home)``
once it knows the lake, before anything imports Prefect. Only variables the user did not set are
filled in: anything exported is kept, and a later call replaces only this module's own defaults.

- ``PREFECT_HOME``: ``<lake>/prefect`` for a local lake, else a per-user temporary folder (even
  ``prefect version`` would otherwise create ``~/.prefect``).
- analytics off (``PREFECT_SERVER_ANALYTICS_ENABLED=false``, ``DO_NOT_TRACK=1``): no heartbeat to
  an outside host, and no "database is locked" traceback on a fresh database.
- ``PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS=120``: the 20 s default times out under load.

Without ``PREFECT_API_URL`` flows run against an ephemeral server (a SQLite file in PREFECT_HOME;
the ``dea`` commands start their own, ``flows.server``); with it they report to that server.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from pathlib import Path
from urllib.parse import quote

DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    "PREFECT_LOGGING_LOG_PRINTS": "true",
}


def prefect_home(lake_root: str | os.PathLike | None = None) -> Path:
    """Where Prefect keeps its database and profiles: under a local lake, else a temp folder."""
    root = str(lake_root or os.environ.get("DEA_HOME", ".dea"))
    if "://" in root and not root.startswith("file://"):
        return Path(tempfile.gettempdir()) / f"dea-prefect-{os.getuid()}"
    return Path(root.removeprefix("file://")).resolve() / "prefect"


def check_writable(lake_root: str | os.PathLike | None = None) -> None:
    """Fail in one line, before any work, when the lake or Prefect's home cannot be written.

    (Otherwise a read-only lake surfaces minutes later as "Timed out while attempting to connect to
    ephemeral Prefect API server", its cause buried in a log.) Remote lakes (``s3://``) are skipped.
    """
    root = str(lake_root or os.environ.get("DEA_HOME", ".dea"))
    places = {"PREFECT_HOME": os.environ.get("PREFECT_HOME") or str(prefect_home(lake_root))}
    if "://" not in root or root.startswith("file://"):
        places = {"DEA_HOME": root.removeprefix("file://"), **places}
    for name, path in places.items():
        path = Path(path).expanduser()
        try:
            path.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=path, prefix=".write-check-"):
                pass
        except OSError as e:
            raise PermissionError(f"{name} {path} is not writable ({e.strerror or e}): point {name} at a "
                                  f"writable folder (export {name}=..., or `dea --home DIR` for the lake)") from None


_DEFAULTED: set[str] = set()    # the variables apply() set, as opposed to the user


def apply(lake_root: str | os.PathLike | None = None) -> dict[str, str]:
    """Set the Prefect variables the user did not; returns what was set. A later call (the ``dea``
    command with ``--home``) replaces the defaults of an earlier one, never the user's."""
    wanted = {"PREFECT_HOME": str(prefect_home(lake_root)), **DEFAULTS}
    added = {k: v for k, v in wanted.items() if k not in os.environ or k in _DEFAULTED}
    os.environ.update(added)
    _DEFAULTED.update(added)
    with contextlib.suppress(OSError):  # Prefect makes one level only; an unwritable home is check_writable's to report
        Path(os.environ["PREFECT_HOME"]).expanduser().mkdir(parents=True, exist_ok=True)
    return added


#: where ``dea reports`` serves the lake's reports by default (Data Docs, gate plots, training curves)
REPORTS_HOST, REPORTS_PORT = "127.0.0.1", 4201


def reports_url(lake_root: Path, path: str | os.PathLike) -> str:
    """The http address of a file of the lake as ``dea reports`` serves it: ``$DEA_REPORTS_URL``
    (default ``http://127.0.0.1:4201``) + the path relative to the lake root (symbolic links inside
    the lake kept, as the server follows them), percent-encoded."""
    from features.storage import is_local

    if not (is_local(lake_root) and is_local(path)):   # an object-store lake: its URL (``dea reports`` serves local lakes)
        return str(path)
    base = os.environ.get("DEA_REPORTS_URL") or f"http://{REPORTS_HOST}:{REPORTS_PORT}"
    relative = Path(os.path.relpath(Path(path).absolute(), Path(lake_root).absolute()))
    if relative.parts[:1] == ("..",):          # not under the lake (never served): the file itself
        return Path(path).absolute().as_uri()
    return f"{base.rstrip('/')}/{quote(relative.as_posix(), safe='/=@')}"


class ExpectedFailureFilter(logging.Filter):
    """Drops the traceback Prefect's engine logs for a flow that *returned* its Failed state on purpose
    (a gate verdict, a failed stage: ``prefect.exceptions.FailedRun``), whose state message already
    says why. A crash, any other exception, keeps its traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        from prefect.exceptions import FailedRun   # Prefect is imported by the time it logs

        error = record.exc_info[1] if record.exc_info else None
        return not (isinstance(error, FailedRun) and record.getMessage().startswith("Engine execution exited"))


def quiet_expected_failures() -> None:
    """Install ``ExpectedFailureFilter`` on Prefect's flow-run logger (once)."""
    flow_runs = logging.getLogger("prefect.flow_runs")
    if not any(isinstance(f, ExpectedFailureFilter) for f in flow_runs.filters):
        flow_runs.addFilter(ExpectedFailureFilter())
