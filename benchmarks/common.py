"""The set-up every benchmark shares, in one place: each imports it first (``import common``).

The benchmarks are scripts (``.venv/bin/python benchmarks/quality.py``); Python puts the script's
folder on ``sys.path``, so they import this module and each other (``quality``,
``train_throughput``) as top-level modules, and tests/conftest.py gives the tests that load a
benchmark the same path. Importing this module puts the checkout's root first on ``sys.path``, so
the platform's packages that the benchmark imports next are this checkout's, installed
(``make bench``) or not. Its functions are the settings the benchmarks apply alike.
"""

from __future__ import annotations

import logging
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def torch_threads(n: int) -> None:
    """torch's CPU threads for this process: 1 is fastest for these models on cores other processes
    share (no OpenMP barriers); a process pool's workers call it again."""
    import torch

    torch.set_num_threads(n)


def log_progress(*quiet: str) -> None:
    """Progress lines on stderr (INFO, with the time); the loggers named in ``quiet`` only from WARNING."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    for name in quiet:
        logging.getLogger(name).setLevel(logging.WARNING)


def paired_difference(diff) -> dict:
    """Mean, sample sd and t = mean / (sd / √n) of per-seed differences (better − worse, same seed),
    with the verdict at |t| > 2: "holds", "fails" (t < −2), "inconclusive", or "one seed"."""
    import numpy as np

    diff = np.asarray(diff, dtype=float)
    sd = float(diff.std(ddof=1)) if diff.size > 1 else float("nan")
    t = float(diff.mean()) / (sd / math.sqrt(diff.size)) if sd > 0 else math.copysign(math.inf, diff.mean())
    verdict = "one seed" if diff.size < 2 else "holds" if t > 2 else "fails" if t < -2 else "inconclusive"
    return {"mean": float(diff.mean()), "sd": sd, "t": t, "verdict": verdict}
