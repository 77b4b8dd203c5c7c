"""Training throughput (samples/s) of our DEA and AutoInt and DeepCTR-Torch's AutoInt, same data.

Criteo shape: 39 fields, embedding size 16, one batch size, Adam lr 1e-3; CPU and (when present)
CUDA, in one run. IDs: the real Criteo 100k rows featurised by our pipeline (``--ids criteo``,
the default when ../shared/data is there: repeats and long tails as in production), or uniform
random int64 (``--ids uniform``: no cache reuse at all, the worst case for the Combo-ID gathers).
Each train step is zero_grad → forward → BCE → backward → optimizer step. Our models use the
trainer's optimizer (``dea_model.optim.make_optimizer``: fused Adam on the network, lazy Adam on
row-sparse embedding tables); DeepCTR's AutoInt gets fused dense Adam (its own ``fit`` uses the
for-each Adam). All models run in the same loop and take turns step by step (round robin), so load
from other processes hits them alike; the figure is the median step. Beside wall-clock samples/s,
samples per CPU-second (process CPU time of the step) is reported: on shared cores it is far
less noisy, and it is what the ratios use when ``--ratio-by cpu``. Also measured: eval (no-grad)
samples/s, the bytes of activations autograd keeps for backward and the FLOPs of a train step
(matrix products, torch's FLOP counter), per sample; ``flop_ratios`` set each speed ratio beside
the work ratio (b's FLOPs over a's).
``deepctr_autoint_fit`` is DeepCTR's AutoInt trained the way DeepCTR is used, through its own
``model.fit`` (DataLoader over rows, L2 on the embedding tables, for-each Adam).
A ``_bf16`` twin (``dea_bf16``, ``autoint_bf16``, ``autoint_default_bf16``) is the same model under
bf16 autocast on the CPU, as the trainer runs it with ``bf16_cpu=true`` (fast where the CPU has
AVX512-BF16 or AMX); it shares its fp32 model's weights, optimizer and batches. On CUDA every
model already runs under bf16 autocast, so the twins run on the CPU only. DeepCTR's AutoInt has
no twin: its ``tensordot`` of bf16 activations with fp32 weights fails under autocast.

The embedding table size matters: a dense optimizer steps every row of every table each batch
(DeepCTR), a row-sparse one only the B·n rows looked up (ours), so ``--rows`` takes a list of
rows-per-field table sizes (DeepCTR: the vocabulary size) and every model runs at each.

Configurations (recorded in the JSON): our ``autoint`` is set up like DeepCTR's (3 layers, 2
heads, attention width = embedding size, residual, no scaling, first-order term, DNN 400-400 on
the raw embeddings); ``autoint_dense`` is the same with dense tables and dense Adam (what the
row-sparse tables buy; ``dea_dense``, not in the default run, is the same for DEA);
``autoint_default`` is our AutoInt with its defaults (d_a = 32 as DEA, no first-order term); ``dea`` is the default model (ordered pairs, multiply fusion, k = 2, d_a = 32,
DNN 400-400, the siamese gate on the pair scores), ``dea_symmetric`` the same with unordered,
mirrored pairs, ``dea_gate_codeword`` the same with the gate on the codeword, as Eq. 6-7 write it
(the pair MLP then runs once per pair instead of once per codeword). DEA's codebooks have
``--codebook-size`` rows each.

At 2¹⁸ rows per field each model holds 2-3 GB (its tables and their Adam state; a process with
AutoInt alone peaks at 2.8 GB, with DEA alone at 3.7 GB, and the committed second run, five fp32
models and three twins, at 12.9 GB), the eight fp32 models about 20 GB together: too close to the
24 GB of the machine that measured them, so the default table sizes stop at 65536 and the committed
results come from two runs, the second with ``--append`` (it refuses other settings before it
measures; each result names its run, whose environment and peak memory are recorded, and results
of different runs are never paired in a ratio)::

    .venv/bin/python benchmarks/train_throughput.py --out benchmarks/results/train_throughput.json
    .venv/bin/python benchmarks/train_throughput.py --rows 262144 --append \
        --models dea,dea_bf16,autoint,autoint_bf16,autoint_dense,autoint_default,autoint_default_bf16,deepctr_autoint,deepctr_autoint_fit \
        --out benchmarks/results/train_throughput.json
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import common  # first: the set-up every benchmark shares (benchmarks/common.py)
from dea_model.config import TrainConfig
from dea_model.models import build_model
from dea_model.optim import make_optimizer

N_FIELDS, DIM = 39, 16
MODELS = ("dea", "dea_symmetric", "dea_gate_codeword", "autoint", "autoint_dense", "autoint_default", "deepctr_autoint",
          "deepctr_autoint_fit", "dea_bf16", "autoint_bf16", "autoint_default_bf16")
OPTIONAL = ("dea_dense",)   # not in the default run: for the CUDA check (dense fused Adam against SparseAdam)
BF16 = "_bf16"      # suffix: the same model under bf16 autocast on the CPU too (TrainConfig.bf16_cpu)
DEEPCTR_SHAPED = dict(layers=3, heads=2, attention_dim=DIM, residual=True, scale=False, dnn_hidden=(400, 400),
                      first_order=True)
# benchmark name -> (registered model, hparams over the defaults, row-sparse tables)
OURS = {
    "dea": ("dea", {}, True),
    "dea_dense": ("dea", {}, False),
    "dea_symmetric": ("dea", {"symmetric": True}, True),
    "dea_gate_codeword": ("dea", {"gate_on": "codeword"}, True),
    "autoint": ("autoint", DEEPCTR_SHAPED, True),
    "autoint_dense": ("autoint", DEEPCTR_SHAPED, False),
    "autoint_default": ("autoint", {}, True),   # our AutoInt+ defaults: d_a = 32 like DEA's, no first-order term
}


def our_model(name: str, rows: int, codebook_size: int) -> tuple[torch.nn.Module, dict, bool]:
    model_name, extra, sparse = OURS[name.removesuffix(BF16)]
    hp = dict(embedding_dim=DIM, embedding_rows=rows, **extra)
    if model_name == "dea":
        hp["codebook_size"] = codebook_size
    model = build_model(model_name, N_FIELDS, **hp)
    return model, model.hparams, sparse


def train_flops(loss) -> int:
    """FLOPs of ``loss()`` and its backward by torch's FLOP counter: matrix products only
    (elementwise ops, gathers, scatters and the optimizer step are not counted), and not in-place
    ones like ``addmm_``, which our layers therefore do not use."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        loss().backward()
    return counter.get_total_flops()


def criteo_ids(rows: int) -> torch.Tensor | None:
    """The first ``rows`` training rows of the Criteo 100k set as our pipeline's int64 IDs (None: no data)."""
    import tempfile

    from features.lake import Lake
    from quality import prepare

    from dea_model.data import load_days

    with tempfile.TemporaryDirectory(prefix="dea-throughput-") as tmp:
        lake = Lake(Path(tmp))
        try:
            days = prepare(lake, "criteo", workers=1)
        except FileNotFoundError:
            return None
        ids = load_days(lake, "criteo", days[:-2]).ids
    return ids[:rows].clone()


def deepctr_autoint(rows: int, device: str) -> tuple[torch.nn.Module, dict]:
    from deepctr_torch.inputs import SparseFeat
    from deepctr_torch.models import AutoInt

    columns = [SparseFeat(f"C{i}", vocabulary_size=rows, embedding_dim=DIM) for i in range(N_FIELDS)]
    hp = dict(att_layer_num=3, att_head_num=2, att_res=True, dnn_hidden_units=(400, 400))
    return AutoInt(columns, columns, device=device, **hp), hp


class Runner:
    """One model, its optimizer and a few fixed batches; ``step()`` is one timed train step."""

    def __init__(self, name: str, args, device: torch.device, rows: int, ids: torch.Tensor):
        torch.manual_seed(0)
        self.name, self.device = name, device
        self.bf16 = name.endswith(BF16) or (device.type == "cuda" and args.bf16)
        self.batch_size = args.batch_size if device.type == "cpu" else args.cuda_batch_size
        self.deepctr = name.removesuffix(BF16) == "deepctr_autoint"
        if self.deepctr:
            self.model, self.config = deepctr_autoint(rows, str(device))
            self.model.to(device)
            self.opt = torch.optim.Adam(self.model.parameters(), lr=1e-3, fused=True)
            self.config = {**self.config, "optimizer": "fused dense Adam"}
        else:
            self.model, self.config, sparse = our_model(name, rows, args.codebook_size)
            self.model.to(device)
            cfg = TrainConfig(lr=1e-3, batch_size=self.batch_size, sparse_embeddings=sparse)
            self.opt = make_optimizer(self.model, cfg)
            self.config = {**self.config, "optimizer": "fused Adam + lazy Adam on sparse tables" if sparse
                           else "fused dense Adam"}
        g = torch.Generator().manual_seed(1)
        B = self.batch_size
        self.batches = []
        for k in range(args.steps + args.warmup):
            x = ids[torch.arange(k * B, (k + 1) * B) % len(ids)]
            if self.deepctr:                # DeepCTR takes float index columns < its vocabulary size
                x = x.remainder(rows).float()
            self.batches.append((x.to(device), torch.randint(0, 2, (B,), generator=g).float().to(device)))
        self.turn = 0
        self.params = sum(p.numel() for p in self.model.parameters())

    def bf16_twin(self) -> "Runner":
        """This runner under bf16 autocast: the same model, optimizer and batches (no second copy
        of the tables in memory, and the two precisions time the very same weights)."""
        twin = copy.copy(self)
        twin.name, twin.bf16, twin.turn = self.name + BF16, True, 0
        return twin

    def loss(self, x, y):
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            out = self.model(x)
        if self.deepctr:                    # DeepCTR's models end in a sigmoid
            return F.binary_cross_entropy(out.squeeze(-1).float(), y)
        return F.binary_cross_entropy_with_logits(out.float(), y)

    def _sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def step(self) -> tuple[float, float]:
        """One train step: (wall seconds, process CPU seconds)."""
        x, y = self.batches[self.turn % len(self.batches)]
        self.turn += 1
        self._sync()
        start, cpu = time.perf_counter(), time.process_time()
        self.model.train()
        self.opt.zero_grad(set_to_none=True)
        self.loss(x, y).backward()
        self.opt.step()
        self._sync()
        return time.perf_counter() - start, time.process_time() - cpu

    @torch.no_grad()
    def eval_step(self) -> float:
        x, _ = self.batches[0]
        self.model.eval()
        self._sync()
        start = time.perf_counter()
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            self.model(x)
        self._sync()
        return time.perf_counter() - start

    def flops_per_sample(self) -> float:
        """FLOPs of one train step's forward and backward per sample (:func:`train_flops`)."""
        x, y = self.batches[0]
        self.model.train()
        flops = train_flops(lambda: self.loss(x, y))
        self.opt.zero_grad(set_to_none=True)
        return flops / self.batch_size

    def saved_bytes_per_sample(self) -> float:
        """Bytes of tensors autograd keeps for backward (distinct storages; parameters excluded)."""
        params = {p.untyped_storage().data_ptr() for p in self.model.parameters()}
        seen: dict[int, int] = {}

        def pack(t):
            storage = t.untyped_storage()
            if storage.data_ptr() not in params:
                seen[storage.data_ptr()] = storage.nbytes()
            return t

        x, y = self.batches[0]
        self.model.train()
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss = self.loss(x, y)
        del loss
        self.opt.zero_grad(set_to_none=True)
        return sum(seen.values()) / self.batch_size


def deepctr_fit(args, device: torch.device, rows: int, ids: torch.Tensor) -> dict:
    """DeepCTR's own training loop: ``fit`` over steps × B rows of ``ids``, one epoch (after a short warm-up)."""
    import contextlib
    import io

    import numpy as np

    torch.manual_seed(0)
    model, hp = deepctr_autoint(rows, str(device))
    model.compile("adam", "binary_crossentropy")
    B = args.batch_size if device.type == "cpu" else args.cuda_batch_size
    rng = np.random.default_rng(1)
    columns = ids.remainder(rows).numpy()

    def data(n):
        take = np.arange(n) % len(columns)
        return {f"C{i}": columns[take, i] for i in range(N_FIELDS)}, rng.integers(0, 2, n)

    with contextlib.redirect_stdout(io.StringIO()):
        model.fit(*data(2 * B), batch_size=B, epochs=1, verbose=0)
        x, y = data(args.steps * B)
        start, cpu = time.perf_counter(), time.process_time()
        model.fit(x, y, batch_size=B, epochs=1, verbose=0)
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
    sps = args.steps * B / seconds
    cpu_sps = args.steps * B / cpu_seconds
    print(f"{device}  {rows:>7,} rows  {'deepctr_autoint_fit':16s} train {sps:>11,.0f} samples/s ({cpu_sps:>9,.0f} per CPU-s)  "
          f"DeepCTR's own fit loop", flush=True)
    return {"device": str(device), "model": "deepctr_autoint_fit", "rows_per_field": rows, "batch_size": B,
            "bf16": False,
            "train_samples_per_second": sps, "train_samples_per_cpu_second": cpu_sps, "seconds": seconds,
            "rows": args.steps * B,
            "parameters": sum(p.numel() for p in model.parameters()),
            "config": {**hp, "loop": "deepctr_torch BaseModel.fit, optimizer 'adam', l2_reg_embedding 1e-5"}}


def bench_device(device: torch.device, args, rows: int, ids: torch.Tensor) -> list[dict]:
    # on CUDA every model already runs under bf16 autocast (unless --no-bf16): the _bf16 twins are CPU-only
    names = [n for n in args.models if n != "deepctr_autoint_fit" and not (device.type == "cuda" and n.endswith(BF16))]
    runners: dict[str, Runner] = {}
    for name in sorted(names, key=lambda n: n.endswith(BF16)):          # fp32 models first: twins share them
        fp32 = runners.get(name.removesuffix(BF16)) if name.endswith(BF16) else None
        runners[name] = fp32.bf16_twin() if fp32 else Runner(name, args, device, rows, ids)
    runners = list(runners.values())
    for r in runners:
        for _ in range(args.warmup):
            r.step()
    times: dict[str, list[tuple[float, float]]] = {r.name: [] for r in runners}
    for _ in range(args.steps):  # round robin: load from other processes hits every model alike
        for r in runners:
            times[r.name].append(r.step())
    results = []
    for r in runners:
        eval_times = [r.eval_step() for _ in range(args.eval_steps)]
        wall = [t for t, _ in times[r.name]]
        cpu = [c for _, c in times[r.name]]
        results.append({
            "device": str(device), "model": r.name, "rows_per_field": rows, "batch_size": r.batch_size,
            "bf16": r.bf16,
            "train_samples_per_second": r.batch_size / statistics.median(wall),
            "train_samples_per_second_best": r.batch_size / min(wall),
            "train_samples_per_cpu_second": r.batch_size / statistics.median(cpu),
            "eval_samples_per_second": r.batch_size / statistics.median(eval_times),
            "step_seconds": [round(t, 5) for t in wall],
            "step_cpu_seconds": [round(c, 5) for c in cpu],
            "saved_activation_bytes_per_sample": r.saved_bytes_per_sample(),
            "train_flops_per_sample": r.flops_per_sample(),
            "parameters": r.params, "config": r.config,
        })
        print(f"{device}  {rows:>7,} rows  {r.name:16s} train {results[-1]['train_samples_per_second']:>11,.0f} samples/s "
              f"({results[-1]['train_samples_per_cpu_second']:>9,.0f} per CPU-s)  "
              f"eval {results[-1]['eval_samples_per_second']:>11,.0f} samples/s  "
              f"saved activations {results[-1]['saved_activation_bytes_per_sample'] / 1024:,.1f} KiB/sample  "
              f"{results[-1]['train_flops_per_sample'] / 1e6:,.2f} MFLOP/sample",
              flush=True)
        del r.model, r.opt                      # free the tables before the next model's
    if "deepctr_autoint_fit" in args.models:
        results.append(deepctr_fit(args, device, rows, ids))
    return results


RATIO_PAIRS = ([("autoint", peer) for peer in ("deepctr_autoint", "deepctr_autoint_fit", "autoint_dense")]
               + [(ours, dea) for ours in ("autoint", "autoint_default")
                  for dea in ("dea", "dea_symmetric", "dea_gate_codeword")]
               + [("autoint_bf16", peer) for peer in ("deepctr_autoint", "deepctr_autoint_fit")]
               + [("autoint_default_bf16", "dea_bf16")]
               + [(m + BF16, m) for m in ("dea", "autoint", "autoint_default")])


def ratios(results: list[dict], by: str, key: str | None = None) -> dict[str, float]:
    """For each pair (a, b) of :data:`RATIO_PAIRS` run on one device and table size in one run: a's
    samples/s over b's; with ``key="train_flops_per_sample"``, b's FLOPs per sample over a's (the
    work ratio). Results of different runs (``--append``) are never paired."""
    out = {}
    for device, rows, run in sorted({(r["device"], r["rows_per_field"], r.get("run", 0)) for r in results}):
        measure = key or ("train_samples_per_cpu_second" if by == "cpu" and device == "cpu"
                          else "train_samples_per_second")
        values = {r["model"]: r[measure] for r in results if r["device"] == device and r["rows_per_field"] == rows
                  and r.get("run", 0) == run and measure in r}
        for a, b in RATIO_PAIRS:
            if a in values and b in values:
                out[f"{device} {rows} rows: {a} / {b}"] = values[b] / values[a] if key else values[a] / values[b]
    return out


def environment() -> dict:
    """The machine a run measured on: versions, CPU (model, bf16 support), memory, peak RSS, GPU."""
    from dea_model.device import cpu_has_bf16

    try:
        cpu_model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                          if line.startswith("model name")), platform.processor())
    except OSError:
        cpu_model = platform.processor()
    pages = os.sysconf("SC_PHYS_PAGES") if hasattr(os, "sysconf") else 0
    return {"torch": torch.__version__, "python": platform.python_version(), "cpu_model": cpu_model,
            "cpu_bf16": cpu_has_bf16(), "cpu_count": os.cpu_count(), "threads": torch.get_num_threads(),
            "memory_gb": round(pages * os.sysconf("SC_PAGE_SIZE") / 2**30, 1) if pages else None,
            "max_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
            "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default=",".join(MODELS), help="comma list of %s" % ", ".join(MODELS + OPTIONAL))
    p.add_argument("--devices", default="auto", help="cpu, cuda or cpu,cuda (auto: cuda too when present)")
    p.add_argument("--batch-size", type=int, default=1024, help="CPU batch size")
    p.add_argument("--cuda-batch-size", type=int, default=8192)
    p.add_argument("--rows", default="10000,65536",
                   help="comma list of rows per field table (all models; DeepCTR: vocabulary size)")
    p.add_argument("--ids", choices=("auto", "criteo", "uniform"), default="auto",
                   help="criteo: the Criteo 100k rows through our features stage; uniform: random int64; "
                        "auto: criteo when ../shared/data has it")
    p.add_argument("--codebook-size", type=int, default=2**18, help="rows per DEA codebook")
    p.add_argument("--steps", type=int, default=6, help="timed train steps per model")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--eval-steps", type=int, default=3)
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (default 1: on cores shared with other processes, 2 OpenMP "
                        "threads ran these models 5-10x slower than 1, and the run took 5 min instead of 1)")
    p.add_argument("--ratio-by", choices=("wall", "cpu"), default="cpu",
                   help="CPU ratios from wall-clock or CPU-time samples/s (CPU time: robust on shared cores; CUDA: wall)")
    p.add_argument("--no-bf16", dest="bf16", action="store_false", help="no bf16 autocast on CUDA")
    p.add_argument("--out", type=Path, help="write the results as JSON here")
    p.add_argument("--append", action="store_true",
                   help="merge into --out's results (a result of the same device, model and table size is "
                        "replaced) instead of overwriting: e.g. large tables in a run of fewer models, or "
                        "CUDA measured on a GPU machine")
    args = p.parse_args(argv)
    if args.append and not args.out:
        p.error("--append needs --out")
    args.models = [m for m in args.models.split(",") if m]
    args.rows = [int(r) for r in args.rows.split(",") if r]
    unknown = set(args.models) - set(MODELS + OPTIONAL)
    if unknown:
        p.error(f"unknown models {sorted(unknown)}; choose from {MODELS + OPTIONAL}")
    common.torch_threads(args.threads)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else []) if args.devices == "auto" \
        else args.devices.split(",")

    started = time.time()
    load_before = os.getloadavg()
    need = (args.steps + args.warmup) * max(args.batch_size, args.cuda_batch_size)
    ids, source = (criteo_ids(need), "criteo") if args.ids in ("auto", "criteo") else (None, "uniform")
    if ids is None:
        if args.ids == "criteo":
            p.error("--ids criteo: ../shared/data/criteo_100k_preprocessed is not there")
        ids, source = torch.randint(-(2**63), 2**63 - 1, (need, N_FIELDS),
                                    generator=torch.Generator().manual_seed(1)), "uniform"
    settings = {"batch_size": args.batch_size, "cuda_batch_size": args.cuda_batch_size,
                "codebook_size": args.codebook_size, "steps": args.steps, "warmup": args.warmup,
                "eval_steps": args.eval_steps, "threads": args.threads, "ratio_by": args.ratio_by,
                "cuda_bf16": args.bf16,
                "ids": ("Criteo 100k training rows, our features stage's int64 IDs (first %d rows)" % len(ids)
                        if source == "criteo" else "uniform random int64")}
    before = json.loads(args.out.read_text()) if args.append and args.out.exists() else None
    differ = sorted(k for k in settings if before and before.get("settings", {}).get(k) != settings[k])
    if differ:                                                          # refused before minutes of measuring
        p.error(f"--append: {args.out} was measured with other settings ({', '.join(differ)}: "
                f"{[before.get('settings', {}).get(k) for k in differ]} here {[settings[k] for k in differ]}); "
                f"measure with the same ones or write another file")
    results = []
    for device in devices:
        for rows in args.rows:
            results.extend(bench_device(torch.device(device), args, rows, ids))
    runs = [{"argv": sys.argv[1:] if argv is None else list(argv), "seconds": round(time.time() - started, 1),
             "environment": environment(), "loadavg_before": load_before, "loadavg_after": os.getloadavg()}]
    if before:
        new = {(r["device"], r["model"], r["rows_per_field"]) for r in results}
        kept = [r for r in before["results"] if (r["device"], r["model"], r["rows_per_field"]) not in new]
        old_runs = sorted({r["run"] for r in kept})                     # runs with no result left are dropped
        renumber = {old: i for i, old in enumerate(old_runs)}
        results = [{**r, "run": renumber[r["run"]]} for r in kept] + [{**r, "run": len(old_runs)} for r in results]
        runs = [before["runs"][i] for i in old_runs] + runs
    else:
        results = [{**r, "run": 0} for r in results]
    report = {
        "benchmark": "train_throughput",
        "shape": {"fields": N_FIELDS, "embedding_dim": DIM,
                  "rows_per_field": sorted({r["rows_per_field"] for r in results})},
        "settings": settings,
        "optimizer": "Adam lr 1e-3, BCE; ours: trainer's make_optimizer (lazy Adam on sparse tables unless "
                     "*_dense), DeepCTR in our loop: fused dense Adam; median of timed steps",
        "seconds": round(sum(r["seconds"] for r in runs), 1),
        "runs": runs,                                                   # each result's "run" indexes this
        "results": results,
        "ratios_by": args.ratio_by,
        "ratios": ratios(results, args.ratio_by),
        "flop_ratios": ratios(results, args.ratio_by, key="train_flops_per_sample"),
    }
    for key, value in report["ratios"].items():
        flops = report["flop_ratios"].get(key)
        print(f"{key}: {value:.2f}× ({args.ratio_by} time)" + (f"; b does {flops:.2f}× a's FLOPs" if flops else ""))
    print(f"{report['seconds']} s; load average before {load_before[0]:.1f}, after {os.getloadavg()[0]:.1f}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.out.with_suffix(args.out.suffix + ".tmp")
        tmp.write_text(json.dumps(report, indent=2))
        tmp.replace(args.out)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
