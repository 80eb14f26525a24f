"""What both STAC sources share: item filters, the source grid, the lazy odc-stac load."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

from affine import Affine

from cas_xr.config import get_settings
from cas_xr.errors import SourceError
from cas_xr.sources._base import gdal_options
from cas_xr.sources._footprints import FOOTPRINTS, Footprint
from cas_xr.sources._grid import ItemGrid, lonlat_bounds_to_crs, proj_grid, snap_bounds
from cas_xr.sources._stac_steps import tiled_steps
from cas_xr.sources._stac_tiles import tiled_items

if TYPE_CHECKING:
    import pystac
    import xarray as xr

    from cas_xr.models import TimeRange

__all__ = [
    "StacItemsSource",
    "in_time_range",
    "intersects",
    "load_items",
    "no_items_error",
    "precedence",
]

# odc-stac names geographic dims latitude/longitude; sources always return y/x
_DIMS = {"latitude": "y", "longitude": "x"}


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _item_interval(item: pystac.Item) -> tuple[datetime, datetime] | None:
    props = item.properties
    if "start_datetime" in props and "end_datetime" in props:
        from pystac.utils import str_to_datetime

        return _aware(str_to_datetime(props["start_datetime"])), _aware(
            str_to_datetime(props["end_datetime"])
        )
    if item.datetime is None:
        return None
    return _aware(item.datetime), _aware(item.datetime)


def precedence(item: pystac.Item) -> tuple[float, str]:
    """Sort key of tile precedence: newest item first, ties broken by id.

    An item's time is its ``datetime``, else its ``start_datetime``; items without either
    come last. Where items overlap, the first valid (not nodata) cell in this order wins.
    """
    when = item.datetime
    if when is None and "start_datetime" in item.properties:
        from pystac.utils import str_to_datetime

        when = str_to_datetime(item.properties["start_datetime"])
    return (-_aware(when).timestamp() if when is not None else math.inf, item.id)


def in_time_range(item: pystac.Item, time_range: TimeRange | None) -> bool:
    """Whether the item's time (instant or start/end interval) meets ``time_range``.

    Items without any time, and any item when ``time_range`` is None, pass.
    """
    if time_range is None:
        return True
    interval = _item_interval(item)
    if interval is None:
        return True
    start, end = _aware(time_range.start), _aware(time_range.end)
    return interval[0] <= end and interval[1] >= start


def _lonlat_bbox(item: pystac.Item) -> tuple[float, float, float, float] | None:
    if item.bbox is None:
        return None
    b = item.bbox
    return (b[0], b[1], b[2], b[3]) if len(b) == 4 else (b[0], b[1], b[3], b[4])


def intersects(item: pystac.Item, bbox: Sequence[float] | None) -> bool:
    """Whether the item's bbox overlaps ``bbox`` (lon/lat) by more than an edge."""
    lonlat = _lonlat_bbox(item)
    if bbox is None or lonlat is None:
        return True
    x0, y0, x1, y1 = lonlat
    return x0 < bbox[2] and bbox[0] < x1 and y0 < bbox[3] and bbox[1] < y1


def no_items_error(
    collection: str,
    bbox: Sequence[float] | None,
    time_range: TimeRange | None,
    *,
    provider: str,
    url: str,
) -> SourceError:
    """The ``kind="no_data"`` error for a request that no item of ``collection`` meets."""
    when = (
        ""
        if time_range is None
        else f" and time range {time_range.start.isoformat()}..{time_range.end.isoformat()}"
    )
    return SourceError(
        f"no item of collection {collection!r} intersects bbox {bbox}{when}",
        provider=provider,
        url=url,
        kind="no_data",
    )


def _footprint(item: pystac.Item, asset: str, temporal: bool) -> Footprint:
    """Where an item's asset lies: its pixel grid, else its lon/lat bbox (None: unknown).

    The projection extension's grid gives the exact bounds in the item's own CRS; the
    ``bbox`` (always lon/lat) may be wider than the data of an item in another CRS. An
    item of a time step (``temporal``) adds its time interval.
    """
    grid = proj_grid(item, asset)
    lonlat = _lonlat_bbox(item)
    if grid is not None:
        out: list[Any] = [grid.crs, *(float(v) for v in grid.bounds)]
    elif lonlat is not None:
        out = ["EPSG:4326", *(float(v) for v in lonlat)]
    else:
        return None
    interval = _item_interval(item) if temporal else None
    return out if interval is None else [*out, *(t.isoformat() for t in interval)]


def _described(
    da: xr.DataArray,
    items: Sequence[pystac.Item],
    asset: str,
    provenance: Mapping[str, Any],
    *,
    temporal: bool = False,
) -> xr.DataArray:
    """``da`` with its provenance (the ids of ``items`` added) and their footprints."""
    da.attrs["cas_provenance"] = {**provenance, "items": [it.id for it in items]}
    da.attrs[FOOTPRINTS] = {"items": {it.id: _footprint(it, asset, temporal) for it in items}}
    return da


def _item_grid(
    item: pystac.Item, asset: str, patch_url: Callable[[str], str] | None = None
) -> ItemGrid:
    """The pixel grid of one asset: the projection extension, else the file's header."""
    grid = proj_grid(item, asset)
    if grid is not None:
        return grid
    import rasterio

    href = item.assets[asset].get_absolute_href() or item.assets[asset].href
    with (
        rasterio.Env(**gdal_options(get_settings())),
        rasterio.open(patch_url(href) if patch_url else href) as src,
    ):
        return ItemGrid(src.crs.to_string(), src.transform, (src.height, src.width))


def _union_bounds(
    items: Sequence[pystac.Item], asset: str, grid: ItemGrid
) -> tuple[float, float, float, float]:
    """The bounds, in ``grid``'s CRS, of every item (exact where items share its CRS)."""
    boxes = [grid.bounds]
    for item in items[1:]:
        own, lonlat = proj_grid(item, asset), _lonlat_bbox(item)
        if own is not None and own.crs == grid.crs:
            boxes.append(own.bounds)
        elif lonlat is not None:
            boxes.append(lonlat_bounds_to_crs(lonlat, grid.crs))
    return (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )


def load_items(
    items: Sequence[pystac.Item],
    *,
    asset: str,
    bbox: tuple[float, float, float, float] | None,
    temporal: bool,
    chunks: int | None,
    patch_url: Callable[[str], str] | None,
    provider: str,
    provenance: Mapping[str, Any],
) -> xr.DataArray:
    """Load one asset of ``items`` lazily, on the pixel grid of the first item.

    Parameters
    ----------
    items
        The items to read (at least one; the first one's grid is used); where they
        overlap, the first valid cell in :func:`precedence` order wins (newest item
        first, ties by id).
    asset
        Asset key of the raster (one band).
    bbox
        ``(min_lon, min_lat, max_lon, max_lat)``; None for the extent of all ``items``.
    temporal
        Keep a ``time`` dim (one step per time); else fuse every item into one layer.
    chunks
        Dask chunk size in pixels along ``y`` and ``x`` (default: ``chunk_size`` setting).
    patch_url
        Optional hook that rewrites (e.g. signs) every asset URL before reading.
    provider
        Provider slug, named in read errors.
    provenance
        Written to ``attrs["cas_provenance"]``, with the ids of ``items`` added (and
        where each lies in ``attrs["cas_footprints"]``, see
        :mod:`~cas_xr.sources._footprints`).

    Returns
    -------
    xarray.DataArray
        Dask-backed, dims ``(time,) y, x``, attrs ``nodata`` (from ``raster:bands``) and
        ``cas_provenance``. Computing it raises :class:`~cas_xr.errors.SourceError`
        (``kind="read"``, naming the provider and the asset URL) for an asset that cannot
        be read.

    Notes
    -----
    A layer whose items are COGs (local or over HTTP) on one lattice is read by tile
    (:func:`~cas_xr.sources._stac_tiles.tiled_items`, time steps by
    :func:`~cas_xr.sources._stac_steps.tiled_steps`); anything else (items to reproject,
    files only GDAL reads) by odc-stac.
    The output GeoBox is the first item's grid clipped to ``bbox`` (or extended to every
    item) and snapped outward to whole cells; given explicitly, odc-stac neither re-anchors
    nor resamples aligned tiles.
    """
    ordered = sorted(items, key=precedence)
    if bbox is not None:
        tiled = _by_tile(
            ordered, bbox, asset=asset, temporal=temporal, patch_url=patch_url, provider=provider
        )
        if tiled is not None:
            return _described(tiled, items, asset, provenance, temporal=temporal)
    import odc.stac  # only now: a layer read by tile needs none of odc-stac
    from odc.geo.geobox import GeoBox

    from cas_xr.sources._stac_reader import NamingDriver

    settings = get_settings()
    grid = _item_grid(items[0], asset, patch_url)
    bounds = (
        _union_bounds(items, asset, grid) if bbox is None else lonlat_bounds_to_crs(bbox, grid.crs)
    )
    transform, shape = snap_bounds(grid.transform, bounds)
    size = chunks or settings.chunk_size
    odc.stac.configure_rio(**gdal_options(settings))
    loaded = odc.stac.load(
        ordered,
        bands=[asset],
        geobox=GeoBox(shape, transform, grid.crs),
        chunks={"x": size, "y": size},
        groupby="time" if temporal else _one_layer,
        patch_url=patch_url,
        driver=NamingDriver(provider),
        preserve_original_order=True,  # fuse in precedence order, not odc-stac's oldest-first
    )
    da = loaded[asset].rename({k: v for k, v in _DIMS.items() if k in loaded.dims})
    if not temporal:
        da = da.isel(time=0, drop=True)
    return _described(da, items, asset, provenance, temporal=temporal)


def _by_tile(
    ordered: Sequence[pystac.Item],
    bbox: tuple[float, float, float, float],
    *,
    asset: str,
    temporal: bool,
    patch_url: Callable[[str], str] | None,
    provider: str,
) -> xr.DataArray | None:
    """The items read by tile (COGs on one lattice), or None when odc-stac must read them."""
    cover = functools.partial(lonlat_bounds_to_crs, bbox)
    options: dict[str, Any] = {"asset": asset, "bounds": cover, "patch_url": patch_url}
    if not temporal:
        tiled = tiled_items(ordered, provider=provider, **options)
        return None if tiled is None else _on_grid(*tiled)
    steps = tiled_steps(ordered, provider=provider, **options)
    if steps is None:
        return None
    data, failed, times, transform, crs, nodata = steps
    return _on_grid(data, failed, transform, crs, nodata, times=times)


def _on_grid(
    data: Any,
    failed: Any,
    transform: Affine,
    crs: str,
    nodata: float | None,
    *,
    times: Any = None,
) -> xr.DataArray:
    """A layer read by tile, as odc-stac would label it: cell centres, CRS and nodata.

    With ``times``, ``data`` is ``(time, y, x)`` and they label its steps. ``failed``
    (None, or the chunks' failed-chunk flags) becomes ``attrs["cas_failed_chunks"]``: a
    tile the server keeps refusing is nodata, and the results that read it DEGRADED.

    Labelled as ``rio.write_crs(crs).rio.write_transform(transform)`` labels it (a
    ``spatial_ref`` coordinate, the ``grid_mapping`` encoding), with the CRS's attributes
    made once per CRS: a small request opens a layer per call.
    """
    import xarray as xr
    from rioxarray.rioxarray import affine_to_coords

    rows, cols = data.shape[-2:]
    coords = affine_to_coords(transform, cols, rows)
    geotransform = " ".join(str(item) for item in transform.to_gdal())
    spatial_ref = xr.Variable((), 0, attrs={**_grid_mapping(crs), "GeoTransform": geotransform})
    labels = {"y": coords["y"], "x": coords["x"], "spatial_ref": spatial_ref}
    dims: tuple[str, ...] = ("y", "x")
    if times is not None:
        labels, dims = {"time": times, **labels}, ("time", *dims)
    da = xr.DataArray(data, dims=dims, coords=labels, attrs={"nodata": nodata})
    da.encoding["grid_mapping"] = "spatial_ref"
    if failed is not None:
        da.attrs["cas_failed_chunks"] = failed
    return da


@functools.lru_cache(maxsize=64)
def _grid_mapping(crs: str) -> dict[str, Any]:
    """The attributes rioxarray's ``write_crs`` gives the ``spatial_ref`` coordinate."""
    import pyproj
    from rioxarray.crs import crs_from_user_input

    parsed = crs_from_user_input(crs)  # a rasterio CRS, whose WKT rioxarray writes
    attrs: dict[str, Any] = pyproj.CRS.from_user_input(parsed).to_cf()
    wkt = parsed.to_wkt()
    return {**attrs, "spatial_ref": wkt, "crs_wkt": wkt}


def _one_layer(item: pystac.Item, parsed: Any, index: int) -> str:
    """Group every tile of a static layer together (odc-stac ``groupby`` callable)."""
    return "static"


class StacItemsSource:
    """The ``open`` both STAC sources share: the matching items, loaded by :func:`load_items`.

    A subclass (a frozen dataclass) has the fields ``endpoint``, ``collection``, ``asset``,
    ``provider``, ``temporal`` and ``patch_url``, names its ``protocol`` for provenance,
    and lists the candidate items of a request.
    """

    protocol: ClassVar[str]
    endpoint: str
    collection: str
    asset: str
    provider: str
    temporal: bool
    patch_url: Callable[[str], str] | None

    def _candidates(
        self, bbox: tuple[float, float, float, float] | None, time_range: TimeRange | None
    ) -> Iterable[pystac.Item]:
        """The items that may match the request (filtered again by :meth:`open`)."""
        raise NotImplementedError

    def _no_items(self) -> None:
        """Called before the ``no_data`` error; may raise a more precise one."""

    def open(
        self,
        *,
        bbox: tuple[float, float, float, float] | None = None,
        time_range: TimeRange | None = None,
        chunks: int | None = None,
    ) -> xr.DataArray:
        """Open the asset for the items intersecting ``bbox`` and ``time_range``, lazily.

        Parameters
        ----------
        bbox
            ``(min_lon, min_lat, max_lon, max_lat)``; None for the whole collection.
        time_range
            Keep only items whose time intersects this range (ignored for static layers).
        chunks
            Dask chunk size in pixels along ``y`` and ``x`` (default: ``chunk_size`` setting).

        Returns
        -------
        xarray.DataArray
            Dask-backed, on the source grid; see :class:`~cas_xr.sources.Source`.

        Raises
        ------
        SourceError
            If the catalog or API cannot be read; ``kind="definition"`` when it has no
            such collection, ``kind="no_data"`` when no item with the asset intersects the
            request.
        """
        if not self.temporal:
            time_range = None  # a static layer has no time axis to select from
        items = [
            it
            for it in self._candidates(bbox, time_range)
            if self.asset in it.assets and intersects(it, bbox) and in_time_range(it, time_range)
        ]
        if not items:
            self._no_items()
            raise no_items_error(
                self.collection, bbox, time_range, provider=self.provider, url=self.endpoint
            )
        return load_items(
            items,
            asset=self.asset,
            bbox=bbox,
            temporal=self.temporal,
            chunks=chunks,
            patch_url=self.patch_url,
            provider=self.provider,
            provenance={
                "protocol": self.protocol,
                "endpoint": self.endpoint,
                "collection": self.collection,
                "asset": self.asset,
            },
        )
