"""The benchmark comparison's arithmetic: medians, ratios and verdicts (no benchmark runs).

Running ``benchmarks/compare.py`` itself takes minutes even at smoke size (two checkouts,
a warm-up and three rounds per revision); its usage is in ``benchmarks/README.md``.
"""

from __future__ import annotations

import importlib
import json
import math
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"


@pytest.fixture
def compare(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    return importlib.import_module("compare")


def _zonal_run(cas_s: float, read_s: float, ee_s: float | None = None) -> list[dict[str, Any]]:
    """The rows of one zonal run: one workload, the read row repeated as the runner does."""
    nan = float("nan")
    rows = [
        {"workload": "W1a", "tool": "cas_xr exact", "wall_s": cas_s,
         "x_exactextract": cas_s / ee_s if ee_s else nan, "max_rel_diff_mean": 1e-12,
         "error": ""},
        {"workload": "w1", "tool": "read+decode", "wall_s": read_s, "x_exactextract": 0.1,
         "max_rel_diff_mean": nan, "error": ""},
        {"workload": "W1b", "tool": "cas_xr center", "wall_s": 2.0, "x_exactextract": nan,
         "max_rel_diff_mean": 1e-3, "error": ""},  # centres are not meant to equal exact
        {"workload": "w1", "tool": "read+decode", "wall_s": read_s, "x_exactextract": 0.2,
         "max_rel_diff_mean": nan, "error": ""},
    ]  # fmt: skip
    if ee_s:
        rows.append(
            {"workload": "W1a", "tool": "exactextract (raster-sequential)", "wall_s": ee_s,
             "x_exactextract": 1.0, "max_rel_diff_mean": 0.0, "error": ""}
        )  # fmt: skip
    return rows


def test_medians_keep_repeated_rows_apart_and_skip_unmeasured_ratios(compare: ModuleType):
    runs = [_zonal_run(10.0, 1.0, ee_s=20.0), _zonal_run(30.0, 3.0), _zonal_run(11.0, 2.0)]
    table = list(compare._median_rows(compare.BENCHES["zonal"], runs).values())
    assert [(r["workload"], r["tool"], r["n"]) for r in table] == [
        ("W1a", "cas_xr exact", 3),
        ("w1", "read+decode", 3),
        ("W1b", "cas_xr center", 3),
        ("w1", "read+decode", 3),
        ("W1a", "exactextract (raster-sequential)", 1),  # an anchor of round 1 only
    ]
    assert table[0]["wall_s"] == 11.0  # the median, not the mean (17)
    assert table[0]["x_exactextract"] == 0.5  # from the one run that had exactextract
    assert math.isnan(table[2]["x_exactextract"])
    assert (table[1]["x_exactextract"], table[3]["x_exactextract"]) == (0.1, 0.2)


def test_comparison_judges_only_cas_xr_rows_against_the_threshold(compare: ModuleType):
    bench = compare.BENCHES["zonal"]
    base = [_zonal_run(10.0, 1.0, ee_s=20.0), _zonal_run(10.0, 1.0), _zonal_run(10.0, 1.0)]
    head = [_zonal_run(10.9, 5.0, ee_s=40.0), _zonal_run(12.0, 5.0), _zonal_run(11.0, 5.0)]
    rows = compare._comparison(bench, base, head, 1.10)
    assert [(r["tool"], r["verdict"]) for r in rows] == [
        ("cas_xr exact", "PASS"),  # 11.0 / 10.0; anchors and read rows are not judged
        ("cas_xr center", "PASS"),
    ]
    assert rows[0]["head/base"] == pytest.approx(1.10)
    slower = compare._comparison(bench, base, head, 1.05)
    assert [r["verdict"] for r in slower] == ["FAIL", "PASS"]


def test_comparison_fails_a_row_that_errored_disagreed_or_is_missing(compare: ModuleType):
    bench = compare.BENCHES["zonal"]
    base = [_zonal_run(10.0, 1.0) for _ in range(3)]
    head = [_zonal_run(5.0, 1.0) for _ in range(3)]
    head[1][0] = {**head[1][0], "max_rel_diff_mean": 1e-3}
    head[2][2] = {**head[2][2], "wall_s": float("nan"), "error": "ValueError: boom"}
    rows = {r["tool"]: r for r in compare._comparison(bench, base, head, 1.10)}
    assert rows["cas_xr exact"]["verdict"] == "FAIL"
    assert rows["cas_xr exact"]["problems"] == "head: max_rel_diff_mean=0.001"
    assert rows["cas_xr center"]["verdict"] == "FAIL"
    assert "ValueError: boom" in rows["cas_xr center"]["problems"]
    gone = compare._comparison(bench, base, [r[:1] for r in head], 1.10)
    assert [(r["tool"], r["verdict"], r["problems"]) for r in gone][1] == (
        "cas_xr center",
        "FAIL",
        "missing in head",
    )


def test_a_row_only_the_head_can_run_is_new_not_failed(compare: ModuleType):
    bench = compare.BENCHES["zonal"]
    base = [_zonal_run(10.0, 1.0) for _ in range(3)]
    head = [_zonal_run(10.0, 1.0) for _ in range(3)]
    for rows in base:  # a statistic the base does not know yet
        rows[2] = {**rows[2], "wall_s": float("nan"), "error": "InvalidStatisticError: 'x'"}
    rows = {r["tool"]: r for r in compare._comparison(bench, base, head, 1.10)}
    assert rows["cas_xr center"]["verdict"] == "NEW"
    gone = compare._comparison(bench, [r[:1] for r in base], head, 1.10)
    assert [r["verdict"] for r in gone] == ["PASS", "FAIL"]  # missing in base: not new
    head[0][2] = {**head[0][2], "error": "ValueError: boom"}  # ... nor failing in the head
    rows = {r["tool"]: r for r in compare._comparison(bench, base, head, 1.10)}
    assert rows["cas_xr center"]["verdict"] == "FAIL"


def test_service_rows_are_judged_on_wall_time_and_latency_and_lost_jobs(compare: ModuleType):
    bench = compare.BENCHES["service"]

    def run(wall: float, lost: int = 0) -> list[dict[str, Any]]:
        return [{"requests": 200, "errors": 0, "lost_jobs": lost, "p50_s": wall / 2,
                 "p95_s": wall * 0.95, "wall_s": wall}]  # fmt: skip

    rows = compare._comparison(bench, [run(50), run(60), run(55)], [run(54), run(58), run(56)], 1.1)
    assert [(r["column"], r["verdict"]) for r in rows] == [
        ("wall_s", "PASS"),
        ("p50_s", "PASS"),
        ("p95_s", "PASS"),
    ]
    lost = compare._comparison(bench, [run(50)], [run(50, lost=2)], 1.1)
    assert {r["verdict"] for r in lost} == {"FAIL"}
    assert lost[0]["problems"] == "head: lost_jobs=2"


def test_markdown_and_command_line(compare: ModuleType):
    text = compare.markdown([{"tool": "a|b", "wall_s": 12.345, "diff": 3e-12, "x": float("nan")}])
    assert text.splitlines() == ["| tool | wall_s | diff | x |", "|---|---|---|---|",
                                 "| a\\|b | 12.35 | 3e-12 | - |"]  # fmt: skip
    with pytest.raises(SystemExit):
        compare.main(["--bench", "zonal,raster"])  # raster_bench is not compared


def test_report_again_from_saved_runs(compare: ModuleType, tmp_path: Path):
    def run(rev: str, tag: str, wall: float) -> dict[str, Any]:
        row = {"requests": 200, "errors": 0, "lost_jobs": 0, "p50_s": 1.0, "p95_s": 2.0,
               "wall_s": wall}  # fmt: skip
        return {"bench": "service", "rev": rev, "tag": tag, "seconds": wall, "rows": [row]}

    saved = {
        "header": "base x = 1, head y = 2",
        "runs": [run("base", "warmup", 99.0), run("head", "warmup", 1.0)]
        + [
            run(rev, f"r{i}", wall)
            for i in (1, 2, 3)
            for rev, wall in (("base", 10.0), ("head", 12.0))
        ],
    }
    (tmp_path / "runs.json").write_text(json.dumps(saved), encoding="utf-8")
    again = ["--from-runs", str(tmp_path / "runs.json")]
    status = compare.main([*again, "--bench", "service", "--out", str(tmp_path / "again")])
    report = (tmp_path / "again" / "report.md").read_text(encoding="utf-8")
    assert status == 1  # wall time 1.2x base; the warm-up runs are not counted
    assert "## service: base, median of 3 runs" in report
    assert (
        "| wall_s | 10.00 | 12.00 | 1.20 | FAIL | 10.00 10.00 10.00 | 12.00 12.00 12.00 |" in report
    )
    assert compare.main([*again, "--threshold", "1.25"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again", "runs.json"]  # no --out
    (tmp_path / "runs.json").write_text(json.dumps(saved["runs"]), encoding="utf-8")
    assert compare.main(again) == 1  # the first version's runs.json: the runs alone
