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
    "sample:slope": "degree",
    "sample:slope_m_per_km": "m/km",
    "sample:aspect": "degree",
    "sample:prcp": "mm/day",
    "sample:tmin": "degC",
    "sample:tmax": "degC",
}
#: what ``cas-xr demo`` computes (the other sample datasets feed the ``sample`` attribute set)
DEMO_DATASETS = {
    k: SAMPLE_DATASETS[k]
    for k in ("sample:elevation", "sample:clay_0-5cm", "sample:land_cover", "sample:precipitation")
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


@pytest.fixture(autouse=True)
def _no_progress_bars() -> None:
    cas.configure(progress=False)  # stderr holds only the command's own lines


def test_extract_inline_point_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "extract", POINT, "-d", "sample:elevation")
    assert code == 0
    assert err == ""
    document = json.loads(out)
    (row,) = document["rows"]
    assert row["feature"] == 0
    assert isinstance(row["sample:elevation_mean"], float)
    assert math.isfinite(row["sample:elevation_mean"])
    assert row["sample:elevation_quality"] == "good"
    assert row["sample:elevation_pixel_count"] == 1
    assert document["cas_xr"]["datasets"]["sample:elevation"]["units"] == "m"


@pytest.mark.parametrize("prefix", ["@", ""])
def test_extract_feature_from_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, prefix: str
) -> None:
    path = tmp_path / "k02.geojson"
    path.write_text(json.dumps(FEATURES[1]))
    code, out, _ = run(capsys, "extract", f"{prefix}{path}", "-d", "sample:clay_0-5cm")
    assert code == 0
    document = json.loads(out)
    (row,) = document["rows"]  # the feature's properties are columns
    assert (row["id"], row["name"]) == ("K02", FEATURES[1]["properties"]["name"])
    assert document["cas_xr"]["datasets"]["sample:clay_0-5cm"]["units"] == "g/kg"


def test_extract_collection_to_csv(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ("extract", str(CATCHMENTS), "-d", "sample:elevation", "-d", "sample:clay_0-5cm")
    code, out, err = run(capsys, *argv, "--format", "csv")
    assert code == 0
    rows = csv_rows(out)
    assert len(rows) == len(FEATURES)  # one row per geometry, every dataset in columns
    assert [r["id"] for r in rows] == IDS
    assert [r["feature"] for r in rows] == [str(i) for i in range(len(FEATURES))]
    assert rows[0]["name"] == FEATURES[0]["properties"]["name"]
    assert {"sample:elevation_mean", "sample:clay_0-5cm_coverage_fraction"} <= set(rows[0])
    k06 = rows[IDS.index("K06")]
    assert k06["sample:elevation_quality"] == k06["sample:clay_0-5cm_quality"] == "partial"
    assert {r["sample:elevation_quality"] for r in rows if r["id"] != "K06"} == {"good"}
    # the pipeline's warnings go to stderr as lines, not as Python warnings
    assert err.startswith("warnings (1):\n  2 of 14 results are not GOOD")
    assert "sample:elevation: partial: 1 (e.g. coverage 0.444" in err


def test_extract_is_a_view_of_extract_table(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import geopandas as gpd

    calls: list[int] = []
    real = cas.extract_table

    def counting(frame: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(len(frame))
        return real(frame, *args, **kwargs)

    monkeypatch.setattr(cas, "extract_table", counting)
    code, out, _ = run(capsys, "extract", str(CATCHMENTS), "-d", "sample:elevation")
    assert code == 0
    assert calls == [len(FEATURES)]  # one call for the whole collection
    with pytest.warns(cas.errors.QualityWarning):
        expected = real(gpd.read_file(CATCHMENTS), "sample:elevation")
    rows = json.loads(out)["rows"]
    assert [r["sample:elevation_mean"] for r in rows] == expected["sample:elevation_mean"].tolist()


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
    assert all(r["sample:elevation_mean"] for r in rows)


def test_extract_temporal_to_geoparquet_is_long(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    import geopandas as gpd
    import pandas as pd
    import shapely

    out_path = tmp_path / "attributes.parquet"
    argv = ("extract", str(CATCHMENTS), "-d", "sample:elevation", "-d", "sample:precipitation")
    code, _, _ = run(capsys, *argv, "--time-range", "2022-03-01/2022-05-31", "-o", str(out_path))
    assert code == 0
    frame = gpd.read_parquet(out_path)
    steps = pd.to_datetime(["2022-03-01", "2022-04-01", "2022-05-01"])
    assert len(frame) == len(FEATURES) * len(steps)  # one row per geometry and time step
    assert list(frame["time"][:3]) == list(steps)
    assert list(frame["id"][::3]) == IDS
    assert frame.crs.to_epsg() == 4326
    assert frame["sample:precipitation_mean"].dtype.kind == "f"
    static = frame.groupby("feature")["sample:elevation_mean"].nunique()
    assert (static == 1).all()  # a static dataset repeats along time
    expected = shapely.geometry.shape(FEATURES[3]["geometry"])
    assert frame.geometry.iloc[9].equals(expected)  # K04, first step
    metadata = frame.attrs["cas_xr"]
    assert metadata["datasets"]["sample:precipitation"]["units"] == "mm/month"
    assert metadata["summary"]["geometries"] == len(FEATURES)


def test_extract_geojson_keeps_geometries_and_metadata(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out_path = tmp_path / "attributes.geojson"
    code, _, _ = run(
        capsys, "extract", str(CATCHMENTS), "-d", "sample:elevation", "-o", str(out_path)
    )
    assert code == 0
    document = json.loads(out_path.read_text())
    assert document["type"] == "FeatureCollection"
    assert [f["properties"]["id"] for f in document["features"]] == IDS
    assert [f["geometry"] for f in document["features"]] == [f["geometry"] for f in FEATURES]
    assert document["cas_xr"]["datasets"]["sample:elevation"]["units"] == "m"


def test_extract_distribution_columns(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ("extract", str(CATCHMENTS), "-d", "sample:land_cover", "--format", "csv")
    code, out, _ = run(capsys, *argv, "--aggregation", "distribution")
    assert code == 0
    row = csv_rows(out)[0]
    prefix = "sample:land_cover_distribution_"
    shares = {k.removeprefix(prefix): float(v) for k, v in row.items() if k.startswith(prefix)}
    assert "cropland" in shares
    assert sum(shares.values()) == pytest.approx(1.0)


def test_extract_geopackage_in_its_own_crs(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    import geopandas as gpd

    path = tmp_path / "catchments.gpkg"
    gpd.read_file(CATCHMENTS).to_crs("EPSG:3857").to_file(path)
    values = []
    for source in (str(CATCHMENTS), str(path)):
        code, out, _ = run(capsys, "extract", source, "-d", "sample:elevation", "--format", "csv")
        assert code == 0
        rows = csv_rows(out)
        assert [r["id"] for r in rows] == IDS
        values.append([float(r["sample:elevation_mean"]) for r in rows])
    assert values[1] == pytest.approx(values[0], rel=1e-6)
    code, _, err = run(capsys, "extract", str(path), *ELEVATION, "--geometry-crs", "EPSG:4326")
    assert code == 2
    assert "is in EPSG:3857, not --geometry-crs EPSG:4326" in err


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
        values.append(json.loads(out)["rows"][0]["sample:elevation_mean"])
    assert values[0] == pytest.approx(values[1])


def test_extract_runtime_failure_gives_missing_result(capsys: pytest.CaptureFixture[str]) -> None:
    nowhere = '{"type": "Point", "coordinates": [0, 0]}'
    code, out, err = run(capsys, "extract", nowhere, "-d", "sample:elevation")
    assert code == 4  # every result MISSING; the table is written all the same
    assert err.endswith("exit status 4: results by quality: missing 1\n")
    document = json.loads(out)
    (row,) = document["rows"]
    assert row["sample:elevation_mean"] is None
    assert row["sample:elevation_quality"] == "missing"
    (failure,) = document["cas_xr"]["failures"]
    assert (failure["dataset_id"], failure["kind"], failure["index"]) == (
        "sample:elevation",
        "no_data",
        [0],
    )
    assert "1 of 1 results failed at run time: sample:elevation (no_data)" in err
    assert "sample:elevation: 1 geometries (no_data" in err


def test_extract_isolates_faulty_geometries(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    line = {"type": "LineString", "coordinates": [[-96.5, 39.0], [-96.4, 39.1]]}
    point = {"type": "Point", "coordinates": [-96.5, 39.0]}
    mixed = {"type": "GeometryCollection", "geometries": [line, point]}
    features = [*FEATURES[:2], {"type": "Feature", "properties": {"id": "L"}, "geometry": mixed}]
    path = tmp_path / "three.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    code, out, err = run(capsys, "extract", str(path), *ELEVATION, "--format", "csv")
    assert code == 3  # some results MISSING
    quality = [r["sample:elevation_quality"] for r in csv_rows(out)]
    assert quality == ["good", "good", "missing"]
    assert "(InvalidGeometryError: a GeometryCollection mixing polygons, lines and points" in err


def test_debug_shows_python_warnings(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import warnings

    real = cas.extract_table

    def noisy(*args: Any, **kwargs: Any) -> Any:
        warnings.warn("a library's own warning", DeprecationWarning, stacklevel=1)
        return real(*args, **kwargs)

    monkeypatch.setattr(cas, "extract_table", noisy)
    code, _, err = run(capsys, "extract", str(CATCHMENTS), "-d", "sample:elevation")
    assert code == 0
    assert "python warning" not in err
    assert "1 of 7 results are not GOOD" in err  # cas_xr's warnings are always shown
    code, _, err = run(capsys, "--debug", "extract", str(CATCHMENTS), "-d", "sample:elevation")
    assert code == 0
    assert "python warning: DeprecationWarning: a library's own warning" in err


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
    assert max(len(line) for line in out.splitlines()) <= 100  # fits a terminal
    lines = out.splitlines()
    assert lines[0].startswith("cas_xr demo: 7 sample catchments")
    assert lines[2].split() == [
        "catchment", "dataset", "statistic", "units", "quality", "cover", "value"
    ]  # fmt: skip
    table = [line.split() for line in lines if line[:1] in {"K", "U"}]
    # rows stream run by run: each dataset and statistic for every catchment, in order
    for dataset, statistic in [
        ("sample:elevation", "mean"), ("sample:clay_0-5cm", "mean"),
        ("sample:land_cover", "distribution"), ("sample:land_cover", "majority"),
        ("sample:precipitation", "mean"),
    ]:  # fmt: skip
        assert [row[0] for row in table if row[1:3] == [dataset, statistic]] == IDS
    majority = next(row for row in table if row[0] == "K02" and row[2] == "majority")
    assert majority[3:] == ["class", "good", "1.00", "herbaceous_wetland", "(90)"]
    assert "%" in next(row for row in table if row[2] == "distribution")[7]
    assert "K06: sample:precipitation: partial" in err


def test_demo_console_script() -> None:
    assert SCRIPT.exists(), f"{SCRIPT} not installed; run `pip install -e .`"
    done = subprocess.run([str(SCRIPT), "demo"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    for dataset_id, units in DEMO_DATASETS.items():
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
MIXED_COLLECTION = (
    '{"type": "GeometryCollection", "geometries": [{"type": "Point", "coordinates": [0, 0]}, '
    '{"type": "LineString", "coordinates": [[0, 0], [1, 1]]}]}'
)


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["extract", '{"type": "Point",', *ELEVATION], 2, "invalid JSON in the inline GEOMETRY"),
        (["extract", "missing.geojson", *ELEVATION], 2, "'missing.geojson' not found"),
        (["extract", "@missing.geojson", *ELEVATION], 2, "'missing.geojson' not found"),
        (["extract", "[1, 2]", *ELEVATION], 2, "is not a GeoJSON object"),
        (
            ["extract", MIXED_COLLECTION, *ELEVATION],
            2,
            "no geometry can be computed: #0: a GeometryCollection mixing polygons, lines",
        ),
        (
            ["extract", OPEN_RING, *ELEVATION],
            2,
            "cannot read the inline GEOMETRY: IllegalArgumentException: Points of LinearRing do "
            "not form a closed linestring",
        ),
        (
            ["extract", '{"type": "FeatureCollection", "features": []}', *ELEVATION],
            2,
            "the inline GEOMETRY has no features",
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
        (["extract", POINT, *ELEVATION, "--aggregation", "avg"], 2, "unknown statistic 'avg'"),
        (["extract", POINT, *ELEVATION, "--stat", "mean,"], 2, "--stat got an empty statistic"),
        (["extract", "", *ELEVATION], 2, "GEOMETRY is empty; give a vector file"),
        (["extract", "@", *ELEVATION], 2, "GEOMETRY is empty; give a vector file"),
        (
            ["extract", POINT, *ELEVATION, "-o", "out.xlsx"],
            2,
            "cannot tell the format of 'out.xlsx' from its suffix '.xlsx': use .json, .geojson, "
            ".csv, .parquet, .geoparquet, or give --format",
        ),
        (["extract", POINT, *ELEVATION, "-o", "noext"], 2, "from its suffix '(none)'"),
        (["extract", POINT, *ELEVATION, "-o", "."], 2, "cannot write '.': it is a folder"),
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
    assert f"error: cannot read '{path}': Failed to read GeoJSON data" in err


def test_feature_without_geometry(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    features = [*FEATURES[:2], {"type": "Feature", "properties": {}, "geometry": None}]
    path = tmp_path / "three.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    code, _, err = run(capsys, "extract", str(path), *ELEVATION)
    assert code == 2
    assert err == f"error: '{path}': feature(s) #2 have no geometry\n"


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
    assert "no geometry can be computed: #0: more than max_polygon_vertices" in err


def test_runtime_error_exits_1(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def too_slow(*args: Any, **kwargs: Any) -> None:
        raise RequestTimeoutError("the request took longer than request_timeout_s (1 s)")

    monkeypatch.setattr(cas, "extract_table", too_slow)
    code, _, err = run(capsys, "extract", POINT, *ELEVATION)
    assert code == 1
    assert err == "error: the request took longer than request_timeout_s (1 s)\n"


def test_unexpected_error_has_traceback_only_with_debug(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(cas, "extract_table", broken)
    code, _, err = run(capsys, "extract", POINT, *ELEVATION)
    assert code == 1
    assert err == "error: unexpected RuntimeError: boom (rerun with --debug)\n"
    assert cli.main(["--debug", "extract", POINT, *ELEVATION]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err
    assert err.endswith("error: unexpected RuntimeError: boom (rerun with --debug)\n")


def test_serve_without_the_service_extra_names_it() -> None:
    code = (
        "import sys; sys.modules['uvicorn'] = None; from cas_xr.cli import main; "
        "sys.exit(main(['serve']))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr == (
        "error: the cas_xr service needs the 'service' extra (uvicorn is not installed): "
        "pip install 'cas-xr[service]'\n"
    )


# -- exit statuses, formats, statistics, time, raster -------------------------------------


def test_exit_status_rules() -> None:
    from collections import Counter

    from cas_xr._cli._status import exit_status

    def status(strict: bool = False, **flags: int) -> int:
        return exit_status(Counter(flags), strict=strict)

    assert status(good=3, partial=1, suspect=1) == 0  # every result has a value
    assert status(good=3, missing=1) == status(good=3, degraded=1) == 3
    assert status(missing=4) == 4
    assert status(missing=4, strict=True) == 4
    assert status(good=3, partial=1, strict=True) == status(good=3, suspect=1, strict=True) == 3
    assert status(good=4, strict=True) == 0


def test_exit_status_of_extract(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ("extract", str(CATCHMENTS), *ELEVATION, "--format", "csv")
    code, _, err = run(capsys, *argv)
    assert code == 0  # K06 is PARTIAL: it has a value
    assert "exit status" not in err
    code, out, err = run(capsys, *argv, "--strict")
    assert code == 3  # not every result is GOOD
    assert len(csv_rows(out)) == len(FEATURES)  # the table is written all the same
    assert err.endswith("exit status 3: results by quality: good 6, partial 1\n")
    inside = run(capsys, "extract", POINT, *ELEVATION, "--strict")
    assert inside[0] == 0


def test_output_format_from_suffix_or_option(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out_path = tmp_path / "out.xlsx"
    code, _, err = run(capsys, "extract", POINT, *ELEVATION, "-o", str(out_path))
    assert code == 2 and "cannot tell the format" in err
    assert not out_path.exists()  # refused before any work
    code, _, _ = run(capsys, "extract", POINT, *ELEVATION, "-o", str(out_path), "--format", "csv")
    assert code == 0
    assert csv_rows(out_path.read_text())[0]["sample:elevation_quality"] == "good"
    geoparquet = tmp_path / "out.geoparquet"
    assert run(capsys, "extract", POINT, *ELEVATION, "-o", str(geoparquet))[0] == 0
    import geopandas as gpd

    assert gpd.read_parquet(geoparquet)["sample:elevation_quality"].tolist() == ["good"]


def test_unwritable_output_is_a_clean_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    import os

    if os.geteuid() == 0:  # root writes anywhere but in sysfs: the write itself fails
        target = Path("/sys/attributes.csv")
    else:  # the check before any work refuses it
        (tmp_path / "locked").mkdir(mode=0o555)
        target = tmp_path / "locked" / "attributes.csv"
    code, out, err = run(capsys, "extract", POINT, *ELEVATION, "-o", str(target))
    assert code == 2
    assert out == ""
    assert err.startswith(f"error: cannot write '{target}': ")
    assert err.count("\n") == 1
    assert "Errno" not in err


@pytest.mark.parametrize(
    ("suffix", "driver"),
    [(".gpkg", "GPKG"), (".shp", "ESRI Shapefile"), (".fgb", "FlatGeobuf"), (".parquet", None)],
)
def test_extract_reads_vector_formats(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, suffix: str, driver: str | None
) -> None:
    import geopandas as gpd

    frame = gpd.read_file(CATCHMENTS)[["id", "geometry"]]
    path = tmp_path / f"catchments{suffix}"
    if driver is None:
        frame.to_crs("EPSG:3857").to_parquet(path)  # in a CRS of their own
    else:
        frame.to_crs("EPSG:3857").to_file(path, driver=driver)
    code, out, _ = run(capsys, "extract", str(path), *ELEVATION, "--format", "csv")
    assert code == 0
    values = {r["id"]: float(r["sample:elevation_mean"]) for r in csv_rows(out)}
    assert sorted(values) == sorted(IDS)  # FlatGeobuf keeps them in its spatial index's order
    with pytest.warns(cas.errors.QualityWarning):
        expected = cas.extract_table(frame.set_index("id"), "sample:elevation")
    assert values == pytest.approx(expected["sample:elevation_mean"].to_dict(), rel=1e-6)


def test_several_statistics_at_once(capsys: pytest.CaptureFixture[str]) -> None:
    import geopandas as gpd

    argv = ("extract", str(CATCHMENTS), *ELEVATION, "--format", "csv")
    code, out, _ = run(capsys, *argv, "--stat", "mean,max", "--aggregation", "p90", "-s", "count")
    assert code == 0
    rows = csv_rows(out)
    with pytest.warns(cas.errors.QualityWarning):
        expected = cas.extract_table(
            gpd.read_file(CATCHMENTS),
            "sample:elevation",
            aggregation=["mean", "max", "p90", "count"],
        )
    for stat in ("mean", "max", "p90", "count"):
        column = f"sample:elevation_{stat}"
        assert [float(r[column]) for r in rows] == expected[column].tolist()


def test_temporal_dataset_note(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ("extract", POINT, "-d", "sample:precipitation", "--format", "csv")
    code, out, err = run(capsys, *argv)
    assert code == 0
    assert len(csv_rows(out)) == 12  # every step: nothing is reduced
    assert err == (
        "note: sample:precipitation is temporal: one row per geometry and time step (12 "
        "steps, 2022-01-01 to 2022-12-01); --time-range START/END selects steps\n"
    )
    code, out, err = run(capsys, *argv, "--time-range", "2022-06-01/2022-08-31")
    assert len(csv_rows(out)) == 3
    assert "(3 steps, 2022-06-01 to 2022-08-01)" in err
    assert run(capsys, "extract", POINT, *ELEVATION)[2] == ""  # static: no note


def test_providers_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "providers", "--json")
    assert code == 0
    providers = {p["slug"]: p for p in json.loads(out)}
    assert set(providers) == set(cas.list_providers())
    sample = providers["sample"]
    assert sample["protocol"] == "stac_static"
    assert sorted(sample["datasets"]) == sorted(SAMPLE_DATASETS)


U_BOX = ("--bbox", "-112.05", "41.95", "-111.95", "42.05")


def test_raster_command(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    import rasterio

    target = tmp_path / "new" / "folder" / "dem.tif"  # folders created, as CAS does
    code, out, err = run(capsys, "raster", "sample:elevation", *U_BOX, "-o", str(target))
    assert code == 0
    result = cas.RasterResult.model_validate_json(out)
    assert Path(result.path) == target
    assert err == f"wrote {target}: {result.shape[0]} x {result.shape[1]} cells in EPSG:4326\n"
    expected = cas.extract_raster_sync(
        "sample:elevation", (-112.05, 41.95, -111.95, 42.05), tmp_path, filename="ref.tif"
    )
    with rasterio.open(target) as ours, rasterio.open(expected.path) as theirs:
        assert ours.read().tolist() == theirs.read().tolist()
    code, _, err = run(capsys, "raster", "sample:elevation", *U_BOX, "-o", str(target))
    assert code == 2 and "exists; pass overwrite=True" in err
    argv = ("raster", "sample:elevation", *U_BOX, "-o", str(target), "--overwrite")
    assert run(capsys, *argv)[0] == 0
    code, _, err = run(capsys, "raster", "sample:elevation", *U_BOX, "-o", str(tmp_path))
    assert code == 2 and "is a folder; give a file name" in err
    code, _, err = run(capsys, "raster", "sample:nope", *U_BOX, "-o", str(target))
    assert code == 2 and "provider 'sample' has no dataset 'nope'" in err


def test_raster_command_temporal_note(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    box = ("--bbox", "-96.6", "38.9", "-96.4", "39.1")
    code, out, err = run(
        capsys, "raster", "sample:precipitation", *box, "-o", str(tmp_path / "a.tif")
    )
    assert code == 0
    assert (
        "note: sample:precipitation is temporal; without --time-range the raster holds its "
        "latest step only (2022-12-01T00:00:00Z)"
    ) in err
    span = ("--time-range", "2022-06-01/2022-08-31")
    code, out, err = run(
        capsys, "raster", "sample:precipitation", *box, *span, "-o", str(tmp_path / "b.tif")
    )
    assert code == 0 and "note" not in err
    assert len(json.loads(out)["provenance"]["times"]) == 3
