"""Raster mode: write a dataset's pixels in a bounding box as a GeoTIFF (in-process only).

This first version writes the source's native grid and CRS; the box is snapped outward to
whole source cells and tiles are mosaicked by the source (first item in id order wins
where tiles overlap). The file is written to a temporary name in ``output_dir`` and
renamed, so the target path never holds a partial file.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from cas_xr.catalog import resolve
from cas_xr.config import get_settings
from cas_xr.errors import LimitExceededError
from cas_xr.models import BoundingBox, RasterResampling, RasterResult, TimeRange

__all__ = ["extract_raster"]


def _check_output_dir(output_dir: str | Path) -> Path:
    path = Path(output_dir)
    if not path.is_dir():
        raise ValueError(f"output_dir {str(path)!r} is not an existing directory; create it first")
    if not os.access(path, os.W_OK):
        raise PermissionError(f"output_dir {str(path)!r} is not writable; choose another folder")
    return path


def _write(
    dataset_id: str, bbox: BoundingBox, target: Path, time_range: TimeRange | None
) -> RasterResult:
    import odc.geo.xr  # noqa: F401  (registers the .odc accessor)
    import rasterio

    started = time.perf_counter()
    connector, name = resolve(dataset_id)
    variable = connector.definition_of(name).variables[0]
    da = connector.open(name, bbox=bbox.as_tuple(), time_range=time_range)
    if "time" in da.dims and time_range is None:
        da = da.isel(time=[-1])
    bands = da.sizes.get("time", 1)
    pixels = da.sizes["y"] * da.sizes["x"] * bands
    settings = get_settings()
    if pixels > settings.max_raster_pixels:
        raise LimitExceededError(
            f"the box holds {pixels} pixels, more than max_raster_pixels "
            f"({settings.max_raster_pixels}); request a smaller bbox or raise the setting"
        )
    data = np.asarray(da.values).reshape(bands, da.sizes["y"], da.sizes["x"])
    geobox = da.odc.geobox
    nodata = da.attrs.get("nodata", variable.nodata_value)
    profile: dict[str, Any] = {
        "driver": "COG",
        "count": bands,
        "height": data.shape[1],
        "width": data.shape[2],
        "dtype": data.dtype.name,
        "crs": geobox.crs.to_wkt(),
        "transform": geobox.affine,
        "nodata": nodata,
        "compress": "deflate",
    }
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        with rasterio.open(tmp_name, "w", **profile) as dst:
            dst.write(data)
            dst.update_tags(units=variable.units, dataset_id=dataset_id)
        os.replace(tmp_name, target)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
    affine = geobox.affine
    return RasterResult(
        dataset_id=dataset_id,
        provider=connector.slug,
        variable=variable.name,
        units=variable.units,
        path=str(target),
        crs=f"EPSG:{geobox.crs.epsg}" if geobox.crs.epsg else geobox.crs.to_wkt(),
        transform=(affine.a, affine.b, affine.c, affine.d, affine.e, affine.f),
        shape=(data.shape[1], data.shape[2]),
        nodata=None if nodata is None else float(nodata),
        license=connector.dataset(name).license,
        provenance={"dataset": dataset_id, **da.attrs.get("cas_provenance", {})},
        elapsed_ms=(time.perf_counter() - started) * 1000,
    )


async def extract_raster(
    dataset_id: str,
    bbox: BoundingBox | tuple[float, float, float, float] | list[float] | dict[str, float],
    output_dir: str | Path,
    *,
    target_resolution: float | None = None,
    resampling: RasterResampling | str = RasterResampling.NEAREST,
    time_range: TimeRange | tuple[Any, Any] | None = None,
    filename: str | None = None,
    overwrite: bool = False,
) -> RasterResult:
    """Write ``dataset_id``'s pixels inside ``bbox`` to a GeoTIFF in ``output_dir``.

    Parameters
    ----------
    dataset_id
        ``"provider:name"``.
    bbox
        Lon/lat box: a :class:`~cas_xr.models.BoundingBox`, a 4-sequence
        ``(min_lon, min_lat, max_lon, max_lat)`` or a dict with those keys.
    output_dir
        An existing, writable folder.
    target_resolution, resampling
        Not supported yet: only the native grid is written (``resampling`` must stay
        ``"nearest"``).
    time_range
        For temporal datasets, the steps to write (one band per step); without it, the
        latest step.
    filename
        File name (default ``"{provider}_{dataset}.tif"``).
    overwrite
        Replace an existing file.

    Returns
    -------
    RasterResult

    Raises
    ------
    pydantic.ValidationError
        For an invalid bbox or time range.
    InvalidDatasetIdError, UnknownProviderError, UnknownDatasetError
        For a malformed or unknown dataset id.
    FileExistsError, ValueError, PermissionError, LimitExceededError
        For an existing file, a bad output folder or argument, or too many pixels.
    """
    bbox = BoundingBox.model_validate(bbox)
    tr = None if time_range is None else TimeRange.model_validate(time_range)
    connector, name = resolve(dataset_id)
    if (
        target_resolution is not None
        or RasterResampling(resampling) is not RasterResampling.NEAREST
    ):
        raise ValueError(
            "target_resolution/resampling are not supported yet: raster mode writes the "
            "native grid; leave them unset"
        )
    folder = _check_output_dir(output_dir)
    target = folder / (filename or f"{connector.slug}_{name}.tif")
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} exists; pass overwrite=True or another filename")
    return await asyncio.to_thread(_write, dataset_id, bbox, target, tr)
