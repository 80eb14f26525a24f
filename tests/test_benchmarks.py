"""Benchmarks run at smoke size in CI: they must complete and agree (timings not asserted)."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"


@pytest.mark.slow
def test_zonal_benchmark_smoke(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # spawned measuring processes import it too
    rows = importlib.import_module("zonal_bench").main(["--size", "smoke", "--data", str(tmp_path)])
    assert "## zonal statistics" in capsys.readouterr().out
    assert all(not row["error"] for row in rows), [r for r in rows if r["error"]]
    tools = {(r["workload"], r["tool"]) for r in rows}
    for workload in ("W1a", "W1b", "W1c", "W2"):
        assert {(workload, "cas_xr exact"), (workload, "exactextract (raster-sequential)")} <= tools
    exact = [
        r
        for r in rows
        if r["tool"] in {"cas_xr exact", "cas_xr points", "cas_xr callable (user mean)"}
    ]
    assert all(r["max_rel_diff_mean"] < 1e-6 for r in exact), exact
    assert all(np.isfinite(r["wall_s"]) for r in rows)
