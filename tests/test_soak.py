"""CI's soak: three days of ``dea run`` as the schedule starts them, the second one broken (every
``brand`` null): exactly that day fails, the next day completes without it, the champion never
moves to a worse model, nothing is left running or half-written, and after ``dea gc --apply`` the
lake is within its retention bound (``benchmarks/soak.py``; the committed two-week run is
``benchmarks/results/soak.json``)."""

from __future__ import annotations

import json

import pytest


@pytest.mark.integration
@pytest.mark.slow
def test_three_days_with_a_bad_one_in_the_middle(tmp_path):
    import soak           # benchmarks/ is on sys.path (tests/conftest.py)

    out = tmp_path / "soak.json"
    code = soak.main(["--days", "3", "--rows", "4000", "--model", "fm", "--epochs", "1", "--bad", "gate@2",
                      "--gc-every", "3", "--home", str(tmp_path / "soak"), "--out", str(out)])
    result = json.loads(out.read_text())

    assert code == 0, result["problems"]
    assert [d["status"] for d in result["days"]] == ["Completed", "Failed", "Completed"]
    assert [d["verdict"] for d in result["days"]] == ["pass", "fail", "pass"]
    assert result["leftover_processes"] == [] and result["leftover_temporaries"] == []
    last = result["days"][-1]
    assert "gc" in last and last["lake_mb"] <= last["bound_mb"]
    assert all(d["champion"] == "v0001" or "promotion" in d for d in result["days"])
