"""A sparse window is cut to what its reader can fetch (zonal._sparse.window_of).

A reader of whole chunks (a COG's tiles, Zarr chunks) gets the touched chunks; a reader
of any window (a WCS) gets the geometries' windows inside them. The cells the geometries
need are the same either way.
"""

from __future__ import annotations

from typing import Any, ClassVar

import dask
import dask.array as dsa
import numpy as np
import pytest
import shapely
import xarray as xr
from dask.highlevelgraph import HighLevelGraph

from cas_xr.zonal._encoding import Encoding
from cas_xr.zonal._sparse import _covered, reads_any_window, touched_edges, window_of

SIDE, CHUNK = 32, 16


class _ChunkReader:
    """Reads whole chunks of ``values`` (what a COG's tile reader does)."""

    def __init__(self, values: np.ndarray) -> None:
        self.values = values

    def __call__(self, rows: slice, cols: slice) -> np.ndarray:
        return self.values[rows, cols]


class _AnyWindowReader(_ChunkReader):
    reads_any_window: ClassVar[bool] = True


def _lazy(reader: _ChunkReader) -> xr.DataArray:
    name = f"read-{type(reader).__name__}"
    edges = [(a, a + CHUNK) for a in range(0, SIDE, CHUNK)]
    graph: dict[Any, Any] = {
        (name, i, j): (reader, slice(r0, r1), slice(c0, c1))
        for i, (r0, r1) in enumerate(edges)
        for j, (c0, c1) in enumerate(edges)
    }
    data = dsa.Array(
        HighLevelGraph.from_collections(name, graph),
        name,
        chunks=((CHUNK,) * (SIDE // CHUNK),) * 2,
        dtype=np.float64,
        meta=np.empty((0, 0)),
    )
    return xr.DataArray(data, dims=("y", "x"))


def _boxes(windows: list[tuple[int, int, int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """Geometries in cell units (x = column, y = row) and their cell windows."""
    shapes = np.array([shapely.box(c0, r0, c1, r1) for r0, r1, c0, c1 in windows])
    return shapes, np.array(windows, dtype=np.int64)


def _parts(result: Any) -> int:
    """The pieces a window is assembled from (its layer's tasks but the assembly)."""
    return len(result.dask.layers[result.key]) - 1


#: Eight small windows in the top-left chunk and one in the bottom-right: two of the
#: four chunks in the window are touched.
WINDOWS = [(r, r + 2, c, c + 2) for r in (1, 5) for c in (1, 5, 9, 12)] + [(20, 30, 20, 30)]


@pytest.mark.parametrize(("reader", "parts"), [(_ChunkReader, 2), (_AnyWindowReader, 9)])
def test_a_window_is_read_as_its_reader_can(reader: type[_ChunkReader], parts: int):
    values = np.arange(SIDE * SIDE, dtype=np.float64).reshape(SIDE, SIDE)
    var = _lazy(reader(values))
    assert reads_any_window(var.data) is (reader is _AnyWindowReader)
    shapes, bounds = _boxes(WINDOWS)
    result = window_of(var, Encoding(), (0, SIDE, 0, SIDE), shapes, lambda xy: xy, bounds)
    assert _parts(result) == parts
    (window,) = dask.compute(result, scheduler="sync")
    for r0, r1, c0, c1 in WINDOWS:
        np.testing.assert_array_equal(window[r0:r1, c0:c1], values[r0:r1, c0:c1])
    untouched = window[:CHUNK, CHUNK:]  # no geometry touches the top-right chunk
    assert np.isnan(untouched).all()


def test_a_chunk_reader_reads_a_window_whole_when_every_chunk_is_touched():
    values = np.ones((SIDE, SIDE))
    var = _lazy(_ChunkReader(values))
    corners = [(r, r + 2, c, c + 2) for r in (2, 20) for c in (2, 20)]
    shapes, bounds = _boxes(corners)
    result = window_of(var, Encoding(), (0, SIDE, 0, SIDE), shapes, lambda xy: xy, bounds)
    assert isinstance(result, dsa.Array)  # the slice of the array, no assembly
    anywhere = window_of(
        _lazy(_AnyWindowReader(values)), Encoding(), (0, SIDE, 0, SIDE), shapes,
        lambda xy: xy, bounds,
    )  # fmt: skip
    assert _parts(anywhere) == 4


class _Recorded:
    """An array read lazily by Dask's getter (as xarray's backends are): notes each read."""

    def __init__(self, values: np.ndarray) -> None:
        self.values, self.shape, self.dtype, self.ndim = values, values.shape, values.dtype, 2
        self.reads: list[tuple[slice, ...]] = []

    def __getitem__(self, index: tuple[slice, ...]) -> np.ndarray:
        self.reads.append(index)
        return self.values[index]


def test_a_getter_read_chunk_is_read_only_where_the_window_needs_it():
    values = np.arange(SIDE * SIDE, dtype=np.float64).reshape(SIDE, SIDE)
    recorded = _Recorded(values)
    var = xr.DataArray(dsa.from_array(recorded, chunks=CHUNK), dims=("y", "x"))
    recorded.reads.clear()  # from_array's look at an empty corner (its meta)
    inside = [(1, 3, 1, 3), (18, 20, 17, 20)]  # chunks (0, 0) and (1, 1) of the window
    shapes, bounds = _boxes(inside)
    result = window_of(var, Encoding(), (0, 20, 0, 20), shapes, lambda xy: xy, bounds)
    (window,) = dask.compute(result, scheduler="sync")
    for r0, r1, c0, c1 in inside:
        np.testing.assert_array_equal(window[r0:r1, c0:c1], values[r0:r1, c0:c1])
    # each part read by one getter call of its own cells: the bottom-right chunk's four
    # rows and columns in the window, never the chunk's 16 x 16
    read = sorted((r.start, r.stop, c.start, c.stop) for r, c in recorded.reads)
    assert read == [(0, 16, 0, 16), (16, 20, 16, 20)]


def _union_cells(bounds: np.ndarray, window: tuple[int, int, int, int]) -> int:
    r0, r1, c0, c1 = window
    cells = np.zeros((r1 - r0, c1 - c0), dtype=bool)
    for a, b, c, d in bounds:
        cells[max(a - r0, 0) : max(b - r0, 0), max(c - c0, 0) : max(d - c0, 0)] = True
    return int(np.count_nonzero(cells))


def test_the_cells_under_the_geometries_windows_are_counted_exactly_or_estimated_closely():
    rng = np.random.default_rng(7)
    for _ in range(200):  # windows of up to 500 cells a side: exact
        r0, c0 = (int(v) for v in rng.integers(0, 50, 2))
        h, w = (int(v) for v in rng.integers(1, 500, 2))
        n = int(rng.integers(2, 30))
        a, c = rng.integers(r0 - 20, r0 + h + 20, n), rng.integers(c0 - 20, c0 + w + 20, n)
        bounds = np.column_stack([a, a + rng.integers(0, 300, n), c, c + rng.integers(0, 300, n)])
        window = (r0, r0 + h, c0, c0 + w)
        assert _covered(bounds, window) == _union_cells(bounds, window)
    window = (0, 3000, 0, 2500)
    for n in (1, 2, 5, 16):  # a few windows: exact at any size
        a, c = rng.integers(-100, 3000, n), rng.integers(-100, 2500, n)
        bounds = np.column_stack([a, a + rng.integers(0, 2000, n), c, c + rng.integers(0, 2000, n)])
        assert _covered(bounds, window) == _union_cells(bounds, window)
    # more, on a coarser grid: within 1 %
    a, c = rng.integers(0, 3000, 2000), rng.integers(0, 2500, 2000)
    bounds = np.column_stack([a, a + 45, c, c + 45])
    assert _covered(bounds, window) == pytest.approx(_union_cells(bounds, window), rel=0.01)


def test_a_chunk_holding_a_geometrys_window_is_touched_as_its_shapes_say():
    rng = np.random.default_rng(3)
    for _ in range(50):
        n = int(rng.integers(1, 12))
        r, c = rng.integers(0, SIDE - 4, n), rng.integers(0, SIDE - 4, n)
        windows = [(int(a), int(a + rng.integers(1, 4)), int(b), int(b + rng.integers(1, 4)))
                   for a, b in zip(r, c, strict=True)]  # fmt: skip
        shapes, bounds = _boxes(windows)
        chunks = ((CHUNK,) * (SIDE // CHUNK),) * 2
        by_shapes = touched_edges(shapes, lambda xy: xy, chunks, (0, SIDE, 0, SIDE))
        by_bounds = touched_edges(shapes, lambda xy: xy, chunks, (0, SIDE, 0, SIDE), bounds)
        assert sorted(by_bounds[0]) == sorted(by_shapes[0])
        assert by_bounds[1] == by_shapes[1]


def test_a_part_is_found_without_building_the_whole_read_layer():
    recorded = _Recorded(np.zeros((SIDE * 8, SIDE * 8)))
    var = xr.DataArray(dsa.from_array(recorded, chunks=4), dims=("y", "x"))  # 4,096 chunks
    layer = var.data.dask.layers[var.data.name]
    shapes, bounds = _boxes([(1, 3, 1, 3), (18, 20, 17, 20)])
    result = window_of(var, Encoding(), (0, 20, 0, 20), shapes, lambda xy: xy, bounds)
    assert not layer.is_materialized()  # a service keeps opened cubes of 10^5-10^6 chunks
    (window,) = dask.compute(result, scheduler="sync")
    assert window.shape == (20, 20)
