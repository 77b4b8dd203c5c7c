"""Where a model runs: the device, host → device copies, and bf16 autocast per device.

On CUDA the forward runs under bf16 autocast (default on, ``TrainConfig.bf16``); on the CPU only
with ``bf16_cpu`` (off by default, so a model's numbers do not depend on the CPU that trained it).
"""

from __future__ import annotations

import platform
import warnings
from pathlib import Path

import torch

from dea_model.config import TrainConfig


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` -> CUDA when present, else CPU; ``cuda`` without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but torch sees no GPU; use device=auto or cpu")
    return torch.device(name)


def to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A batch tensor onto ``device``; CPU → CUDA goes through page-locked memory so the copy is
    asynchronous (``non_blocking``) and overlaps the previous step's kernels."""
    if device.type == "cuda" and t.device.type == "cpu":
        t = t.pin_memory()
    return t.to(device, non_blocking=True)


def use_bf16(train: TrainConfig | dict, device: torch.device) -> bool:
    """Whether the forward runs under bf16 autocast: ``bf16`` on CUDA (default on), ``bf16_cpu`` on
    the CPU (default off). ``train`` is a TrainConfig or a saved config's ``train`` dict.

    Without AVX512-BF16 or AMX, bf16 on the CPU is emulated and slower than fp32, so this warns
    (measured speed-ups: ``benchmarks/results/train_throughput.json``).
    """
    get = train.get if isinstance(train, dict) else lambda key, default: getattr(train, key)
    if device.type == "cuda":
        return bool(get("bf16", True))
    enabled = device.type == "cpu" and bool(get("bf16_cpu", False))
    if enabled and not cpu_has_bf16():
        warnings.warn("bf16_cpu=true, but this CPU has neither AVX512-BF16 nor AMX: bf16 is emulated and "
                      "usually slower than fp32", RuntimeWarning, stacklevel=2)
    return enabled


def cpu_has_bf16() -> bool:
    """Whether an x86 CPU has AVX512-BF16 or AMX: torch's probes (torch ≥ 2.5), else the flags of
    /proc/cpuinfo; True where neither can tell, and on other CPUs (ARM: torch reports nothing)."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return True
    probes = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    if all(probes):
        return any(probe() for probe in probes)
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return True
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def autocast(device: torch.device, bf16: bool):
    """bf16 autocast on ``device`` when ``bf16``, else a no-op context."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)
