"""The service load benchmark runs at smoke size: no errors, no lost jobs (timings not asserted)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"


def test_service_load_smoke(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    rows = importlib.import_module("service_load").main(["--requests", "20", "--timeout", "120"])
    assert "## service load" in capsys.readouterr().out
    assert [row["tool"] for row in rows] == ["cas_xr", "noop server"]  # the generator's floor
    for row in rows:
        assert row["errors"] == 0 and row["lost_jobs"] == 0 and row["jobs_successful"] == 20
        assert row["connections_opened"] == 0  # every user's connections were warm
        assert row["submit_p95_ms"] > 0 and row["client_queue_p95_ms"] >= 0
    assert rows[0]["extract_sync_per_s"] > 0  # the anchor


def test_service_load_two_client_processes(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    argv = ["--requests", "12", "--users", "4", "--client-processes", "2", "--loop", "asyncio"]
    (row,) = importlib.import_module("service_load").main([*argv, "--no-anchor", "--no-baseline"])
    assert (row["client_processes"], row["errors"], row["lost_jobs"]) == (2, 0, 0)
    assert row["jobs_successful"] == 12 and row["connections_opened"] == 0
