"""Everything a public entry point raises on bad input derives from CasError."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pytest
import shapely
import xarray as xr

import cas_xr as cas
from cas_xr.errors import CasError

POINT = {"type": "Point", "coordinates": [-96.5, 39.0]}
FRAME = gpd.GeoDataFrame(geometry=[shapely.Point(-96.5, 39.0)], crs="EPSG:4326")
CUBE = xr.DataArray(np.zeros((3, 3)), dims=("y", "x"))


async def _sync_in_a_loop() -> Any:
    return cas.extract_sync({"geometry": POINT, "dataset_ids": ["sample:elevation"]})


CALLS: dict[str, tuple[Callable[[Path], Any], type[Exception]]] = {
    "extract: malformed request": (
        lambda _: cas.extract_sync({"geometry": POINT, "dataset_ids": ["elevation"]}),
        ValueError,
    ),
    "extract: raster output": (
        lambda _: cas.extract_sync(
            {"geometry": POINT, "dataset_ids": ["sample:elevation"], "output": "raster"}
        ),
        ValueError,
    ),
    "extract_sync in a running loop": (lambda _: asyncio.run(_sync_in_a_loop()), RuntimeError),
    "batch_extract: no geometries": (
        lambda _: cas.batch_extract_sync({"geometries": [], "dataset_ids": ["sample:elevation"]}),
        ValueError,
    ),
    "extract_table: not a frame": (
        lambda _: cas.extract_table([POINT], "sample:elevation"),
        TypeError,
    ),
    "extract_table: no CRS": (
        lambda _: cas.extract_table(
            gpd.GeoDataFrame(geometry=[shapely.Point(0, 0)]), "sample:elevation"
        ),
        ValueError,
    ),
    "extract_table: bad statistic": (
        lambda _: cas.extract_table(FRAME, "sample:elevation", aggregation="average"),
        ValueError,
    ),
    "extract_table: stats=3": (
        lambda _: cas.extract_table(FRAME, "sample:elevation", aggregation=3),
        TypeError,
    ),
    "extract_cube: empty ids": (lambda _: cas.extract_cube(FRAME, []), ValueError),
    "extract_cube: cube without CRS": (lambda _: cas.extract_cube(FRAME, {"c": CUBE}), ValueError),
    "extract_cube: bad time range": (
        lambda _: cas.extract_cube(FRAME, "sample:elevation", time_range=("2022", "2021")),
        ValueError,
    ),
    "open_dataset: bad chunks": (
        lambda _: cas.open_dataset("sample:elevation", chunks=0),
        ValueError,
    ),
    "open_dataset: unknown id": (lambda _: cas.open_dataset("sample:nope"), KeyError),
    "extract_raster: bad box": (
        lambda tmp: cas.extract_raster_sync("sample:elevation", (1, 2, 0, 3), tmp),
        ValueError,
    ),
    "zonal: stats=3": (lambda _: cas.zonal(CUBE, FRAME.geometry, 3), TypeError),
    "zonal: no CRS": (lambda _: cas.zonal(CUBE, FRAME.geometry, ["mean"]), ValueError),
    "configure: unknown name": (lambda _: cas.configure(nope=1), TypeError),
}


@pytest.mark.parametrize("case", list(CALLS))
def test_bad_input_raises_a_cas_error_with_its_builtin_parent(case: str, tmp_path: Path):
    call, builtin = CALLS[case]
    with pytest.raises(CasError) as raised:
        call(tmp_path)
    assert isinstance(raised.value, builtin), type(raised.value).__mro__
    assert str(raised.value)
