"""Write small, static, self-contained STAC catalogs describing local COGs."""

from __future__ import annotations

import datetime as dt
import math
import os
import pathlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pystac
import rasterio
import rasterio.warp
import shapely
from pystac.extensions.projection import ProjectionExtension
from pystac.extensions.raster import (
    DataType,
    NoDataStrings,
    RasterBand,
    RasterExtension,
    Sampling,
)

__all__ = ["COG_MEDIA_TYPE", "StacCollectionSpec", "StacItemSpec", "make_stac_catalog"]

#: Media type given to the COG assets.
COG_MEDIA_TYPE = "image/tiff; application=geotiff; profile=cloud-optimized"

# Points added per footprint edge before reprojecting it to EPSG:4326.
_FOOTPRINT_DENSIFY = 21
# Decimals kept in bounding boxes and footprints: hides float noise such as -111.89999999999999.
_DECIMALS = 9


@dataclass(frozen=True)
class StacItemSpec:
    """Description of one STAC Item backed by a single COG.

    Parameters
    ----------
    id : str
        Item id, unique within the catalog.
    href : str or os.PathLike
        Path of the COG, absolute or relative to the catalog's ``root_dir``. The asset
        href is written relative to the Item's JSON file.
    datetime : datetime.datetime or None
        Nominal time of the Item. When None, ``start_datetime`` and ``end_datetime``
        are both required. Naive datetimes are taken as UTC.
    start_datetime, end_datetime : datetime.datetime, optional
        Time range covered by the Item.
    asset_key : str, default "data"
        Key of the COG asset.
    properties : dict, optional
        Extra Item properties.
    """

    id: str
    href: str | os.PathLike[str]
    datetime: dt.datetime | None
    start_datetime: dt.datetime | None = None
    end_datetime: dt.datetime | None = None
    asset_key: str = "data"
    properties: dict[str, Any] | None = None


@dataclass(frozen=True)
class StacCollectionSpec:
    """Description of one STAC Collection.

    Parameters
    ----------
    id : str
        Collection id, unique within the catalog.
    description : str
        Collection description.
    items : list of StacItemSpec
        The Items of the Collection; at least one.
    license : str, default "proprietary"
        SPDX license identifier (or ``"proprietary"``/``"other"``).
    extra_fields : dict, optional
        Extra top-level Collection fields, e.g. ``{"classification:classes": [...]}``.
    """

    id: str
    description: str
    items: list[StacItemSpec]
    license: str = "proprietary"
    extra_fields: dict[str, Any] | None = None


def make_stac_catalog(
    root_dir: str | os.PathLike[str],
    collections: Sequence[StacCollectionSpec],
    *,
    catalog_id: str = "catalog",
    description: str = "Static STAC catalog of local Cloud-Optimized GeoTIFFs.",
) -> pathlib.Path:
    """Write a static, self-contained STAC catalog describing local COGs.

    Every COG is opened to fill in the Item geometry and bbox (EPSG:4326), the
    projection extension (``proj:code``, ``proj:epsg``, ``proj:shape``,
    ``proj:transform``, ``proj:bbox``) and the raster extension of its asset
    (``raster:bands`` with nodata, data type, unit, scale and offset when set).
    Collections get the union of their Items' spatial and temporal extents. The
    layout is pystac's default: ``root_dir/catalog.json``,
    ``root_dir/<collection>/collection.json`` and
    ``root_dir/<collection>/<item>/<item>.json``, all with relative hrefs.

    Parameters
    ----------
    root_dir : str or os.PathLike
        Directory of the catalog; created when missing.
    collections : sequence of StacCollectionSpec
        Collections to write.
    catalog_id : str, default "catalog"
        Id of the root Catalog.
    description : str, optional
        Description of the root Catalog.

    Returns
    -------
    pathlib.Path
        Path of the written ``catalog.json``.

    Raises
    ------
    ValueError
        If there are no collections, a collection has no items, ids are duplicated,
        an item lacks a datetime and a complete start/end range, or a COG is missing.
    """
    root = pathlib.Path(root_dir).absolute()
    _check_specs(collections)
    root.mkdir(parents=True, exist_ok=True)
    catalog = pystac.Catalog(id=catalog_id, description=description)
    for spec in collections:
        items = [_make_item(root, item_spec) for item_spec in spec.items]
        collection = pystac.Collection(
            id=spec.id,
            description=spec.description,
            extent=_extent(items),
            license=spec.license,
            extra_fields=dict(spec.extra_fields or {}),
        )
        collection.add_items(items)
        catalog.add_child(collection)
    catalog.normalize_hrefs(str(root))
    catalog.make_all_asset_hrefs_relative()
    catalog.save(catalog_type=pystac.CatalogType.SELF_CONTAINED)
    return root / "catalog.json"


def _check_specs(collections: Sequence[StacCollectionSpec]) -> None:
    if not collections:
        raise ValueError("at least one collection is required")
    _check_unique("collection", [spec.id for spec in collections])
    for spec in collections:
        if not spec.items:
            raise ValueError(f"collection {spec.id!r} has no items")
    _check_unique("item", [item.id for spec in collections for item in spec.items])


def _check_unique(kind: str, ids: list[str]) -> None:
    duplicated = sorted({i for i in ids if ids.count(i) > 1})
    if duplicated:
        raise ValueError(f"duplicated {kind} ids: {duplicated}")


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=dt.UTC)


def _make_item(root: pathlib.Path, spec: StacItemSpec) -> pystac.Item:
    start, end = _utc(spec.start_datetime), _utc(spec.end_datetime)
    if spec.datetime is None and (start is None or end is None):
        raise ValueError(f"item {spec.id!r} needs a datetime or both start and end datetimes")
    path = pathlib.Path(spec.href)
    path = path if path.is_absolute() else root / path
    if not path.is_file():
        raise ValueError(f"item {spec.id!r}: COG not found: {path}")
    with rasterio.open(path) as src:
        footprint = _footprint_4326(src)
        item = pystac.Item(
            id=spec.id,
            geometry=shapely.geometry.mapping(footprint),
            bbox=[float(value) for value in footprint.bounds],
            datetime=_utc(spec.datetime),
            start_datetime=start,
            end_datetime=end,
            properties=dict(spec.properties or {}),
        )
        asset = pystac.Asset(href=str(path), media_type=COG_MEDIA_TYPE, roles=["data"])
        item.add_asset(spec.asset_key, asset)
        _add_projection(item, src)
        RasterExtension.ext(asset, add_if_missing=True).apply(bands=_raster_bands(src))
    return item


def _footprint_4326(src: rasterio.DatasetReader) -> shapely.Polygon:
    left, bottom, right, top = src.bounds
    footprint = shapely.box(left, bottom, right, top)
    if src.crs.to_epsg() != 4326:
        step = max(right - left, top - bottom) / _FOOTPRINT_DENSIFY
        dense = shapely.geometry.mapping(shapely.segmentize(footprint, step))
        footprint = shapely.geometry.shape(
            rasterio.warp.transform_geom(src.crs, "EPSG:4326", dense)
        )
    return shapely.transform(footprint, lambda xy: np.round(xy, _DECIMALS))


def _add_projection(item: pystac.Item, src: rasterio.DatasetReader) -> None:
    proj = ProjectionExtension.ext(item, add_if_missing=True)
    epsg = src.crs.to_epsg()
    proj.apply(
        epsg=epsg,
        wkt2=None if epsg is not None else src.crs.to_wkt(),
        shape=[src.height, src.width],
        transform=list(src.transform)[:6],
        bbox=[round(value, _DECIMALS) for value in src.bounds],
    )
    if epsg is not None:
        item.properties["proj:epsg"] = epsg


def _raster_bands(src: rasterio.DatasetReader) -> list[RasterBand]:
    bands = []
    for index, dtype in enumerate(src.dtypes):
        scale, offset = src.scales[index], src.offsets[index]
        bands.append(
            RasterBand.create(
                nodata=_stac_nodata(src.nodatavals[index], dtype),
                sampling=Sampling.AREA,
                data_type=DataType(dtype),
                unit=src.units[index] or None,
                scale=scale if scale != 1.0 else None,
                offset=offset if offset != 0.0 else None,
            )
        )
    return bands


def _stac_nodata(value: float | None, dtype: str) -> float | NoDataStrings | None:
    if value is None:
        return None
    if not dtype.startswith("float"):
        return int(value)
    if math.isnan(value):
        return NoDataStrings.NAN
    if math.isinf(value):
        return NoDataStrings.INF if value > 0 else NoDataStrings.NINF
    return value


def _extent(items: list[pystac.Item]) -> pystac.Extent:
    boxes = [item.bbox for item in items if item.bbox is not None]
    spatial = [
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    ]
    times = [
        t
        for item in items
        for t in (
            item.datetime,
            item.common_metadata.start_datetime,
            item.common_metadata.end_datetime,
        )
        if t is not None
    ]
    return pystac.Extent(
        pystac.SpatialExtent([spatial]), pystac.TemporalExtent([[min(times), max(times)]])
    )
