"""Time steps of STAC items whose assets are COGs on one lattice, read by tile.

A temporal layer (monthly precipitation, a time series of scenes on one grid) has one
item or more per time step. When every item is a COG on the lattice of the latest one
(one CRS and cell size, whole-cell offsets), :func:`tiled_steps` builds its
``(time, y, x)`` cube from one :class:`~cas_xr.sources._stac_tiles.MosaicReader` per
step instead of odc-stac. The steps are odc-stac's (``groupby="time"``): the items of
one nominal time (``datetime``, else ``start_datetime``, else ``end_datetime``), fused
in precedence order, in time order. The chunks are the latest item's internal tiles,
one step deep, all read by one :class:`StepsReader`: :func:`~cas_xr.zonal._reads.compute`
fetches the tiles of every step a computation needs together (one round of requests
however many steps, within the host's cap), and a computation that keeps one step (the
latest, without a time range) reads that step's tiles alone.

Opening the layer reads the latest item's header only. The other items are placed from
their STAC metadata (``proj:`` grid and ``raster:bands`` data type, see
:class:`~cas_xr.sources._stac_tiles.Claim`); their headers are read when their first
tiles are needed, all at once, and checked against it (a step's tiles are asked for as
soon as its items' headers are in). The header of an item without that metadata is read
when the layer is opened, as for a static layer. Steps are labelled in UTC (odc-stac
drops a time's UTC offset without converting it; the times of STAC's examples are UTC).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, wait
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import numpy as np
import numpy.typing as npt
from affine import Affine

from cas_xr.errors import SourceError
from cas_xr.sources._cog import CogReader, aligned, known_versions
from cas_xr.sources._grid import proj_grid, snap_bounds
from cas_xr.sources._http import io_pool
from cas_xr.sources._lost import LossyReader, Read, lossy_arrays
from cas_xr.sources._opened import opened
from cas_xr.sources._stac_tiles import (
    Claim,
    MosaicReader,
    _href,
    _Job,
    _nodata,
    _on_one_lattice,
    _Part,
    lost_fill,
)

if TYPE_CHECKING:
    import dask.array
    import pystac

__all__ = ["StepsReader", "tiled_steps"]

_Window = tuple[slice, slice]
#: ``(steps, rows, cols)``: a read task's cells
_Cells = tuple[slice, slice, slice]


@dataclass(frozen=True)
class StepsReader:
    """Reads windows of time steps, each a mosaic of items (the layer's Dask read tasks).

    Parameters
    ----------
    steps
        One reader per time step, in time order, all of one dtype.
    """

    steps: tuple[MosaicReader, ...]

    def __call__(self, steps: slice, rows: slice, cols: slice) -> npt.NDArray[Any]:
        """The cells ``rows, cols`` of the steps ``steps``, as ``(step, y, x)``."""
        return self.read_many([(steps, rows, cols)])[0]

    def read_many(self, windows: Sequence[_Cells]) -> list[npt.NDArray[Any]]:
        """The cells of each window, the tiles of every step fetched at once.

        The headers of the items under the windows not read yet (placed from their STAC
        metadata) are read first, all at once, and checked: a step's tiles are asked for
        as soon as the headers of its items are in.

        Raises
        ------
        SourceError
            When a range cannot be fetched (after the retries), a tile does not decode,
            or an item's COG is not where its STAC metadata puts it.
        """
        return [cells for cells, _ in self.gather(windows, lost=None)]

    def gather(self, windows: Sequence[_Cells], *, lost: float | None) -> list[Read]:
        """As :meth:`read_many`, each window with None or the error of a tile it lost.

        With ``lost``, a tile the server still refuses after the retries, in any step, is
        read as ``lost`` (see :meth:`~cas_xr.sources._stac_tiles.MosaicReader.assemble`);
        without, it raises.
        """
        asked: dict[int, list[tuple[int, _Window]]] = {}
        for k, (steps, rows, cols) in enumerate(windows):
            for t in range(steps.start, steps.stop):
                asked.setdefault(t, []).append((k, (rows, cols)))
        jobs = self._submit({t: [w for _, w in spots] for t, spots in asked.items()})
        dtype = np.dtype(self.steps[0].dtype)
        out = [
            np.empty((s.stop - s.start, r.stop - r.start, c.stop - c.start), dtype=dtype)
            for s, r, c in windows
        ]
        errors: list[SourceError | None] = [None] * len(windows)
        for t, spots in asked.items():
            planes = self.steps[t].assemble([w for _, w in spots], jobs[t], lost=lost)
            for (k, _), (plane, error) in zip(spots, planes, strict=True):
                out[k][t - windows[k][0].start] = plane
                errors[k] = errors[k] or error
        return list(zip(out, errors, strict=True))

    def _submit(self, asked: dict[int, list[_Window]]) -> dict[int, list[_Job]]:
        """Start fetching the tiles under the windows of each step, headers first."""
        waiting = {
            t: {p.reader.url: p for p in self.steps[t].touched(windows) if p.claim is not None}
            for t, windows in asked.items()
        }
        checks = {
            url: io_pool().submit(part.check)
            for parts in waiting.values()
            for url, part in parts.items()
        }  # every header at once
        jobs = {}
        while waiting:
            for t in [t for t, parts in waiting.items() if all(checks[u].done() for u in parts)]:
                for url in waiting.pop(t):
                    checks[url].result()  # raises a failed check
                jobs[t] = self.steps[t].submit(asked[t])
            if waiting:  # for the next header of a step not ready yet
                pending = {checks[u] for parts in waiting.values() for u in parts}
                wait([f for f in pending if not f.done()], return_when=FIRST_COMPLETED)
        return jobs


def _utc(value: datetime) -> datetime:
    """``value`` as a naive UTC time (a naive one is taken as UTC)."""
    return value if value.tzinfo is None else value.astimezone(UTC).replace(tzinfo=None)


def _nominal(item: pystac.Item) -> datetime | None:
    """The item's time step as odc-stac takes it: its datetime, else its start or end."""
    if item.datetime is not None:
        return _utc(item.datetime)
    from pystac.utils import str_to_datetime

    for key in ("start_datetime", "end_datetime"):
        if item.properties.get(key):
            return _utc(str_to_datetime(item.properties[key]))
    return None


def _steps(items: Sequence[pystac.Item]) -> list[tuple[datetime, list[pystac.Item]]] | None:
    """The items by time step, in time order (each step's in the order given)."""
    by_time: dict[datetime, list[pystac.Item]] = {}
    for item in items:
        when = _nominal(item)
        if when is None:
            return None  # odc-stac says what is wrong
        by_time.setdefault(when, []).append(item)
    return sorted(by_time.items(), key=lambda step: step[0])


def _claim(item: pystac.Item, asset: str) -> Claim | None:
    """Where the item's STAC metadata puts its COG; None when it does not say it all."""
    grid = proj_grid(item, asset)
    bands = item.assets[asset].extra_fields.get("raster:bands") or []
    kind = bands[0].get("data_type") if bands else None
    if grid is None or kind is None or not grid.crs.upper().startswith("EPSG:"):
        return None
    t = grid.transform
    if t.b or t.d or t.a <= 0 or t.e >= 0:
        return None
    try:
        epsg, dtype = int(grid.crs[5:]), np.dtype(kind)
    except (TypeError, ValueError):  # e.g. "cint16", "other": the header tells
        return None
    return Claim(item.id, epsg, t, grid.shape, str(dtype))


def _on_lattice(claim: Claim, epsg: int, origin: Affine, dtype: str) -> bool:
    """Whether ``claim`` puts its COG on the lattice of ``origin``, with ``dtype``."""
    t = claim.transform
    offsets = ((t.c - origin.c) / origin.a, (t.f - origin.f) / origin.e)
    return (
        claim.epsg == epsg
        and abs(t.a / origin.a - 1) <= 1e-9
        and abs(t.e / origin.e - 1) <= 1e-9
        and all(abs(v - round(v)) <= 1e-6 for v in offsets)
        and claim.dtype == dtype
    )


def tiled_steps(
    items: Sequence[pystac.Item],
    *,
    asset: str,
    bounds: Callable[[str], tuple[float, float, float, float]],
    patch_url: Callable[[str], str] | None,
    provider: str,
) -> (
    tuple[
        dask.array.Array,
        dask.array.Array | None,
        npt.NDArray[np.datetime64],
        Affine,
        str,
        float | None,
    ]
    | None
):
    """The time steps of ``items`` read by tile, or None when odc-stac must read them.

    Parameters
    ----------
    items
        The items in precedence order (newest first, ties by id).
    asset
        Asset key of the raster (one band).
    bounds
        The box to cover, in the given CRS (e.g. ``"EPSG:4326"``).
    patch_url
        Rewrites (e.g. signs) asset URLs.
    provider
        Provider slug, named in errors.

    Returns
    -------
    tuple or None
        The Dask array ``(time, y, x)``; its chunks' failed-chunk flags (None for files on
        disk or a dtype without nodata: a lost tile then fails the read); its steps
        (``datetime64[ns]``, naive UTC); the transform of its first cell, its CRS and
        nodata.
    """
    steps = _steps(items)
    hrefs = {item.id: _href(item, asset, patch_url) for item in items}
    schemes = {urlsplit(h).scheme for h in hrefs.values()}
    if steps is None or not schemes <= {"http", "https", ""}:
        return None  # s3://, gs://... : GDAL's /vsi drivers, through odc-stac
    claims = {item.id: _claim(item, asset) for item in items[1:]}
    now = (items[0].id, *(name for name, claim in claims.items() if claim is None))
    paths = tuple(hrefs[name] for name in now)
    found = opened(
        ("stac-tiles", provider),
        lambda: _on_one_lattice(paths, provider),
        paths=paths,
        versions=lambda: known_versions(paths),
    )
    if found is None:
        return None
    read = dict(zip(now, found, strict=True))
    first = found[0][1]
    assert first.geo is not None
    t0, dtype = first.geo.transform, str(first.dtype)
    later = [claim for claim in claims.values() if claim is not None]
    if not all(_on_lattice(claim, first.geo.epsg, t0, dtype) for claim in later):
        return None
    crs = f"EPSG:{first.geo.epsg}"
    transform, shape = snap_bounds(t0, bounds(crs))

    def part(item: pystac.Item) -> _Part:
        if item.id in read:
            reader, header = read[item.id]
            assert header.geo is not None
            t, size, claim = header.geo.transform, header.shape, None
        else:
            claim = claims[item.id]
            assert claim is not None
            reader = CogReader(hrefs[item.id], 1, provider)
            t, size = claim.transform, claim.shape
        row, col = round((t.f - transform.f) / t0.e), round((t.c - transform.c) / t0.a)
        return _Part(reader, row, col, size, claim)

    nodata = _nodata(items[0], asset, first)
    reader = StepsReader(
        tuple(MosaicReader(tuple(map(part, group)), dtype, nodata) for _, group in steps)
    )
    r0, c0 = round((transform.f - t0.f) / t0.e), round((transform.c - t0.c) / t0.a)
    rows, cols = slice(r0, r0 + shape[0]), slice(c0, c0 + shape[1])  # on the first item's tiles
    data, failed = _steps_arrays(
        reader, rows, cols, first.tile, np.dtype(dtype), offset=(r0, c0),
        lost=lost_fill(hrefs.values(), np.dtype(dtype), nodata),
    )  # fmt: skip
    times = np.array([when for when, _ in steps], dtype="datetime64[ns]")
    return data, failed, times, transform, crs, nodata


def _steps_arrays(
    reader: StepsReader,
    rows: slice,
    cols: slice,
    tile: tuple[int, int],
    dtype: np.dtype[Any],
    *,
    offset: tuple[int, int],
    lost: float | None,
) -> tuple[dask.array.Array, dask.array.Array | None]:
    """Cells ``rows, cols`` of every step, one read task ``(reader, step, rows, cols)`` a tile.

    As :func:`~cas_xr.sources._cog.tile_array`, one step deep: chunk edges fall on
    multiples of ``tile``, and the read tasks get the chunks' cells minus ``offset``.
    With ``lost``, a tile the server keeps refusing is read as it, and the chunks'
    failed-chunk flags come too (:func:`~cas_xr.sources._lost.lossy_arrays`); else None.
    """
    import dask.array as dsa
    from dask.base import tokenize
    from dask.highlevelgraph import HighLevelGraph

    name = f"cas-stac-steps-{tokenize(reader, rows, cols, tile, offset, lost)}"
    edges = [
        list(
            itertools.pairwise(
                itertools.accumulate(aligned(a.start, a.stop - a.start, n), initial=a.start - o)
            )
        )
        for a, n, o in ((rows, tile[0], offset[0]), (cols, tile[1], offset[1]))
    ]
    count = len(reader.steps)
    task: Any = reader if lost is None else LossyReader(reader, lost)
    read = name if lost is None else f"read-{name}"
    graph: dict[Any, Any] = {
        (read, t, i, j): (task, slice(t, t + 1), slice(r0, r1), slice(c0, c1))
        for t in range(count)
        for (i, (r0, r1)), (j, (c0, c1)) in itertools.product(*map(enumerate, edges))
    }
    chunks = ((1,) * count, *(tuple(b - a for a, b in e) for e in edges))
    if lost is not None:
        return lossy_arrays(graph, name, chunks, dtype)
    data = dsa.Array(
        HighLevelGraph.from_collections(name, graph), name, chunks=chunks, dtype=dtype,
        meta=np.empty((0, 0, 0), dtype),
    )  # fmt: skip
    return data, None
