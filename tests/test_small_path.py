"""The small-request path's shortcuts label and compute exactly as the general route does."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import dask.array as dsa
import geopandas as gpd
import numpy as np
import pytest
import rioxarray  # noqa: F401  (registers .rio)
import shapely
import xarray as xr
import xvec  # noqa: F401  (registers .xvec)
from affine import Affine
from rioxarray.rioxarray import affine_to_coords

import cas_xr as cas
from cas_xr.errors import EventLoopError, RequestTimeoutError
from cas_xr.sources._stac_common import _on_grid


def _labelled_by_rioxarray(data, transform, crs, nodata):
    rows, cols = data.shape
    coords = affine_to_coords(transform, cols, rows)
    da = xr.DataArray(data, dims=("y", "x"), coords={"y": coords["y"], "x": coords["x"]})
    da = da.rio.write_crs(crs).rio.write_transform(transform)
    da.attrs["nodata"] = nodata
    return da


@pytest.mark.parametrize("crs", ["EPSG:4326", "EPSG:32633", "ESRI:54009"])
@pytest.mark.parametrize(
    "transform",
    [Affine(0.001, 0, -96.7, 0, -0.001, 39.3), Affine(30, 0, 500_000, 0, -30, 4_000_000)],
)
def test_a_layer_read_by_tile_is_labelled_as_rioxarray_labels_it(crs: str, transform: Affine):
    data = dsa.zeros((50, 40), chunks=16)
    ours, theirs = (
        _on_grid(data, None, transform, crs, -9999.0),
        _labelled_by_rioxarray(data, transform, crs, -9999.0),
    )
    xr.testing.assert_identical(ours, theirs)
    assert ours.encoding == theirs.encoding
    assert ours.rio.crs == theirs.rio.crs
    assert ours.rio.transform() == theirs.rio.transform() == transform
    again = _on_grid(
        data, None, transform, crs, None
    )  # the CRS's attributes are shared, not mutated
    assert again.spatial_ref.attrs == theirs.spatial_ref.attrs
    assert again.attrs["nodata"] is None


def test_the_transform_of_coordinates_is_rioxarrays():
    from cas_xr.zonal._transform import grid_transform

    rng = np.random.default_rng(0)
    for k in range(60):
        y_sign = 1 if k % 3 == 0 else -1  # some grids run south to north
        transform = Affine(
            rng.uniform(1e-4, 100), 0, rng.uniform(-1e6, 1e6),
            0, y_sign * rng.uniform(1e-4, 100), rng.uniform(-1e6, 1e6),
        )  # fmt: skip
        rows, cols = (int(n) for n in rng.integers(2, 3000, 2))
        da = _on_grid(dsa.zeros((rows, cols), chunks=512), None, transform, "EPSG:32633", None)
        window = da.isel(
            y=slice(rows // 3, None), x=slice(cols // 4, cols // 4 + max(2, cols // 2))
        )
        for obj in (da, window, da.to_dataset(name="v")):
            assert tuple(grid_transform(obj)) == tuple(obj.rio.transform(recalc=True))
    one_row = _on_grid(dsa.zeros((1, 5)), None, Affine(1, 0, 0, 0, -1, 0), "EPSG:4326", None)
    # one row: its height from the transform the cube carries, as rioxarray takes it
    assert tuple(grid_transform(one_row)) == tuple(one_row.rio.transform(recalc=True))


def test_the_geometry_index_is_xvecs():
    import shapely

    from cas_xr.zonal._api import geometry_indexed

    shapes = [shapely.box(0, 0, 1, 1), shapely.Point(2, 3), shapely.from_wkt("POLYGON EMPTY")]
    cube = xr.Dataset(
        {"v": ("geometry", np.arange(3.0))},
        coords={"geometry": np.array(shapes, dtype=object), "index": ("geometry", np.arange(3))},
    )
    for crs in ("EPSG:4326", 32633):
        ours, theirs = geometry_indexed(cube, crs), cube.xvec.set_geom_indexes("geometry", crs=crs)
        xr.testing.assert_identical(ours, theirs)
        assert ours.xindexes["geometry"].crs == theirs.xindexes["geometry"].crs
        assert list(ours.xvec.geom_coords_indexed) == ["geometry"]
        assert "crs" not in cube["geometry"].attrs  # the input is left as it was


_SQUARE = {
    "type": "Polygon",
    "coordinates": [[[-96.5, 38.9], [-96.4, 38.9], [-96.4, 39.0], [-96.5, 39.0], [-96.5, 38.9]]],
}


@pytest.mark.filterwarnings("ignore::cas_xr.errors.QualityWarning")
def test_extract_sync_gives_what_extract_gives_and_keeps_its_timeout():
    request = {"geometry": _SQUARE, "dataset_ids": ["sample:elevation", "sample:land_cover"]}
    cas.configure(result_cache_ttl_s=0)
    blocking = cas.extract_sync(request)
    awaited = asyncio.run(cas.extract(request))
    assert [r.model_dump(exclude={"elapsed_ms"}) for r in blocking.results] == [
        r.model_dump(exclude={"elapsed_ms"}) for r in awaited.results
    ]
    cas.configure(request_timeout_s=1e-6)
    ring = [[-96.6, 38.9], [-96.5, 38.9], [-96.5, 39.0], [-96.6, 39.0], [-96.6, 38.9]]
    with pytest.raises(RequestTimeoutError, match="request_timeout_s"):
        cas.extract_sync({**request, "geometry": {"type": "Polygon", "coordinates": [ring]}})


def test_extract_sync_in_a_running_event_loop_names_the_awaitable():
    async def inside() -> None:
        cas.extract_sync({"geometry": _SQUARE, "dataset_ids": ["sample:elevation"]})

    with pytest.raises(EventLoopError, match=r"await cas_xr\.extract\(") as caught:
        asyncio.run(inside())
    assert isinstance(caught.value, RuntimeError)


def _window_tasks_run(call: Any) -> tuple[Any, int]:
    """``call()`` and how many zonal kernel tasks a Dask scheduler ran for it."""
    from dask.callbacks import Callback

    keys: list[str] = []
    with Callback(pretask=lambda key, dsk, state: keys.append(str(key))):
        out = call()
    return out, sum("_window_task" in k for k in keys)


@pytest.mark.filterwarnings("ignore::cas_xr.errors.QualityWarning")
@pytest.mark.parametrize("aggregation", [["mean", "p90", "std", "count"], ["distribution"]])
def test_the_small_path_gives_the_cube_the_graph_gives(aggregation: list[str]):
    catchments = gpd.read_file(Path(cas.__file__).parent / "sample/data/catchments.geojson")
    points = [shapely.Point(-96.451, 38.953), shapely.Point(-96.549, 39.071)]
    geometries = gpd.GeoSeries([*catchments.geometry[:5], *points], crs=catchments.crs)
    ids = (
        ["sample:land_cover"]
        if aggregation == ["distribution"]
        else ["sample:elevation", "sample:clay_0-5cm", "sample:precipitation"]
    )
    cas.configure(result_cache_ttl_s=0)
    small, small_tasks = _window_tasks_run(
        lambda: cas.extract_cube(geometries, ids, aggregation=aggregation)
    )
    cas.configure(small_request_cells=0)  # every unit through the Dask graph
    graph, graph_tasks = _window_tasks_run(
        lambda: cas.extract_cube(geometries, ids, aggregation=aggregation)
    )
    assert small_tasks == 0 and graph_tasks > 0
    first = f"{ids[0]}_pixel_count"
    assert int(small[first].sum()) > 0  # something was computed
    xr.testing.assert_allclose(small, graph, rtol=0, atol=1e-12)
    # the same cube but for the numbers' last bits: names, coordinates, indexes, attrs
    same_numbers = graph.copy(data={k: small[k].values for k in small.data_vars})
    xr.testing.assert_identical(small, same_numbers)


def test_inline_compute_runs_each_task_once_and_gives_what_dask_gives():
    import dask

    from cas_xr.zonal._reads import compute

    runs: list[int] = []

    def read(k: int) -> np.ndarray:
        runs.append(k)
        return np.arange(12.0).reshape(3, 4) + k

    shared = dsa.from_delayed(dask.delayed(read, pure=True)(1), (3, 4), dtype=float)
    other = dsa.from_array(np.ones((3, 4)), chunks=2)
    a, b = (shared + other)[1:, :3].sum(axis=0), (shared * 2)[None]  # a diamond on `shared`
    ours = compute(a, b, other, scheduler="inline", optimize=False)
    assert runs == [1]  # read once, for both
    for mine, theirs in zip(ours, dask.compute(a, b, other), strict=True):
        np.testing.assert_array_equal(mine, theirs)


def test_the_geometry_cube_is_the_indexed_dataset():
    from cas_xr.zonal._api import geometry_cube, geometry_indexed

    shapes = [shapely.box(0, 0, 1, 1), shapely.Point(2, 3), shapely.from_wkt("POLYGON EMPTY")]

    def parts() -> tuple[dict[str, Any], dict[str, Any]]:
        attrs = {"units": "m", "flag_values": np.arange(3, dtype=np.int8)}
        data = {
            "d": (("geometry", "time", "zonal_statistics"), np.ones((3, 2, 2)), attrs),
            "d_pixel_count": (("geometry", "time"), np.zeros((3, 2), np.int64), attrs),
            "d_distribution": (("geometry", "time", "d_class"), np.zeros((3, 2, 2)), {}),
        }
        coords = {
            "geometry": np.array(shapes, dtype=object),
            "zonal_statistics": np.array(["mean", "p90"], dtype=object),
            "time": np.array(["2020-01-01", "2021-01-01"], dtype="datetime64[ns]"),
            "d_class": np.array([1.0, 2.0]),
            "d_class_name": ("d_class", np.array(["water", "trees"], dtype=object)),
            "id": ("geometry", np.array(["a", None, "c"], dtype=object)),  # not all text
        }
        return data, coords

    for crs in ("EPSG:4326", 32633):
        ours, theirs = geometry_cube(*parts(), crs), geometry_indexed(xr.Dataset(*parts()), crs)
        xr.testing.assert_identical(ours, theirs)
        assert list(ours.variables) == list(theirs.variables)
        for name, index in theirs.xindexes.items():
            assert type(ours.xindexes[name]) is type(index) and ours.xindexes[name].equals(index)
        for name in theirs.variables:
            assert ours[name].dtype == theirs[name].dtype
        assert ours.xindexes["geometry"].crs == theirs.xindexes["geometry"].crs
        assert ours["zonal_statistics"].to_index().dtype == object  # as xarray indexes it


def test_a_cube_in_order_is_taken_as_transposing_would_give_it():
    from cas_xr.zonal._dims import on_grid

    data = np.arange(24.0).reshape(2, 3, 4)
    da = xr.DataArray(
        data, dims=("time", "y", "x"), coords={"y": [3.0, 2.0, 1.0], "x": [0.5, 1.5, 2.5, 3.5]}
    )
    swapped = da.assign_coords(lat=(("x", "y"), np.zeros((4, 3))))  # a coordinate out of order
    cases = [da, da.transpose("y", "x", "time"), swapped, da.assign_coords(t=("time", [1, 2]))]
    for cube in cases:
        ours = on_grid(cube)
        xr.testing.assert_identical(ours, cube.transpose(..., "y", "x"))
        for name, var in cube.transpose(..., "y", "x").coords.items():
            assert ours[name].dims == var.dims
    assert on_grid(da) is da  # nothing to do


def test_among_is_isin():
    from cas_xr.zonal._kinds import among

    rng = np.random.default_rng(0)
    for shape in [(0,), (1,), (7,), (3, 4), ()]:
        values = rng.integers(0, 6, shape)
        for choices in [(), (1,), (2, 3), np.array([5, 0, 1])]:
            ours, theirs = among(values, choices), np.isin(values, choices)
            assert ours.shape == theirs.shape and ours.dtype == theirs.dtype
            np.testing.assert_array_equal(ours, theirs)


@pytest.mark.filterwarnings("ignore::cas_xr.errors.QualityWarning")
@pytest.mark.parametrize("scheduler", ["threads", "synchronous"])
def test_the_small_path_applies_with_a_local_dask_scheduler(scheduler: str):
    cas.configure(dask_scheduler=scheduler, result_cache_ttl_s=0)
    catchments = gpd.read_file(Path(cas.__file__).parent / "sample/data/catchments.geojson")
    ids = ["sample:elevation", "sample:clay_0-5cm"]
    cube, tasks = _window_tasks_run(lambda: cas.extract_cube(catchments, ids))
    assert tasks == 0 and cube.attrs["cas_summary"].count(f'"scheduler": "{scheduler}"') == 1
    cas.configure(dask_scheduler=scheduler, small_request_cells=0)  # the graph, to compare
    graph, tasks = _window_tasks_run(lambda: cas.extract_cube(catchments, ids))
    assert tasks > 0
    xr.testing.assert_allclose(cube, graph, rtol=0, atol=1e-12)
