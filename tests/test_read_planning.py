"""Reads of a WCS planned from the union of the geometries' windows (zonal._cover.cover).

The rectangles are checked cell by cell against the union of the boxes asked for; at the
WCS test server (MapServer), the bytes and requests of a dense set are counted.
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely

import cas_xr as cas
from cas_xr.testing import make_cog
from cas_xr.zonal._cover import cover
from tests.test_remote_reads import GRID, TILE, _values, _window_cells, wcs_and_disk


@pytest.fixture(scope="module")
def cog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("planning")
    return make_cog(folder / "dem.tif", _values(), transform=GRID, crs="EPSG:4326", blocksize=TILE)


def _random_boxes(n: int, side: int, extent: int, seed: int) -> list[tuple[int, int, int, int]]:
    rng = np.random.default_rng(seed)
    out = []
    for r, c in rng.integers(0, extent - side, (n, 2)):
        h, w = rng.integers(side // 2, side + 1, 2)
        out.append((int(r), int(r + h), int(c), int(c + w)))
    return out


def _counts(rects: list[tuple[int, int, int, int]], extent: int) -> np.ndarray:
    counts = np.zeros((extent, extent), dtype=np.int32)
    for r0, r1, c0, c1 in rects:
        counts[r0:r1, c0:c1] += 1
    return counts


@pytest.mark.parametrize(("n", "budget"), [(1, 1.2), (40, 1.0), (300, 1.2), (300, 1.5), (300, 3.0)])
def test_cover_reads_every_needed_cell_once_within_the_budget(n: int, budget: float):
    boxes = _random_boxes(n, 60, 700, seed=n)
    needed = _counts(boxes, 700) > 0
    rects = cover(boxes, 256, budget)
    counts = _counts(rects, 700)
    assert (counts[needed] == 1).all()  # every needed cell, once (disjoint rectangles)
    assert counts.max() == 1
    assert counts.sum() <= budget * needed.sum()
    assert max(max(r1 - r0, c1 - c0) for r0, r1, c0, c1 in rects) <= 256
    if budget == 1.0:
        assert counts.sum() == needed.sum()


def test_a_larger_budget_takes_fewer_requests():
    boxes = _random_boxes(300, 60, 700, seed=3)
    counts = [len(cover(boxes, 256, budget)) for budget in (1.0, 1.2, 1.5, 3.0, 100.0)]
    assert counts == sorted(counts, reverse=True)
    assert counts[0] > 2 * counts[1]  # the exact union takes many more rectangles
    assert counts[-1] == 9  # one per square of 256 cells (700 cells: 3 x 3 squares)


def test_far_apart_boxes_are_read_apart_and_empty_boxes_are_ignored():
    boxes = [(0, 10, 0, 10), (500, 510, 500, 510), (5, 5, 0, 10)]
    assert sorted(cover(boxes, 1024, 1.2)) == [(0, 10, 0, 10), (500, 510, 500, 510)]


def _dense(n: int, seed: int) -> gpd.GeoSeries:
    """``n`` quadrilaterals of about 40 x 40 cells over a 400 x 400-cell corner: dense."""
    rng = np.random.default_rng(seed)
    shapes = []
    for r, c in rng.uniform(0, 360, (n, 2)):  # corners off the cell edges, as in nature
        x, y = GRID * (c, r)
        shapes.append(
            shapely.Polygon(
                [(x, y), (x + 0.04, y - 0.003), (x + 0.037, y - 0.04), (x - 0.002, y - 0.038)]
            )
        )
    return gpd.GeoSeries(shapes, crs="EPSG:4326")


def test_a_dense_set_at_the_wcs_reads_at_most_a_quarter_more_than_its_windows(
    mapserv: str, cog: Path, tmp_path: Path
):
    geometries = _dense(120, seed=5)
    with wcs_and_disk(cog, tmp_path) as server:
        cas.extract_table(geometries[:1], ["wcs:dem"])  # describes the coverage: not counted
        server.reset()
        remote = cas.extract_table(geometries[1:], ["wcs:dem"])
        coverages = [r for r in server.records if "GetCoverage" in r.path]
    floor = _window_cells(geometries[1:]) * np.dtype(_values().dtype).itemsize
    box = 400 * 400 * 4  # the box around them all: what one request per square reads
    sent = sum(r.bytes_sent for r in coverages)  # GeoTIFF headers included
    assert floor < 0.7 * box  # dense, with gaps
    assert floor <= sent <= 1.25 * floor
    assert len(coverages) <= len(geometries)
    disk = cas.extract_table(geometries[1:], ["disk:dem"])
    np.testing.assert_allclose(remote["wcs:dem_mean"], disk["disk:dem_mean"], rtol=0, atol=1e-9)


def test_a_window_one_cell_high_is_read_as_two(mapserv: str, cog: Path, tmp_path: Path):
    # MapServer answers a request one row high with a GeoTIFF whose transform is NaN
    x, y = GRID * (300.2, 400.3)
    thin = gpd.GeoSeries(
        [shapely.box(x, y - 0.0004, x + 0.03, y), shapely.box(x + 0.1, y - 0.05, x + 0.1004, y)],
        crs="EPSG:4326",
    )
    with wcs_and_disk(cog, tmp_path):
        remote = cas.extract_table(thin, ["wcs:dem"])
    disk = cas.extract_table(thin, ["disk:dem"])
    assert not remote["wcs:dem_mean"].isna().any()
    np.testing.assert_allclose(remote["wcs:dem_mean"], disk["disk:dem_mean"], rtol=0, atol=1e-9)
