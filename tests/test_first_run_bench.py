"""The first-run benchmark runs at smoke size: every measurement completes (no timings)."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"


@pytest.mark.slow
def test_first_run_benchmark_smoke(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    bench = importlib.import_module("first_run_bench")
    rows = bench.main(["--size", "smoke", "--data", str(tmp_path)])
    assert "## first run, size=smoke" in capsys.readouterr().out
    assert all(not row["error"] for row in rows), [r for r in rows if r["error"]]
    by_name = {row["measurement"]: row for row in rows}
    # a first run compiles the kernels (wherever numba's cache is), the next one does not
    assert by_name["first demo, NUMBA_CACHE_DIR unset"]["compiled"] == "yes"
    assert by_name["first demo, NUMBA_CACHE_DIR empty"]["compiled"] == "yes"
    assert by_name["next demo (cached kernels)"]["compiled"] == "no"
    # where the next run looks for them: beside the installed package, or NUMBA_CACHE_DIR
    for name in ("first demo, NUMBA_CACHE_DIR unset", "first demo, NUMBA_CACHE_DIR empty"):
        assert all(int(n) > 0 for n in by_name[name]["cache_files"].split()), by_name[name]
    assert by_name["anchor: import xarray, rioxarray, exactextract"]["x_anchor"] == 1.0
    assert all(np.isfinite(row["done_s"]) for row in rows)
    demos = [row for row in rows if "demo" in row["measurement"]]
    assert all(row["first_output_s"] < row["done_s"] for row in demos), demos
