"""Peak memory and time of the vectorised feature-ID hash (``features.hashing.hash64_tokens``).

    .venv/bin/python benchmarks/hash_memory.py --out benchmarks/results/hash_memory.json
    .venv/bin/python benchmarks/hash_memory.py --murmur path/to/old_hashing.py --long-bytes 65536   # compare

Cases (each in a fresh subprocess, so peaks do not mix):

- ``short_plus_long``: 20,000 distinct short tokens plus one token of ``--long-bytes`` bytes;
- ``short_1m``: 1,000,000 distinct tokens of 5-30 bytes;
- ``criteo``: 26 fields ``C1..C26`` of 100,000 distinct 8-hex-digit tokens each (Criteo's shape);
- ``transform_long``: ``features.pipeline.transform_table`` of 100,000 rows, two sparse fields and
  their cross, where one of 5,000 distinct ``item`` values is ``--long-bytes`` bytes.

Reported per case: best-of-``--repeat`` wall and CPU seconds (CPU time is steadier on a shared
machine; both swing with glibc's allocator state, as the temporaries are near its mmap threshold),
the tracemalloc peak (Python and NumPy allocations) and the resident-set peak above the level
before the call (VmHWM after clear_refs; Arrow's own allocations show only there). ``--murmur FILE`` swaps in ``murmur3_x64_64`` from
another copy of ``features/hashing.py`` (e.g. ``git show HEAD~1:features/hashing.py``).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pyarrow as pa

from features import hashing, pipeline
from features.hashing import feature_id

CASES = ["short_plus_long", "short_1m", "criteo", "transform_long"]


def string_array(lengths: np.ndarray, rng: np.random.Generator) -> pa.Array:
    """Distinct lowercase tokens of the given lengths (>= 5): the first 5 letters spell the index."""
    n = len(lengths)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    data = rng.integers(ord("a"), ord("z") + 1, int(offsets[-1]), dtype=np.uint8)
    digits = np.arange(n)[:, None] // 26 ** np.arange(5) % 26
    data[offsets[:-1, None] + np.arange(5)] = (ord("a") + digits).astype(np.uint8)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data))


def setup(case: str, long_bytes: int):
    """(callable, check) for one case; check(result) asserts a sample of IDs against the spec."""
    rng = np.random.default_rng(0)
    if case == "short_plus_long":
        tokens = pa.concat_arrays([string_array(rng.integers(5, 31, 20_000), rng),
                                   pa.array(["x" * long_bytes])])
        return (lambda: hashing.hash64_tokens("item", tokens)), ("item", tokens)
    if case == "short_1m":
        tokens = string_array(rng.integers(5, 31, 1_000_000), rng)
        return (lambda: hashing.hash64_tokens("f", tokens)), ("f", tokens)
    if case == "criteo":
        columns = {f"C{i}": pa.array([f"{v:08x}" for v in rng.choice(2**32, 100_000, replace=False)])
                   for i in range(1, 27)}
        return (lambda: [hashing.hash64_tokens(f, t) for f, t in columns.items()]), ("C26", columns["C26"])
    if case == "transform_long":
        n = 100_000
        items = np.array([f"item{k}" for k in range(5_000)], dtype=object)
        items[0] = "x" * long_bytes
        item = pa.DictionaryArray.from_arrays(pa.array(rng.integers(0, 5_000, n), pa.int32()), pa.array(items))
        table = pa.table({"user": rng.integers(0, 50_000, n), "item": item,
                          "label": rng.integers(0, 2, n).astype(np.int8)})
        manifest = pipeline.Manifest(
            dataset="bench", fields=["user", "item", "user_x_item"], sparse=["user", "item"], dense={},
            cross=[("user", "item")], label="label", group=None, passthrough=[], missing="token",
            hash_spec_version=hashing.HASH_SPEC_VERSION, hash_seed=hashing.HASH_SEED, config_hash="bench",
            fit_dates=[], spec={}, record={"digest": "bench"})
        return (lambda: pipeline.transform_table(table, manifest, "2026-01-01")), ("item", item.dictionary)
    raise ValueError(case)


def rss_peak_reset() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS


def status_kb(key: str) -> int:
    line = next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith(key + ":"))
    return int(line.split()[1])


def run_case(case: str, long_bytes: int, repeat: int) -> dict:
    fn, (field, sample) = setup(case, long_bytes)
    fn()  # warm-up (imports, caches)
    seconds, cpu = [], []
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        seconds.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    rss_peak_reset()
    before = status_kb("VmRSS")
    tracemalloc.start()
    fn()
    traced = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    rss = status_kb("VmHWM") - before
    ids = hashing.hash64_tokens(field, sample)
    for i in sorted({0, len(sample) - 1, *range(0, len(sample), max(1, len(sample) // 50))}):
        assert ids[i] == feature_id(field, sample[i].as_py()), (case, i)
    return {"case": case, "seconds_best": min(seconds), "cpu_seconds_best": min(cpu), "seconds_all": seconds,
            "tracemalloc_peak_mb": traced / 2**20, "rss_peak_above_start_mb": rss / 1024}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", nargs="+", default=CASES, choices=CASES)
    ap.add_argument("--long-bytes", type=int, default=1 << 20)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--murmur", help="take murmur3_x64_64 from this copy of features/hashing.py")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--case", help=argparse.SUPPRESS)  # internal: run one case in this process
    args = ap.parse_args()
    if args.murmur:
        spec = importlib.util.spec_from_file_location("murmur_under_test", args.murmur)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        hashing.murmur3_x64_64 = module.murmur3_x64_64
    if args.case:
        print(json.dumps(run_case(args.case, args.long_bytes, args.repeat)))
        return
    results = []
    for case in args.cases:
        cmd = [sys.executable, __file__, "--case", case, "--long-bytes", str(args.long_bytes),
               "--repeat", str(args.repeat)] + (["--murmur", args.murmur] if args.murmur else [])
        results.append(json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout))
        r = results[-1]
        print(f"{case:16s} {r['seconds_best']:8.3f} s ({r['cpu_seconds_best']:.3f} s CPU)  tracemalloc {r['tracemalloc_peak_mb']:9.1f} MB  "
              f"RSS +{r['rss_peak_above_start_mb']:9.1f} MB", flush=True)
    report = {"benchmark": "hash_memory", "long_bytes": args.long_bytes, "repeat": args.repeat,
              "murmur": args.murmur or "features/hashing.py", "machine": platform.machine(),
              "python": platform.python_version(), "numpy": np.__version__, "results": results}
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
