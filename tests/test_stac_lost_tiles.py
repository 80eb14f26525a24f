"""A tile of a static STAC layer that the server keeps refusing: DEGRADED, as a local COG's.

The server is real (a range server on 127.0.0.1 answering 500 to one tile's ranges of one
file); the numbers are checked against the files' values with the lost range as nodata.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest
import shapely
from affine import Affine

import cas_xr as cas
from cas_xr.errors import QualityWarning, SourceError
from cas_xr.testing import StacCollectionSpec, StacItemSpec, make_cog, make_stac_catalog, tiff_tiles
from tests.test_cog_reads import _box, _refusing, as_nodata, degraded_then_good, lost_tiles
from tests.test_remote_reads import GRID, TILE, _values, stac_provider
from tests.test_stac_temporal_reads import _provider as temporal_provider

#: rows and columns of four tiles of the west half: (2..3, 1..2), a corner in each
R0, R1, C0, C1 = 2 * TILE + 64, 3 * TILE + 64, TILE + 64, 2 * TILE + 64


def test_a_static_layers_refused_tile_is_nodata_and_the_result_degraded(tmp_path: Path):
    values = _values()
    half = values.shape[1] // 2
    west = make_cog(tmp_path / "west.tif", values[:, :half], transform=GRID, crs="EPSG:4326",
                    blocksize=TILE, nodata=-9999.0)  # fmt: skip
    make_cog(tmp_path / "east.tif", values[:, half:], transform=GRID @ Affine.translation(half, 0),
             crs="EPSG:4326", blocksize=TILE, nodata=-9999.0)  # fmt: skip
    when = dt.datetime(2020, 1, 1)
    items = [StacItemSpec("west", west, when), StacItemSpec("east", tmp_path / "east.tif", when)]
    make_stac_catalog(tmp_path, [StacCollectionSpec("dem", "two tiles", items)])
    request = {"geometry": _box(R0, R1, C0, C1), "dataset_ids": ["s:dem"]}
    with _refusing(tmp_path) as server:
        stac_provider(tmp_path, "s", server.url + "catalog.json")
        cas.configure(provider_files=[tmp_path / "s.yaml"], http_retries=1)
        server.refused, server.refused_file = [tiff_tiles(west)[(2, 1)]], "west.tif"
        with pytest.warns(QualityWarning, match="degraded"):
            response = cas.extract_sync(request)
        asked = dict(server.asked)
        server.refused = []  # the server recovers: the degraded result was not cached
        again = cas.extract_sync(request).results[0]
    kept = as_nodata(values, lost_tiles(west, asked, (2, 1)))  # west's columns: the layer's
    degraded_then_good(response, again, kept[R0:R1, C0:C1], values[R0:R1, C0:C1])


def test_an_item_under_a_refused_tile_shows_through(tmp_path: Path):
    """Overlapping items: the lost cells of the first come from the next, as in a mosaic."""
    values = _values()
    top = make_cog(tmp_path / "top.tif", values, transform=GRID, crs="EPSG:4326",
                   blocksize=TILE, nodata=-9999.0)  # fmt: skip
    under = values + np.float32(1000)
    make_cog(tmp_path / "under.tif", under, transform=GRID, crs="EPSG:4326", blocksize=TILE,
             nodata=-9999.0)  # fmt: skip
    items = [
        StacItemSpec("top", top, dt.datetime(2021, 1, 1)),  # newer: first in precedence
        StacItemSpec("under", tmp_path / "under.tif", dt.datetime(2020, 1, 1)),
    ]
    make_stac_catalog(tmp_path, [StacCollectionSpec("dem", "two layers", items)])
    with _refusing(tmp_path) as server:
        stac_provider(tmp_path, "s", server.url + "catalog.json")
        cas.configure(provider_files=[tmp_path / "s.yaml"], http_retries=1)
        server.refused, server.refused_file = [tiff_tiles(top)[(2, 1)]], "top.tif"
        with pytest.warns(QualityWarning, match="degraded"):
            result = cas.extract_sync(
                {"geometry": _box(R0, R1, C0, C1), "dataset_ids": ["s:dem"]}
            ).results[0]
        asked = dict(server.asked)
    lost = lost_tiles(top, asked, (2, 1))
    mosaic = values.astype(np.float64)
    for i, j in lost:
        cells = (slice(i * TILE, (i + 1) * TILE), slice(j * TILE, (j + 1) * TILE))
        mosaic[cells] = under[cells]
    assert result.quality is cas.QualityFlag.DEGRADED
    assert result.value == pytest.approx(mosaic[R0:R1, C0:C1].mean(), rel=1e-6)


def test_a_time_steps_refused_tile_is_nodata_in_that_step(tmp_path: Path):
    values = _values()
    half = values.shape[1] // 2
    specs, files = [], []
    for n in range(2):
        step = values[:, :half] + np.float32(10 * n)
        cog = make_cog(tmp_path / f"w{n}.tif", step, transform=GRID, crs="EPSG:4326",
                       blocksize=TILE, nodata=-9999.0)  # fmt: skip
        specs.append(StacItemSpec(f"w{n}", cog, dt.datetime(2021, n + 1, 1)))
        files.append(cog)
    make_stac_catalog(tmp_path, [StacCollectionSpec("rain", "monthly steps", specs)])
    request = {
        "geometry": _box(R0, R1, C0, C1), "dataset_ids": ["t:rain"],
        "time_range": ("2021-01-01", "2021-02-28"),
    }  # fmt: skip
    with _refusing(tmp_path) as server:
        temporal_provider(tmp_path, "t", server.url + "catalog.json")
        cas.configure(provider_files=[tmp_path / "t.yaml"], http_retries=1)
        server.refused, server.refused_file = [tiff_tiles(files[0])[(2, 1)]], "w0.tif"
        with pytest.warns(QualityWarning, match="degraded"):
            result = cas.extract_sync(request).results[0]
        asked = dict(server.asked)
        box = shapely.geometry.shape(request["geometry"]).bounds
        with pytest.raises(SourceError, match="writes no file with holes"):  # raster mode
            cas.extract_raster_sync(
                "t:rain", box, tmp_path / "out", time_range=request["time_range"]
            )
        assert not list((tmp_path / "out").glob("*.tif"))
    lost = lost_tiles(files[0], asked, (2, 1))
    first = as_nodata(values, lost)[R0:R1, C0:C1]  # step 0 lost the tiles; step 1 did not
    second = values[R0:R1, C0:C1].astype(np.float64) + 10
    assert result.quality is cas.QualityFlag.DEGRADED and result.error is None
    assert result.value == pytest.approx((np.nanmean(first) + second.mean()) / 2, rel=1e-6)
