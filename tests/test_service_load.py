"""The service load benchmark runs at smoke size: no errors, no lost jobs (timings not asserted)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"


def test_service_load_smoke(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    row = importlib.import_module("service_load").main(["--requests", "20", "--timeout", "120"])
    assert "## service load" in capsys.readouterr().out
    assert row["errors"] == 0 and row["lost_jobs"] == 0 and row["jobs_successful"] == 20
