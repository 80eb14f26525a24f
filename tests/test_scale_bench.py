"""The scale benchmark runs at smoke size: every tool completes and agrees (no timings)."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"


@pytest.mark.slow
def test_scale_benchmark_smoke(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # spawned measuring processes import it too
    bench = importlib.import_module("scale_bench")
    rows = bench.main(["--size", "smoke", "--data", str(tmp_path)])
    assert "## batch extraction, size=smoke" in capsys.readouterr().out
    assert all(not row["error"] for row in rows), [r for r in rows if r["error"]]
    by_tool = {row["tool"]: row for row in rows}
    ours = [row for tool, row in by_tool.items() if tool.startswith("cas_xr")]
    assert len(ours) == 4
    assert all(row["max_rel_diff_mean"] < 1e-9 for row in ours), ours
    catchments = bench.SIZES["smoke"]["catchments"] * len(bench.DATASETS)
    assert by_tool["cas_xr threads, persistent cache cold"]["computed"] == catchments
    assert by_tool["cas_xr threads, persistent cache warm"]["computed"] == 0
    assert by_tool["xvec zonal_stats (exactextract)"]["max_rel_diff_mean"] < 1e-6
    assert all(np.isfinite(row["wall_s"]) and row["peak_worker_mb"] > 0 for row in rows)
