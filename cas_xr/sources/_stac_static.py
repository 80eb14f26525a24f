"""A static STAC catalog (catalog.json + items + COGs) opened lazily with odc-stac."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from affine import Affine

from cas_xr._cache import SettingsBoundCache
from cas_xr.config import get_settings
from cas_xr.errors import SourceError
from cas_xr.sources._base import gdal_options
from cas_xr.sources._grid import lonlat_bounds_to_crs, snap_bounds

if TYPE_CHECKING:
    import pystac
    import xarray as xr

    from cas_xr.catalog import DatasetDefinition, ProviderDefinition
    from cas_xr.models import TimeRange

__all__ = ["StaticStacSource", "from_definition"]

_ITEMS: SettingsBoundCache[list[pystac.Item]] = SettingsBoundCache(
    lambda s: (s.metadata_cache_ttl_s, 256)
)


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


def _in_time_range(item: pystac.Item, time_range: TimeRange | None) -> bool:
    if time_range is None:
        return True
    interval = _item_interval(item)
    if interval is None:
        return True
    start, end = _aware(time_range.start), _aware(time_range.end)
    return interval[0] <= end and interval[1] >= start


def _intersects(item: pystac.Item, bbox: Sequence[float] | None) -> bool:
    if bbox is None or item.bbox is None:
        return True
    x0, y0, x1, y1 = item.bbox[:4] if len(item.bbox) == 4 else (*item.bbox[:2], *item.bbox[3:5])
    return x0 < bbox[2] and bbox[0] < x1 and y0 < bbox[3] and bbox[1] < y1


def _proj(item: pystac.Item, asset: str, key: str) -> Any:
    extra = item.assets[asset].extra_fields
    return extra.get(key, item.properties.get(key))


# odc-stac names geographic dims latitude/longitude; sources always return y/x
_DIMS = {"latitude": "y", "longitude": "x"}


@dataclass(frozen=True)
class _Grid:
    crs: str
    transform: Affine
    shape: tuple[int, int]

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        t, (rows, cols) = self.transform, self.shape
        return (t.c, t.f + rows * t.e, t.c + cols * t.a, t.f)


def _item_grid(item: pystac.Item, asset: str) -> _Grid:
    transform, shape = _proj(item, asset, "proj:transform"), _proj(item, asset, "proj:shape")
    code = _proj(item, asset, "proj:code") or (
        f"EPSG:{_proj(item, asset, 'proj:epsg')}" if _proj(item, asset, "proj:epsg") else None
    )
    if transform and shape and code:
        return _Grid(code, Affine(*transform[:6]), (int(shape[0]), int(shape[1])))
    import rasterio

    with rasterio.open(item.assets[asset].get_absolute_href()) as src:
        return _Grid(src.crs.to_string(), src.transform, (src.height, src.width))


@dataclass(frozen=True)
class StaticStacSource:
    """One asset of one collection of a static STAC catalog.

    Parameters
    ----------
    endpoint
        Path or URL of the root ``catalog.json``.
    collection
        Collection id.
    asset
        Asset key holding the raster (one band).
    provider
        Provider slug, for error messages and provenance.
    temporal
        Whether items are time steps (kept as a ``time`` dim) rather than tiles of one
        static layer (fused into one ``y, x`` layer).
    patch_url
        Optional hook that rewrites (e.g. signs) every asset URL before reading.

    Notes
    -----
    The output grid is the grid of the first item (by id), clipped to the requested box
    and snapped outward to whole cells, so pixels are never resampled for aligned tiles.
    Where items overlap, the first item in id order wins.
    """

    endpoint: str
    collection: str
    asset: str = "data"
    provider: str = ""
    temporal: bool = False
    patch_url: Callable[[str], str] | None = None

    def items(self) -> list[pystac.Item]:
        """All items of the collection (cached for ``metadata_cache_ttl_s``)."""
        cache = _ITEMS.current()
        key = (self.endpoint, self.collection)
        items = cache.get(key)
        if items is None:
            items = self._read_items()
            cache.set(key, items)
        return items

    def _read_items(self) -> list[pystac.Item]:
        import pystac

        try:
            root = pystac.Catalog.from_file(self.endpoint)
        except Exception as err:  # pystac raises many kinds (I/O, JSON, STAC errors)
            raise SourceError(
                f"cannot read the STAC catalog: {err}", provider=self.provider, url=self.endpoint
            ) from err
        child = root.get_child(self.collection, recursive=True)
        if child is None:
            known = sorted(c.id for c in root.get_children())
            raise SourceError(
                f"collection {self.collection!r} is not in the catalog (it has {known})",
                provider=self.provider,
                url=self.endpoint,
                kind="definition",
            )
        items = sorted(child.get_items(recursive=True), key=lambda it: it.id)
        return [it for it in items if self.asset in it.assets]

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
            If the catalog cannot be read or no item intersects the request
            (``kind="no_data"``).
        """
        import odc.stac
        from odc.geo.geobox import GeoBox

        settings = get_settings()
        if not self.temporal:
            time_range = None  # a static layer has no time axis to select from
        items = [
            it for it in self.items() if _intersects(it, bbox) and _in_time_range(it, time_range)
        ]
        if not items:
            when = (
                ""
                if time_range is None
                else (
                    f" and time range {time_range.start.isoformat()}..{time_range.end.isoformat()}"
                )
            )
            raise SourceError(
                f"no item of collection {self.collection!r} intersects bbox {bbox}{when}",
                provider=self.provider,
                url=self.endpoint,
                kind="no_data",
            )
        grid = _item_grid(items[0], self.asset)
        bounds = grid.bounds if bbox is None else lonlat_bounds_to_crs(bbox, grid.crs)
        transform, shape = snap_bounds(grid.transform, bounds)
        size = chunks or settings.chunk_size
        odc.stac.configure_rio(**gdal_options(settings))
        loaded = odc.stac.load(
            items,
            bands=[self.asset],
            geobox=GeoBox(shape, transform, grid.crs),
            chunks={"x": size, "y": size},
            groupby="time" if self.temporal else _one_layer,
            patch_url=self.patch_url,
        )
        da = loaded[self.asset].rename({k: v for k, v in _DIMS.items() if k in loaded.dims})
        if not self.temporal:
            da = da.isel(time=0, drop=True)
        da.attrs["cas_provenance"] = {
            "protocol": "stac_static",
            "endpoint": self.endpoint,
            "collection": self.collection,
            "asset": self.asset,
            "items": [it.id for it in items],
        }
        return da


def from_definition(provider: ProviderDefinition, dataset: DatasetDefinition) -> StaticStacSource:
    """The source of ``dataset`` of a ``stac_static`` provider (catalog factory)."""
    return StaticStacSource(
        endpoint=provider.endpoint,
        collection=dataset.collection or dataset.name,
        asset=dataset.asset,
        provider=provider.slug,
        temporal=dataset.is_temporal,
    )


def _one_layer(item: pystac.Item, parsed: Any, index: int) -> str:
    """Group every tile of a static layer together (odc-stac ``groupby`` callable)."""
    return "static"
