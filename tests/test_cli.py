"""The ``cas-xr`` command line: in-process through ``main`` and as the installed script."""

from __future__ import annotations

import csv
import io
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import cas_xr as cas
from cas_xr import cli
from cas_xr.errors import RequestTimeoutError
from cas_xr.sample import sample_catchments_path

POINT = '{"type": "Point", "coordinates": [-96.5, 39.0]}'
CATCHMENTS = sample_catchments_path()
FEATURES = json.loads(CATCHMENTS.read_text("utf-8"))["features"]
IDS = [f["properties"]["id"] for f in FEATURES]
SAMPLE_DATASETS = {
    "sample:elevation": "m",
    "sample:clay_0-5cm": "g/kg",
    "sample:land_cover": "class",
    "sample:precipitation": "mm/month",
}
SCRIPT = Path(sys.executable).with_name("cas-xr")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


# -- extract ------------------------------------------------------------------------------


def test_extract_inline_point_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "extract", POINT, "-d", "sample:elevation")
    assert code == 0
    assert err == ""
    (result,) = json.loads(out)["results"]
    assert isinstance(result["value"], float)
    assert math.isfinite(result["value"])
    assert result["units"] == "m"
    assert result["quality"] == "good"


@pytest.mark.parametrize("prefix", ["@", ""])
def test_extract_feature_from_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, prefix: str
) -> None:
    path = tmp_path / "k02.geojson"
    path.write_text(json.dumps(FEATURES[1]))
    code, out, _ = run(capsys, "extract", f"{prefix}{path}", "-d", "sample:clay_0-5cm")
    assert code == 0
    response = json.loads(out)  # one Feature: a single AttributeResponse, not a batch
    assert [r["units"] for r in response["results"]] == ["g/kg"]


def test_extract_collection_to_csv(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ("extract", str(CATCHMENTS), "-d", "sample:elevation", "-d", "sample:clay_0-5cm")
    code, out, err = run(capsys, *argv, "--format", "csv")
    assert code == 0
    rows = csv_rows(out)
    assert len(rows) == len(FEATURES) * 2
    assert [r["id"] for r in rows[::2]] == IDS
    assert [r["dataset_id"] for r in rows[:2]] == ["sample:elevation", "sample:clay_0-5cm"]
    assert rows[0]["name"] == FEATURES[0]["properties"]["name"]
    assert {r["units"] for r in rows} == {"m", "g/kg"}
    assert {r["quality"] for r in rows if r["id"] == "K06"} == {"partial"}
    # the partial results are reported from the response warnings, not as Python warnings
    assert "K06: sample:elevation: partial" in err


def test_extract_csv_to_output_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out_path = tmp_path / "attributes.csv"
    code, out, err = run(
        capsys, "extract", str(CATCHMENTS), "-d", "sample:elevation", "-o", str(out_path)
    )
    assert code == 0
    assert out == ""
    assert f"wrote csv to {out_path}" in err
    rows = csv_rows(out_path.read_text())
    assert [r["id"] for r in rows] == IDS
    assert all(r["error"] == "" for r in rows)


def test_extract_collection_to_geoparquet(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    import geopandas as gpd
    import shapely

    out_path = tmp_path / "attributes.parquet"
    argv = ("extract", str(CATCHMENTS), "-d", "sample:elevation", "-d", "sample:precipitation")
    code, _, _ = run(capsys, *argv, "--output", str(out_path))
    assert code == 0
    frame = gpd.read_parquet(out_path)
    assert len(frame) == len(FEATURES) * 2
    assert frame.crs.to_epsg() == 4326
    assert list(frame["id"][::2]) == IDS
    assert frame["value"].dtype == "float64"
    assert set(frame["units"]) == {"m", "mm/month"}
    expected = shapely.geometry.shape(FEATURES[3]["geometry"])
    assert frame.geometry.iloc[6].equals(expected)  # K04, first dataset
    assert frame["timestamp"].notna().sum() == len(FEATURES)  # precipitation only


def test_extract_distribution_values_are_json(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ("extract", str(CATCHMENTS), "-d", "sample:land_cover", "--format", "csv")
    code, out, _ = run(capsys, *argv, "--aggregation", "distribution")
    assert code == 0
    shares = json.loads(csv_rows(out)[0]["value"])
    assert "cropland" in shares
    assert sum(shares.values()) == pytest.approx(1.0)


def test_extract_splits_collections_into_batches(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sizes: list[int] = []
    real = cas.batch_extract_sync

    def counting(request: cas.BatchAttributeRequest) -> cas.BatchAttributeResponse:
        sizes.append(len(request.geometries))
        return real(request)

    monkeypatch.setattr(cli, "_BATCH_SIZE", 3)
    monkeypatch.setattr(cas, "batch_extract_sync", counting)
    code, out, _ = run(capsys, "extract", str(CATCHMENTS), "-d", "sample:elevation")
    assert code == 0
    assert sizes == [3, 3, 1]
    batch = json.loads(out)
    assert batch["total_geometries"] == len(FEATURES)
    hashes = [cas.Geometry.model_validate(f).geometry_hash() for f in FEATURES]
    assert [r["geometry_hash"] for r in batch["responses"]] == hashes


def test_extract_geometry_crs(capsys: pytest.CaptureFixture[str]) -> None:
    import pyproj

    x, y = pyproj.Transformer.from_crs(4326, 3857, always_xy=True).transform(-96.5, 39.0)
    projected = json.dumps({"type": "Point", "coordinates": [x, y]})
    values = []
    for geometry, crs in ((POINT, "EPSG:4326"), (projected, "EPSG:3857")):
        code, out, _ = run(
            capsys, "extract", geometry, "-d", "sample:elevation", "--geometry-crs", crs
        )
        assert code == 0
        values.append(json.loads(out)["results"][0]["value"])
    assert values[0] == pytest.approx(values[1])


def test_extract_runtime_failure_gives_missing_result(capsys: pytest.CaptureFixture[str]) -> None:
    nowhere = '{"type": "Point", "coordinates": [0, 0]}'
    code, out, err = run(capsys, "extract", nowhere, "-d", "sample:elevation")
    assert code == 0
    (result,) = json.loads(out)["results"]
    assert result["value"] is None
    assert result["quality"] == "missing"
    assert result["error"]["kind"] == "no_data"
    assert "#0: sample:elevation: failed (no_data)" in err


def test_debug_shows_python_warnings(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "--debug", "extract", str(CATCHMENTS), "-d", "sample:elevation")
    assert code == 0
    assert "python warning: QualityWarning: 1 of 7 results are not GOOD" in err


# -- catalog and versions -----------------------------------------------------------------


def test_providers(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "providers")
    assert code == 0
    line = next(x for x in out.splitlines() if x.startswith("sample "))
    assert line.split()[:3] == ["sample", "stac_static", str(len(SAMPLE_DATASETS))]
    assert "cas_xr sample data" in line


def test_datasets_of_a_provider(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "datasets", "--provider", "sample")
    assert code == 0
    lines = {x.split()[0]: x.split() for x in out.splitlines()[2:]}
    assert set(lines) == set(SAMPLE_DATASETS)
    for dataset_id, units in SAMPLE_DATASETS.items():
        assert lines[dataset_id][1] == units
    assert lines["sample:land_cover"][2:6] == ["categorical", "static", "100", "m"]
    assert lines["sample:precipitation"][3] == "monthly"
    licenses = {ds.id: ds.license for ds in cas.list_datasets("sample")}
    assert {k: fields[-1] for k, fields in lines.items()} == licenses


def test_datasets_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "datasets", "--provider", "sample", "--json")
    assert code == 0
    datasets = [cas.Dataset.model_validate(d) for d in json.loads(out)]
    assert {d.id for d in datasets} == set(SAMPLE_DATASETS)


@pytest.mark.parametrize("argv", [["version"], ["--version"]])
def test_version(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    code, out, _ = run(capsys, *argv)
    assert code == 0
    assert out.strip() == f"cas-xr {cas.__version__}"


def test_show_versions_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "show-versions")
    assert code == 0
    assert "cas-xr: " in out
    assert "pydantic: " in out
    code, out, _ = run(capsys, "--help")
    assert code == 0
    assert "extract" in out
    assert "demo" in out


# -- demo ---------------------------------------------------------------------------------


def test_demo_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "demo")
    assert code == 0
    table = [line.split() for line in out.splitlines() if line[:1] in {"K", "U"}]
    assert [row[0] for row in table[::5]] == IDS
    majority = next(row for row in table if row[0] == "K02" and row[2] == "majority")
    assert majority[3:5] == ["herbaceous_wetland", "(90)"]
    assert "%" in next(row for row in table if row[2] == "distribution")[4]
    assert "K06: sample:precipitation: partial" in err


def test_demo_console_script() -> None:
    assert SCRIPT.exists(), f"{SCRIPT} not installed; run `pip install -e .`"
    done = subprocess.run([str(SCRIPT), "demo"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    for dataset_id, units in SAMPLE_DATASETS.items():
        assert dataset_id in done.stdout
        assert f" {units} " in done.stdout
    for flag in ("good", "partial"):
        assert f" {flag} " in done.stdout


def test_python_dash_m() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "cas_xr", "version"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0
    assert done.stdout.strip() == f"cas-xr {cas.__version__}"


# -- errors -------------------------------------------------------------------------------

ELEVATION = ("-d", "sample:elevation")
OPEN_RING = '{"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1]]]}'


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["extract", '{"type": "Point",', *ELEVATION], 2, "invalid JSON in the inline GEOMETRY"),
        (["extract", "missing.geojson", *ELEVATION], 2, "'missing.geojson' not found"),
        (["extract", "@missing.geojson", *ELEVATION], 2, "'missing.geojson' not found"),
        (["extract", "[1, 2]", *ELEVATION], 2, "is not a GeoJSON object"),
        (
            ["extract", '{"type": "LineString", "coordinates": [[0, 0], [1, 1]]}', *ELEVATION],
            2,
            "geometry type 'LineString' is not supported",
        ),
        (
            ["extract", OPEN_RING, *ELEVATION],
            2,
            "the ring is not closed",
        ),
        (
            ["extract", '{"type": "Point", "coordinates": [200, 0]}', *ELEVATION],
            2,
            "outside longitude -180..180",
        ),
        (
            ["extract", '{"type": "FeatureCollection", "features": []}', *ELEVATION],
            2,
            "the FeatureCollection has no features",
        ),
        (["extract", POINT, "-d", "elevation"], 2, "not of the form 'provider:name'"),
        (["extract", POINT, "-d", "sample:nope"], 2, "provider 'sample' has no dataset 'nope'"),
        (["extract", POINT, "-d", "nope:x"], 2, "unknown provider 'nope'; known providers:"),
        (["extract", POINT, *ELEVATION, "--time-range", "2022"], 2, "is not START/END"),
        (
            ["extract", POINT, *ELEVATION, "--time-range", "2023-01-01/2022-01-01"],
            2,
            "is after its end",
        ),
        (
            ["extract", POINT, *ELEVATION, "--time-range", "soon/2022-01-01"],
            2,
            "start: Input should be a valid datetime",
        ),
        (["extract", POINT, *ELEVATION, "--aggregation", "avg"], 2, "invalid choice: 'avg'"),
        (["extract", POINT, *ELEVATION, "--geometry-crs", "EPSG:0"], 2, "is not recognised"),
        (["extract", POINT, *ELEVATION, "--format", "parquet"], 2, "give --output PATH"),
        (["extract", POINT, *ELEVATION, "-o", "/no/such/dir/x.csv"], 2, "does not exist"),
        (["extract", POINT], 2, "required: -d/--dataset"),
        (["datasets", "--provider", "nope"], 2, "unknown provider 'nope'; known providers: "),
        ([], 2, "required: COMMAND"),
        (["frobnicate"], 2, "invalid choice: 'frobnicate'"),
    ],
)
def test_input_errors(
    capsys: pytest.CaptureFixture[str], argv: list[str], code: int, message: str
) -> None:
    status, out, err = run(capsys, *argv)
    assert status == code
    assert out == ""
    assert err.startswith("error: ")
    assert err.count("\n") == 1
    assert message in err


def test_invalid_json_in_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "broken.geojson"
    path.write_text('{"type": "Feature", "geometry": ')
    code, _, err = run(capsys, "extract", f"@{path}", *ELEVATION)
    assert code == 2
    assert f"error: invalid JSON in '{path}'" in err


@pytest.mark.parametrize(
    ("batch_size", "where"),
    [(1000, "BatchAttributeRequest: geometries.2: "), (2, "features 2-2: invalid Batch")],
)
def test_invalid_feature_in_collection(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    batch_size: int,
    where: str,
) -> None:
    monkeypatch.setattr(cli, "_BATCH_SIZE", batch_size)
    features = [*FEATURES[:2], {"type": "Feature", "properties": {}, "geometry": None}]
    path = tmp_path / "three.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    code, _, err = run(capsys, "extract", str(path), *ELEVATION)
    assert code == 2
    assert where in err
    assert "the GeoJSON Feature has no geometry" in err


def test_vertex_limit(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    n = cas.get_settings().max_polygon_vertices + 1
    ring = [
        [-96.5 + 0.01 * math.cos(2 * math.pi * i / n), 39.0 + 0.01 * math.sin(2 * math.pi * i / n)]
        for i in range(n)
    ]
    path = tmp_path / "detailed.geojson"
    path.write_text(json.dumps({"type": "Polygon", "coordinates": [[*ring, ring[0]]]}))
    code, _, err = run(capsys, "extract", f"@{path}", *ELEVATION)
    assert code == 2
    assert "more than max_polygon_vertices" in err


def test_runtime_error_exits_1(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def too_slow(request: Any) -> None:
        raise RequestTimeoutError("the request took longer than request_timeout_s (1 s)")

    monkeypatch.setattr(cas, "extract_sync", too_slow)
    code, _, err = run(capsys, "extract", POINT, *ELEVATION)
    assert code == 1
    assert err == "error: the request took longer than request_timeout_s (1 s)\n"


def test_unexpected_error_has_traceback_only_with_debug(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(request: Any) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(cas, "extract_sync", broken)
    code, _, err = run(capsys, "extract", POINT, *ELEVATION)
    assert code == 1
    assert err == "error: unexpected RuntimeError: boom (rerun with --debug)\n"
    assert cli.main(["--debug", "extract", POINT, *ELEVATION]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err
    assert err.endswith("error: unexpected RuntimeError: boom (rerun with --debug)\n")
