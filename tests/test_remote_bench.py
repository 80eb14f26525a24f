"""The remote-reads benchmark runs at smoke size: every tool completes and agrees (no timings)."""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

from cas_xr.testing import MapServerNotFoundError, find_mapserv

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"


@pytest.mark.slow
def test_remote_benchmark_smoke(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
):
    skip = []
    try:
        find_mapserv()
    except MapServerNotFoundError as err:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but the WCS test server cannot start: {err}")
        skip = ["wcs"]
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # spawned measuring processes import it too
    bench = importlib.import_module("remote_bench")
    out = tmp_path / "rows.json"
    argv = ["--size", "smoke", "--data", str(tmp_path), "--json", str(out), "--skip", *skip]
    rows = bench.main(argv)
    assert "## remote reads, size=smoke" in capsys.readouterr().out
    assert all(not row["error"] for row in rows), [r for r in rows if r["error"]]
    tools = [t for t, key in bench.TOOLS.items() if key not in skip]
    workloads = [f"{n:,} polygons, 20 ms" for n in bench.SIZES["smoke"]["polygons"]]
    second = "cas_xr local, second call (1 tile)"  # once, after the first set
    assert [(r["workload"], r["tool"]) for r in rows] == [
        (w, t) for k, w in enumerate(workloads) for t in tools if t != second or k == 0
    ]
    (again,) = [row for row in rows if row["tool"] == second]
    assert 1 <= again["requests"] <= 4 and again["mb_read"] >= again["mb_floor"] > 0, again
    for row in rows:
        if row is again:
            continue
        assert np.isfinite(row["wall_s"]), row
        assert row["requests"] > 0 and row["mb_read"] > 0 and row["peak_in_flight"] >= 1, row
        assert row["mb_floor"] > 0, row
        assert row["agreement"] < 1e-6, row  # means of ~100-150 against exactextract's
        if row["tool"] != "cas_xr wcs":  # the file's tiles: nobody reads less than them
            assert row["mb_read"] >= row["mb_floor"], row
    assert json.loads(out.read_text(encoding="utf-8"))["rows"][0]["tool"] == tools[0]
