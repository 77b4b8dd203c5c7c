"""The data-quality gate: expectation suites generated from the dataset spec and the day's
statistics, run with Great Expectations, a verdict (pass / warn / fail) and reports per day.

    from validation import run_gate
    result = run_gate(spec, lake, "2026-01-05")       # -> GateResult; result.verdict, result.failing
"""

from validation.config import Bound, GateConfig, gate_config
from validation.gate import GateResult, read_verdict, reference_window, run_gate

__all__ = ["Bound", "GateConfig", "GateResult", "gate_config", "read_verdict", "reference_window", "run_gate"]
