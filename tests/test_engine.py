"""The engine behind extract/batch_extract, on the embedded sample provider and local catalogs.

Numbers are checked against exactextract run on an independent mosaic of the sample COGs
(rasterio.merge), not against our own code.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pydantic
import pytest
import rasterio
import rasterio.merge
import shapely
from exactextract import exact_extract
from exactextract.raster import NumPyRasterSource

import cas_xr as cas
from cas_xr.catalog import Connector
from cas_xr.engine._run import MEMORY as RESULT_MEMORY
from cas_xr.errors import (
    CasError,
    InvalidRequestError,
    LimitExceededError,
    QualityWarning,
    RequestTimeoutError,
    SourceError,
    SourceWarning,
    UnknownDatasetError,
    UnknownProviderError,
)
from cas_xr.frontends import _responses as engine
from cas_xr.zonal import COVERAGE_NOISE
from tests._catalogs import make_catalog, provider_yaml

DATA = Path(cas.__file__).parent / "sample" / "data"
CATCHMENTS = json.loads((DATA / "catchments.geojson").read_text())["features"]
K_CATCHMENTS = [f for f in CATCHMENTS if f["properties"]["id"].startswith("K")]
SEAM_POLYGON = {
    "type": "Polygon",
    "coordinates": [[[-96.6, 39.0], [-96.5, 39.0], [-96.5, 39.1], [-96.6, 39.1], [-96.6, 39.0]]],
}
POINT = {"type": "Point", "coordinates": [-96.5, 39.0]}


def _mosaic(collection: str, region: str, item_suffix: str = "") -> tuple[np.ndarray, Any, float]:
    """Independent mosaic of a collection's COGs for one region (rasterio.merge)."""
    paths = sorted((DATA / collection).glob(f"{collection}-{region}*{item_suffix}/*.tif"))
    assert paths, f"no COGs for {collection} {region}"
    sources = [rasterio.open(p) for p in paths]
    try:
        array, transform = rasterio.merge.merge(sources)
        nodata = sources[0].nodata
    finally:
        for s in sources:
            s.close()
    return array[0], transform, nodata


def _exactextract(
    array: np.ndarray, transform: Any, nodata: float, geometry: dict, ops: list[str]
) -> dict:
    rows, cols = array.shape
    src = NumPyRasterSource(
        array, transform.c, transform.f + rows * transform.e, transform.c + cols * transform.a,
        transform.f, nodata=array.dtype.type(nodata),
    )  # fmt: skip
    feature = {"type": "Feature", "properties": {}, "geometry": geometry}
    return exact_extract(src, [feature], ops, output="geojson")[0]["properties"]


def _results(
    dataset_id: str, aggregation: str, features: list[dict], **kw: Any
) -> list[cas.AttributeResult]:
    request = cas.BatchAttributeRequest(
        geometries=[f["geometry"] for f in features],
        dataset_ids=[dataset_id],
        aggregation=aggregation,
        **kw,
    )
    with (
        pytest.warns(QualityWarning)
        if any(f["properties"]["id"] == "K06" for f in features)
        else _nothing()
    ):
        batch = cas.batch_extract_sync(request)
    return [resp.results[0] for resp in batch.responses]


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


EDGE_SENSITIVE = {"min", "max", "unique", "median"}
CONTINUOUS = [("mean", "mean"), ("median", "median"), ("min", "min"), ("max", "max"),
              ("std", "stdev"), ("sum", "sum"), ("unique", "variety")]  # fmt: skip


@pytest.mark.parametrize(
    ("collection", "dataset_id"),
    [("elevation", "sample:elevation"), ("clay_0-5cm", "sample:clay_0-5cm")],
)
@pytest.mark.parametrize(("ours", "theirs"), CONTINUOUS)
def test_continuous_stats_equal_exactextract_on_sample_catchments(
    collection, dataset_id, ours, theirs
):
    array, transform, nodata = _mosaic(collection, "K")
    results = _results(dataset_id, ours, K_CATCHMENTS)
    for feature, result in zip(K_CATCHMENTS, results, strict=True):
        ref = _exactextract(
            array, transform, nodata, feature["geometry"], [theirs, "count", "values", "coverage"]
        )
        noise = np.asarray(ref["coverage"]) < COVERAGE_NOISE
        if noise.any() and ours in EDGE_SENSITIVE:
            # exactextract gave cells ~1e-11 coverage along grid-aligned edges; we drop them
            kept = np.asarray(ref["values"])[~noise]
            if ours != "median":
                expected = {"min": kept.min(), "max": kept.max(), "unique": np.unique(kept).size}
                assert result.value == expected[ours], feature["properties"]["id"]
            continue
        if isinstance(ref[theirs], int) and ours == "median":
            # exactextract casts quantiles of integer rasters to the raster's integer type
            assert int(result.value) == ref[theirs], feature["properties"]["id"]  # type: ignore[arg-type]
        else:
            assert result.value == pytest.approx(ref[theirs], rel=1e-6), feature["properties"]["id"]
        polygon_area = shapely.geometry.shape(feature["geometry"]).area
        coverage = ref["count"] * abs(transform.a * transform.e) / polygon_area
        assert result.coverage_fraction == pytest.approx(min(coverage, 1.0), rel=1e-6)


@pytest.mark.parametrize("aggregation", ["majority", "minority", "distribution", "unique"])
def test_categorical_stats_equal_exactextract(aggregation: str):
    array, transform, nodata = _mosaic("land_cover", "K")
    names = cas.get_connector("sample").dataset("land_cover").variables[0].class_names
    assert names is not None
    results = _results("sample:land_cover", aggregation, K_CATCHMENTS)
    for feature, result in zip(K_CATCHMENTS, results, strict=True):
        ref = _exactextract(
            array, transform, nodata, feature["geometry"], ["frac", "unique", "variety"]
        )
        fractions = dict(zip([int(u) for u in ref["unique"]], ref["frac"], strict=True))
        if aggregation == "distribution":
            assert isinstance(result.value, dict)
            assert result.value == pytest.approx(
                {names[c]: f for c, f in fractions.items()}, rel=1e-6
            )
        elif aggregation == "unique":
            assert result.value == ref["variety"]
        else:
            pick = max if aggregation == "majority" else min
            best = pick(fractions.values())
            assert result.value == min(c for c, f in fractions.items() if f == best)


def test_quickstart_runs_with_sample_ids():
    cas.configure(provider_timeout_s=60, result_cache_ttl_s=3600)
    assert RESULT_MEMORY.current().ttl_s == 3600
    cas.discover()
    assert len(cas.list_providers()) >= 1
    assert cas.get_connector("sample").slug == "sample"
    request = cas.BatchAttributeRequest(
        geometries=[POINT, SEAM_POLYGON],
        dataset_ids=["sample:elevation", "sample:clay_0-5cm"],
        aggregation="mean",
    )
    batch = cas.batch_extract_sync(request)
    assert batch.total_geometries == 2 and batch.total_results == 4
    for resp in batch.responses:
        assert [r.dataset_id for r in resp.results] == ["sample:elevation", "sample:clay_0-5cm"]
        for r in resp.results:
            assert isinstance(r.value, float) and r.quality is cas.QualityFlag.GOOD
            assert r.units in {"m", "g/kg"} and r.coverage_fraction == 1.0
        assert resp.warnings == []
    point = batch.responses[0].results[0]
    assert point.pixel_count == 1


def test_polygon_across_the_seam_reads_both_tiles():
    result = cas.extract_sync(
        {"geometry": SEAM_POLYGON, "dataset_ids": ["sample:elevation"]}
    ).results[0]
    assert result.coverage_fraction == 1.0 and result.quality is cas.QualityFlag.GOOD
    assert set(result.provenance["items"]) == {"elevation-K-west", "elevation-K-east"}
    west = dict(
        SEAM_POLYGON,
        coordinates=[[[-96.6, 39.0], [-96.55, 39.0], [-96.55, 39.1], [-96.6, 39.1], [-96.6, 39.0]]],
    )
    east = dict(
        SEAM_POLYGON,
        coordinates=[
            [[-96.55, 39.0], [-96.5, 39.0], [-96.5, 39.1], [-96.55, 39.1], [-96.55, 39.0]]
        ],
    )
    halves = cas.batch_extract_sync(
        {"geometries": [west, east], "dataset_ids": ["sample:elevation"]}
    )
    w, e = (r.results[0] for r in halves.responses)
    assert w.pixel_count + e.pixel_count == result.pixel_count == 10_000
    assert result.value == pytest.approx((w.value + e.value) / 2, rel=1e-9)  # type: ignore[operator]


def test_point_takes_the_containing_cell_and_edge_rule(tmp_path: Path):
    cas.configure(
        provider_files=[
            provider_yaml(tmp_path / "t.yaml", slug="t", endpoint=make_catalog(tmp_path / "c"))
        ]
    )
    # rows hold 100 + row; lat 50.15 is the edge between row 4 (north) and row 5 (south)
    for lat, expected in [(50.155, 104.0), (50.15, 105.0), (50.1449, 105.0)]:
        point = {"type": "Point", "coordinates": [10.05, lat]}
        result = cas.extract_sync({"geometry": point, "dataset_ids": ["t:height"]}).results[0]
        assert (result.value, result.pixel_count, result.coverage_fraction) == (expected, 1, 1.0)


def test_weight_modes(tmp_path: Path):
    cas.configure(
        provider_files=[
            provider_yaml(tmp_path / "t.yaml", slug="t", endpoint=make_catalog(tmp_path / "c"))
        ]
    )
    # rows 3..5 fully, row 6 a quarter: lat 50.1375..50.17 (row r spans 50.2-0.01(r+1)..50.2-0.01r)
    polygon = shapely.box(10.02, 50.1375, 10.06, 50.17)
    expected = {
        "exact": (103 * 4 + 104 * 4 + 105 * 4 + 106 * 1) / 13,
        "center": 104.0,  # centres of rows 3, 4, 5 (50.165, 50.155, 50.145) are inside
        "all_touched": (103 + 104 + 105 + 106) / 4,
    }
    for mode, value in expected.items():
        cas.configure(zonal_weights=mode)
        result = cas.extract_sync({"geometry": polygon, "dataset_ids": ["t:height"]}).results[0]
        assert result.value == pytest.approx(value, rel=1e-9), mode


def test_projected_geometry_crs_gives_the_same_numbers():
    import pyproj

    to_utm = pyproj.Transformer.from_crs("EPSG:4326", "EPSG:32614", always_xy=True)
    utm = shapely.transform(
        shapely.geometry.shape(SEAM_POLYGON).segmentize(0.001),
        lambda xy: np.column_stack(to_utm.transform(xy[:, 0], xy[:, 1])),
    )
    lonlat = cas.extract_sync(
        {"geometry": SEAM_POLYGON, "dataset_ids": ["sample:elevation"]}
    ).results[0]
    projected = cas.extract_sync(
        {"geometry": utm, "dataset_ids": ["sample:elevation"], "geometry_crs": "EPSG:32614"}
    ).results[0]
    assert projected.value == pytest.approx(lonlat.value, rel=1e-4)


def test_temporal_latest_step_and_time_range_mean():
    latest = cas.extract_sync(
        {"geometry": SEAM_POLYGON, "dataset_ids": ["sample:precipitation"]}
    ).results[0]
    assert latest.timestamp is not None and (latest.timestamp.year, latest.timestamp.month) == (
        2022,
        12,
    )
    months = [
        cas.extract_sync(
            {"geometry": SEAM_POLYGON, "dataset_ids": ["sample:precipitation"],
             "time_range": (f"2022-{m:02d}-01T00:00:00Z", f"2022-{m:02d}-02T00:00:00Z")}
        ).results[0]
        for m in (1, 2, 3)
    ]  # fmt: skip
    q1 = cas.extract_sync(
        {"geometry": SEAM_POLYGON, "dataset_ids": ["sample:precipitation"],
         "time_range": ("2022-01-01T00:00:00Z", "2022-03-31T00:00:00Z")}
    ).results[0]  # fmt: skip
    assert q1.value == pytest.approx(np.mean([m.value for m in months]), rel=1e-9)
    assert q1.timestamp is not None and q1.timestamp.month == 3
    assert len({m.value for m in months}) == 3


def test_partly_outside_catchment_is_flagged_with_a_warning():
    k06 = next(f for f in CATCHMENTS if f["properties"]["id"] == "K06")
    with pytest.warns(QualityWarning, match="not GOOD"):
        response = cas.extract_sync(
            {"geometry": k06["geometry"], "dataset_ids": ["sample:elevation"]}
        )
    result = response.results[0]
    assert 0 < result.coverage_fraction < 0.8
    assert result.quality in {cas.QualityFlag.PARTIAL, cas.QualityFlag.MISSING}
    assert any("coverage" in w for w in response.warnings)


def test_suspect_when_outside_valid_range(tmp_path: Path):
    yaml_file = provider_yaml(tmp_path / "t.yaml", slug="t", endpoint=make_catalog(tmp_path / "c"))
    yaml_file.write_text(yaml_file.read_text().replace("[0, 1000]", "[0, 50]"))
    cas.configure(provider_files=[yaml_file])
    with pytest.warns(QualityWarning):
        response = cas.extract_sync(
            {"geometry": shapely.box(10.02, 50.02, 10.1, 50.1), "dataset_ids": ["t:height"]}
        )
    assert response.results[0].quality is cas.QualityFlag.SUSPECT
    assert "outside the valid range 0..50" in response.warnings[0]


def test_runtime_failure_is_missing_with_error_and_the_rest_succeeds(tmp_path: Path):
    broken = provider_yaml(
        tmp_path / "b.yaml", slug="broken", endpoint=make_catalog(tmp_path / "c", broken_href=True)
    )
    cas.configure(provider_files=[broken])
    request = {
        "geometries": [POINT, SEAM_POLYGON],
        "dataset_ids": ["broken:height", "sample:elevation"],
    }
    with pytest.warns(SourceWarning, match="2 of 4 results failed at run time: broken:height"):
        batch = cas.batch_extract_sync(request)
    assert batch.total_results == 4
    for resp in batch.responses:
        failed, good = resp.results
        assert failed.quality is cas.QualityFlag.MISSING and failed.value is None
        assert failed.error is not None and failed.error.dataset_id == "broken:height"
        assert failed.error.provider == "broken" and failed.error.message
        assert good.quality is cas.QualityFlag.GOOD
        assert any(w.startswith("broken:height: failed") for w in resp.warnings)


def test_missing_collection_is_a_runtime_failure(tmp_path: Path):
    yaml_file = provider_yaml(
        tmp_path / "t.yaml", slug="t", endpoint=make_catalog(tmp_path / "c"), collection="nope"
    )
    cas.configure(provider_files=[yaml_file])
    with pytest.warns(SourceWarning):
        result = cas.extract_sync({"geometry": POINT, "dataset_ids": ["t:height"]}).results[0]
    assert result.error is not None and result.error.kind == "definition"
    assert "collection 'nope' is not in the catalog" in result.error.message


def test_no_data_there_is_missing_with_error():
    far = {"type": "Point", "coordinates": [0.0, 0.0]}
    with pytest.warns(SourceWarning):
        result = cas.extract_sync({"geometry": far, "dataset_ids": ["sample:elevation"]}).results[0]
    assert (
        result.quality is cas.QualityFlag.MISSING
        and result.error
        and result.error.kind == "no_data"
    )


def test_unknown_ids_fail_before_any_work(monkeypatch: pytest.MonkeyPatch):
    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("no dataset may be opened")

    monkeypatch.setattr(Connector, "open", fail)
    with pytest.raises(UnknownProviderError, match="unknown provider 'nasa'"):
        cas.extract_sync({"geometry": POINT, "dataset_ids": ["sample:elevation", "nasa:dem"]})
    with pytest.raises(UnknownDatasetError, match="no dataset 'curvature'"):
        cas.extract_sync({"geometry": POINT, "dataset_ids": ["sample:curvature"]})
    with pytest.raises(InvalidRequestError, match="provider:name") as raised:
        cas.extract_sync({"geometry": POINT, "dataset_ids": ["elevation"]})
    assert isinstance(raised.value.__cause__, pydantic.ValidationError)
    assert isinstance(raised.value, CasError) and isinstance(raised.value, ValueError)


def test_limits_apply_in_the_facade():
    cas.configure(max_datasets_per_request=1)
    with pytest.raises(LimitExceededError, match="max_datasets_per_request"):
        cas.extract_sync(
            {"geometry": POINT, "dataset_ids": ["sample:elevation", "sample:clay_0-5cm"]}
        )
    cas.configure(max_polygon_vertices=4)
    with pytest.raises(LimitExceededError, match="geometry 0 has 5 vertices"):
        cas.extract_sync({"geometry": SEAM_POLYGON, "dataset_ids": ["sample:elevation"]})


def test_request_timeout_bounds_the_whole_request(monkeypatch: pytest.MonkeyPatch):
    original = Connector.open

    def slow(self: Connector, *args: Any, **kwargs: Any) -> Any:
        time.sleep(1.0)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Connector, "open", slow)
    cas.configure(request_timeout_s=0.2)
    started = time.perf_counter()
    with pytest.raises(RequestTimeoutError, match="request_timeout_s"):
        cas.extract_sync({"geometry": POINT, "dataset_ids": ["sample:elevation"]})
    assert time.perf_counter() - started < 1.0


def test_results_are_cached_until_configure(opened: list[Any]):
    request = {"geometry": SEAM_POLYGON, "dataset_ids": ["sample:elevation"]}
    first = cas.extract_sync(request)
    second = cas.extract_sync(request)
    assert len(opened) == 1 and not first.results[0].cached and second.results[0].cached
    unchanged = {"cached", "elapsed_ms", "provenance"}  # a cached result reports this call's time
    assert first.results[0].model_dump(exclude=unchanged) == second.results[0].model_dump(
        exclude=unchanged
    )
    computed = second.results[0].provenance.pop("computed_elapsed_ms")  # and the original's
    assert 0 < computed <= first.elapsed_ms
    assert second.results[0].provenance == first.results[0].provenance
    cas.configure(result_cache_ttl_s=0)  # rebuilt and disabled
    cas.extract_sync(request)
    cas.extract_sync(request)
    assert len(opened) == 3


def test_aggregation_is_honoured_for_every_method():
    values = {}
    for method in cas.AggregationMethod:
        result = cas.extract_sync(
            {"geometry": SEAM_POLYGON, "dataset_ids": ["sample:elevation"], "aggregation": method}
        ).results[0]
        assert result.aggregation is method
        values[method] = result.value
    assert (
        values[cas.AggregationMethod.MIN]
        < values[cas.AggregationMethod.MEAN]
        < values[cas.AggregationMethod.MAX]
    )
    assert isinstance(values[cas.AggregationMethod.DISTRIBUTION], dict)
    numeric = [m for m in values if m not in {"majority", "minority"}]
    assert len({json.dumps(values[m], sort_keys=True) for m in numeric}) == len(numeric)
    for method in (cas.AggregationMethod.MAJORITY, cas.AggregationMethod.MINORITY):
        assert (
            values[cas.AggregationMethod.MIN] <= values[method] <= values[cas.AggregationMethod.MAX]
        )


def test_sync_wrappers_refuse_a_running_loop():
    async def inside() -> None:
        with pytest.raises(RuntimeError, match=r"use `await cas_xr\.extract\(\.\.\.\)`"):
            cas.extract_sync({"geometry": POINT, "dataset_ids": ["sample:elevation"]})
        with pytest.raises(RuntimeError, match=r"await cas_xr\.batch_extract"):
            cas.batch_extract_sync({"geometries": [POINT], "dataset_ids": ["sample:elevation"]})
        with pytest.raises(RuntimeError, match=r"await cas_xr\.extract_raster"):
            cas.extract_raster_sync("sample:elevation", (-112.05, 41.95, -111.95, 42.05), ".")
        response = await cas.extract({"geometry": POINT, "dataset_ids": ["sample:elevation"]})
        assert response.results[0].quality is cas.QualityFlag.GOOD

    asyncio.run(inside())


def test_time_range_does_not_filter_static_datasets():
    request = {
        "geometry": SEAM_POLYGON,
        "dataset_ids": ["sample:elevation", "sample:precipitation"],
        "time_range": ("2022-01-01T00:00:00Z", "2022-03-31T00:00:00Z"),
    }
    elevation, precipitation = cas.extract_sync(request).results
    assert elevation.quality is cas.QualityFlag.GOOD and elevation.timestamp is None
    assert precipitation.quality is cas.QualityFlag.GOOD and precipitation.timestamp is not None


@pytest.mark.parametrize("aggregation", ["distribution", "unique", "majority"])
def test_class_statistics_pool_time_steps(aggregation: str):
    request = {
        "geometry": SEAM_POLYGON,
        "dataset_ids": ["sample:precipitation"],
        "aggregation": aggregation,
        "time_range": ("2022-01-01T00:00:00Z", "2022-03-31T00:00:00Z"),
    }
    result = cas.extract_sync(request).results[0]
    assert result.error is None and result.value is not None
    if aggregation == "distribution":
        assert isinstance(result.value, dict)
        assert sum(result.value.values()) == pytest.approx(1.0)


def test_numeric_statistics_of_categorical_data_are_computed_as_asked():
    request = {"geometry": SEAM_POLYGON, "dataset_ids": ["sample:land_cover"]}
    mean = cas.extract_sync({**request, "aggregation": "mean"})
    high = cas.extract_sync({**request, "aggregation": "max"}).results[0].value
    dist = cas.extract_sync({**request, "aggregation": "distribution"}).results[0].value
    names = cas.get_connector("sample").dataset("land_cover").variables[0].class_names
    assert names is not None and isinstance(dist, dict)
    codes = {name: code for code, name in names.items()}
    expected = sum(codes[name] * share for name, share in dist.items())
    assert mean.results[0].value == pytest.approx(expected, rel=1e-9)
    assert high == max(codes[name] for name in dist)
    assert any("rarely meaningful" in w for w in mean.warnings)


def test_chunks_a_source_could_not_read_flag_results_degraded(monkeypatch: pytest.MonkeyPatch):
    original = Connector.open

    def with_failures(first_only: bool) -> Any:
        def open_(self: Connector, *args: Any, **kwargs: Any) -> Any:
            da = original(self, *args, **kwargs)

            def flag(block: np.ndarray, block_info: Any = None) -> np.ndarray:
                lost = not first_only or block_info[0]["chunk-location"] == (0, 0)
                out = np.empty((1, 1), dtype=object)
                out[0, 0] = SourceError("boom", provider="sample", kind="http") if lost else None
                return out

            ones = tuple((1,) * len(c) for c in da.chunks)
            da.attrs["cas_failed_chunks"] = da.data.map_blocks(flag, chunks=ones, dtype=object)
            return da

        return open_

    cas.configure(chunk_size=64)  # 2 x 2 chunks under the polygon
    request = {"geometry": SEAM_POLYGON, "dataset_ids": ["sample:elevation"]}
    monkeypatch.setattr(Connector, "open", with_failures(first_only=True))
    with pytest.warns(QualityWarning, match="degraded"):
        response = cas.extract_sync(request)
    result = response.results[0]
    assert result.quality is cas.QualityFlag.DEGRADED and result.error is None
    assert "could not be read" in response.warnings[0]
    monkeypatch.setattr(Connector, "open", with_failures(first_only=False))
    with pytest.warns(SourceWarning, match=r"sample:elevation \(http\)"):
        response = cas.extract_sync(request)  # degraded results are not cached: read again
    result = response.results[0]
    assert result.quality is cas.QualityFlag.MISSING
    assert result.error is not None and result.error.kind == "http"
    assert "boom" in result.error.message


def test_class_shares_equal_up_to_rounding_are_ties_going_to_the_smallest_code():
    from cas_xr.engine import class_value as _class_value

    classes = np.array([329.0, 336.0, 346.0])
    majority = np.array([0.4, 0.4 * (1 + 1e-15), 0.2])
    minority = np.array([0.2 * (1 + 1e-15), 0.2, 0.6])
    assert _class_value(majority, classes, cas.AggregationMethod.MAJORITY, None) == 329.0
    assert _class_value(minority, classes, cas.AggregationMethod.MINORITY, None) == 329.0
    clear = np.array([0.4, 0.4 * (1 + 1e-6), 0.2])
    assert _class_value(clear, classes, cas.AggregationMethod.MAJORITY, None) == 336.0


def test_majority_of_a_geometry_does_not_depend_on_its_batch():
    """12 classes tie in one of these squares; its batch's window must not pick another."""
    cas.configure(result_cache_ttl_s=0)

    def square(lon: float, lat: float) -> dict[str, Any]:
        ring = [[lon, lat], [lon + 0.02, lat], [lon + 0.02, lat + 0.02], [lon, lat + 0.02]]
        return {"type": "Polygon", "coordinates": [[*ring, ring[0]]]}

    squares = [square(-96.65 + 0.005 * i, 38.85 + 0.01 * (i % 7)) for i in range(24)]
    request = {"dataset_ids": ["sample:clay_0-5cm"], "aggregation": "majority"}
    alone = cas.extract_sync({**request, "geometry": squares[8]}).results[0].value
    batch = cas.batch_extract_sync({**request, "geometries": [POINT, *squares]})
    assert alone == batch.responses[9].results[0].value == 329.0


def _without_ids_and_timings(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: _without_ids_and_timings(v)
            for k, v in value.items()
            if k not in ("request_id", "elapsed_ms")
        }
    if isinstance(value, list):
        return [_without_ids_and_timings(v) for v in value]
    return value


def test_a_reporting_batch_gives_the_answer_of_batch_extract():
    """Groups share the batch's window: values and provenance are the facade's."""
    cas.configure(result_cache_ttl_s=0)
    squares = [
        {
            "type": "Polygon",
            "coordinates": [
                [[x, 38.9], [x + 0.01, 38.9], [x + 0.01, 38.91], [x, 38.91], [x, 38.9]]
            ],
        }
        for x in (-96.69 + 0.0037 * i for i in range(60))
    ]  # fmt: skip  (west to east, across the edge of two elevation tiles)
    request = cas.BatchAttributeRequest(
        geometries=squares, dataset_ids=["sample:elevation", "sample:clay_0-5cm"],
        aggregation="majority",
    )  # fmt: skip
    seen: list[tuple[int, int]] = []
    reported = asyncio.run(
        engine.batch_extract_reporting(request, lambda done, total: seen.append((done, total)))
    )
    plain = cas.batch_extract_sync(request)
    assert _without_ids_and_timings(reported.model_dump(mode="json")) == _without_ids_and_timings(
        plain.model_dump(mode="json")
    )
    items = [r.results[0].provenance["items"] for r in reported.responses]
    assert items[0] == ["elevation-K-west"] and items[-1] == ["elevation-K-east"]  # each its own
    assert items[36] == ["elevation-K-east", "elevation-K-west"]  # across the seam
    assert len(seen) == 6 and seen == sorted(seen) and seen[-1] == (120, 120)  # 3 groups each

    class Stop(Exception):
        pass

    def stop(done: int, total: int) -> None:
        raise Stop

    with pytest.raises(Stop):
        asyncio.run(engine.batch_extract_reporting(request, stop))


def test_batch_extract_shows_a_progress_bar_and_the_same_answer(
    capsys: pytest.CaptureFixture[str],
):
    cas.configure(result_cache_ttl_s=0, progress=True)
    squares = [
        {
            "type": "Polygon",
            "coordinates": [
                [[x, 39.0], [x + 0.01, 39.0], [x + 0.01, 39.01], [x, 39.01], [x, 39.0]]
            ],
        }
        for x in (-96.69 + 0.004 * i for i in range(50))
    ]
    request = {"geometries": squares, "dataset_ids": ["sample:elevation", "sample:clay_0-5cm"]}
    shown = cas.batch_extract_sync(request)
    bar = capsys.readouterr().err
    assert "batch_extract" in bar and "100/100" in bar
    cas.configure(progress=False)
    silent = cas.batch_extract_sync(request)
    assert capsys.readouterr().err == ""
    assert _without_ids_and_timings(shown.model_dump(mode="json")) == _without_ids_and_timings(
        silent.model_dump(mode="json")
    )
