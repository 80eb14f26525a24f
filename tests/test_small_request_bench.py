"""The small-request benchmark runs at smoke size: no cache hits, agreement (no timings)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"


@pytest.mark.filterwarnings("ignore::cas_xr.errors.QualityWarning")
def test_small_request_bench_smoke(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    bench = importlib.import_module("small_request_bench")
    rows = bench.main(["--calls", "4", "--rounds", "2"])
    assert "## small requests" in capsys.readouterr().out
    ours, anchor = rows
    assert ours["calls"] == anchor["calls"] == 8 and ours["cache_hits"] == 0
    assert ours["max_abs_diff_mean"] < 1e-6  # means of a few hundred metres


@pytest.mark.filterwarnings("ignore::cas_xr.errors.QualityWarning")
@pytest.mark.parametrize("dataset", ["netcdf", "geotiff"])
def test_small_request_bench_smoke_on_a_local_file(
    dataset: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    bench = importlib.import_module("small_request_bench")
    rows = bench.main(["--calls", "3", "--rounds", "1", "--dataset", dataset])
    assert f"## small requests ({dataset})" in capsys.readouterr().out
    ours, anchor = rows
    assert ours["calls"] == anchor["calls"] == 3 and ours["cache_hits"] == 0
    assert ours["max_abs_diff_mean"] < 1e-6  # exactextract reads the same file
