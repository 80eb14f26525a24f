"""The raster benchmark runs at smoke size: every tool completes and agrees (no timings)."""

from __future__ import annotations

import importlib
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"


@pytest.mark.slow
def test_raster_benchmark_smoke(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
):
    if shutil.which("gdal_translate") is None:
        message = "GDAL's command-line tools are missing (apt install gdal-bin)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true: {message}")
        pytest.skip(message)
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # spawned measuring processes import it too
    bench = importlib.import_module("raster_bench")
    rows = bench.main(["--size", "smoke", "--data", str(tmp_path)])
    assert "## raster mosaic" in capsys.readouterr().out
    assert all(not row["error"] for row in rows), [r for r in rows if r["error"]]
    assert [r["tool"] for r in rows] == list(bench.TOOLS)
    assert all(r["cells_differing"] == "0" for r in rows), rows  # one mosaic, every tool
    assert all(np.isfinite(r["wall_s"]) for r in rows)
    http = {r["tool"]: r for r in rows}[bench.HTTP_TOOL]  # counted at its server
    assert http["requests"] > 0 and http["mb_read"] > 0, http
