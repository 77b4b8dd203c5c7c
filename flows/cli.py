"""The ``dea`` command line: one subcommand per stage.

Each area registers its subcommands from ``flows/commands/<area>.py`` (a ``register(subparsers)``
function); heavy libraries are imported inside the command, so ``dea --help`` is instant.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import signal
import sys
from typing import Iterator

from flows import settings

COMMAND_MODULES = ("data", "validate", "model", "registry", "pipeline", "maintenance", "reports")
WRITERS = {"synth", "ingest", "features", "validate", "train", "run", "backfill", "predict", "gc"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dea", description="DEA CTR platform: features -> gate -> model -> registry.")
    parser.add_argument("--home", help="lake root (default: $DEA_HOME or ./.dea)")
    parser.add_argument("-v", "--verbose", action="store_true", help="show the libraries' progress logs")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"flows.commands.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"flows.commands.{name}":
                raise
            continue
        module.register(sub)
    return parser


TERMINATED: list[int] = []      # the signal that ended the command, once one arrived


@contextlib.contextmanager
def sigterm_exits() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C (``finally`` blocks run: temporary folders removed, the private
    Prefect server and the Dask cluster stopped) instead of killing the process where it stands.
    A command that fails after it then exits 128 + 15, even when the ``SystemExit`` landed inside
    Prefect's engine and came out as another error (``main``)."""
    def terminate(signum, frame):
        TERMINATED.append(signum)
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    try:
        with sigterm_exits():
            settings.apply(args.home)          # the lake is known now: Prefect's home follows it
            if args.command in WRITERS or getattr(args, "writes", False):
                settings.check_writable(args.home)
            code = int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, KeyError, PermissionError) as e:  # user errors: one line, no traceback
        if args.verbose:
            raise
        print(f"dea {args.command}: error: {e}", file=sys.stderr)
        code = 2
    return 128 + TERMINATED[0] if TERMINATED and code else code     # failed because it was stopped


if __name__ == "__main__":
    sys.exit(main())
