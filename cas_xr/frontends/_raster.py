"""Raster mode: write a dataset's cells in a box as a COG or a Zarr store (in-process only).

The dataset is opened lazily through its source (every intersecting STAC item, WCS tiles
or local files), cut to the box snapped outward to whole source cells, optionally
reprojected or resampled (:mod:`cas_xr.mosaic`), and written to a temporary name in
``output_dir`` that is renamed on success. Raster mode is never served over HTTP.
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cas_xr.catalog import resolve
from cas_xr.config import Settings, get_settings
from cas_xr.engine._failures import read_failures
from cas_xr.engine._provenance import provenance_within
from cas_xr.errors import (
    InvalidArgumentError,
    LimitExceededError,
    OutputExistsError,
    RequestTimeoutError,
    SourceError,
)
from cas_xr.models import (
    BoundingBox,
    DataType,
    RasterResampling,
    RasterResult,
    TimeRange,
    validated,
)
from cas_xr.mosaic import (
    atomic_output,
    check_format,
    check_resampling,
    grid_of,
    nodata_of,
    output_grid,
    read_bounds,
    regrid,
    same_lattice,
    transform_bbox,
)
from cas_xr.mosaic._write import write_geotiff, write_zarr
from cas_xr.sources._footprints import FOOTPRINTS, latest_step

if TYPE_CHECKING:
    import xarray as xr
    from odc.geo.geobox import GeoBox

    from cas_xr.catalog import Connector

__all__ = ["extract_raster"]

_SUFFIXES = {"geotiff": ".tif", "zarr": ".zarr"}
# raster mode reads the whole window anyway: chunks of at least this many cells a side
# mean fewer file opens and tile fusions (and fewer copies) than the zonal default
_MIN_CHUNK = 4096
# its own threads: a timed-out call returns at once (asyncio.run would wait for the default
# executor's threads) while its worker finishes and discards the file
_EXECUTOR = ThreadPoolExecutor(max_workers=4, thread_name_prefix="cas_xr-raster")


@dataclass(frozen=True)
class _Request:
    dataset_id: str
    connector: Connector
    name: str
    bbox: tuple[float, float, float, float]
    time_range: TimeRange | None
    resampling: RasterResampling
    resolution: float | None
    crs: str | None
    format: str
    target: Path
    overwrite: bool


def _output_dir(output_dir: str | Path) -> Path:
    """``output_dir``, created (parents included) when it does not exist, as CAS does."""
    path = Path(output_dir)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise InvalidArgumentError(
            f"output_dir {str(path)!r} is (or lies under) a file, not a folder; choose a folder"
        ) from None
    except PermissionError as err:
        raise PermissionError(
            f"cannot create output_dir {str(path)!r} ({err.strerror}); choose a writable folder"
        ) from None
    return path


def _check_crs(crs: Any) -> str | None:
    if crs is None:
        return None
    import pyproj

    try:
        pyproj.CRS.from_user_input(crs)
    except pyproj.exceptions.CRSError as err:
        raise InvalidArgumentError(
            f"target_crs {crs!r} is not recognised ({err}); use e.g. 'EPSG:3857' or WKT"
        ) from None
    return str(crs)


def _check_resolution(resolution: float | None) -> float | None:
    if resolution is None:
        return None
    try:
        value = float(resolution)
    except (TypeError, ValueError):
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise InvalidArgumentError(
            f"target_resolution must be a positive number, got {resolution!r}"
        )
    return value


def _target(folder: Path, filename: str | None, default: str) -> Path:
    if filename is None:
        return folder / default
    if Path(filename).name != filename or filename in ("", ".", ".."):
        raise InvalidArgumentError(
            f"filename {filename!r} must be a plain file name, without folders"
        )
    return folder / filename


def _open(request: _Request, bbox: tuple[float, float, float, float]) -> xr.DataArray:
    """The source lazily around ``bbox``; without a time range its latest step alone."""
    chunks = max(get_settings().chunk_size, _MIN_CHUNK)
    da = request.connector.open(
        request.name, bbox=bbox, time_range=request.time_range, chunks=chunks
    )
    return latest_step(da) if request.time_range is None else da


def _check_pixels(what: str, shape: tuple[int, ...], settings: Settings) -> None:
    pixels = math.prod(shape)
    if pixels > settings.max_raster_pixels:
        raise LimitExceededError(
            f"the {what} holds {pixels} pixels ({' x '.join(map(str, shape))}), more than "
            f"max_raster_pixels ({settings.max_raster_pixels}); request a smaller bbox or "
            "a coarser target_resolution, or raise the setting"
        )


def _plan(request: _Request, settings: Settings) -> tuple[xr.DataArray, GeoBox]:
    """Open the source lazily and choose the output grid; check sizes before any read."""
    da = _open(request, request.bbox)
    steps = math.prod(n for d, n in da.sizes.items() if d not in ("y", "x"))
    native = grid_of(da)
    grid = output_grid(native, request.bbox, crs=request.crs, resolution=request.resolution)
    _check_pixels("output", (steps, *grid.shape.yx), settings)
    if same_lattice(native, grid) is None:  # resampling reads cells around the footprint
        lonlat = transform_bbox(read_bounds(native, grid, request.resampling), native.crs, 4326)
        x0, y0, x1, y1 = lonlat
        wider = (max(x0, -180.0), max(y0, -90.0), min(x1, 180.0), min(y1, 90.0))
        da = _open(request, wider)
        _check_pixels("source window to resample", (steps, *grid_of(da).shape.yx), settings)
    return da, grid


def _compute(da: xr.DataArray) -> xr.DataArray:
    """Read the cells (one Dask computation); fail if the source lost any chunk.

    Without a Dask cluster the reads are batched (:func:`~cas_xr.zonal._reads.compute`):
    a remote source's chunks are fetched many at a time, in merged requests.
    """
    import dask

    from cas_xr.engine._scheduler import current_scheduler
    from cas_xr.zonal._reads import compute

    failed = read_failures(da, da)
    da.attrs.pop("cas_failed_chunks", None)
    arrays = [da.data] if failed is None else [da.data, failed]
    scheduler = current_scheduler(get_settings())
    if scheduler.client is None:
        values = compute(*arrays, scheduler=scheduler.local)
    else:
        values = dask.compute(*arrays)
    if failed is not None and int(np.sum(values[1])):
        raise SourceError(
            f"{int(np.sum(values[1]))} chunk(s) of the source could not be read; raster mode "
            "writes no file with holes: retry later",
            kind="read",
        )
    return da.copy(data=values[0])


def _crs_name(grid: GeoBox) -> str:
    crs = grid.crs
    if crs is None:
        raise InvalidArgumentError("the output grid has no CRS")
    return f"EPSG:{crs.epsg}" if crs.epsg else crs.to_wkt()


def _times(da: xr.DataArray) -> list[str]:
    if "time" not in da.dims:
        return []
    seconds = np.asarray(da["time"].values, dtype="datetime64[s]")
    return [f"{t}Z" for t in np.datetime_as_string(seconds, unit="s")]


def _write(request: _Request, cancelled: threading.Event, started: float) -> RasterResult:
    """Open, cut, resample and write (runs in a worker thread)."""
    settings = get_settings()
    connector, name = request.connector, request.name
    variable = connector.definition_of(name).variables[0]
    metadata = connector.dataset(name)
    with atomic_output(
        request.target, directory=request.format == "zarr", overwrite=request.overwrite
    ) as tmp:
        source, grid = _plan(request, settings)
        provenance = {
            "dataset": request.dataset_id,
            **provenance_within(source.attrs, request.bbox),
            "bbox": list(request.bbox),
            "resampling": request.resampling.value,
        }
        out = regrid(_compute(source), grid, resampling=request.resampling)
        if times := _times(out):
            provenance["times"] = times
        out.attrs["cas_provenance"] = provenance
        out.attrs.pop(FOOTPRINTS, None)  # the engine's, for per-geometry provenance
        tags = {
            "dataset_id": request.dataset_id,
            "license": metadata.license,
            "units": variable.units,
            "cas_provenance": json.dumps(provenance, default=str),
        }
        if request.format == "zarr":
            write_zarr(out, tmp, tags=tags)
        else:
            categorical = variable.data_type is DataType.CATEGORICAL
            write_geotiff(
                out, tmp, tags=tags, overview_resampling="nearest" if categorical else "average"
            )
        if cancelled.is_set():
            raise RequestTimeoutError("raster mode was cancelled; no file was written")
    t = grid.transform
    return RasterResult(
        dataset_id=request.dataset_id,
        provider=connector.slug,
        variable=variable.name,
        units=variable.units,
        path=str(request.target),
        crs=_crs_name(grid),
        transform=(t.a, t.b, t.c, t.d, t.e, t.f),
        shape=grid.shape.yx,
        nodata=nodata_of(out),
        license=metadata.license,
        provenance=provenance,
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
    target_crs: str | None = None,
    format: str | None = None,
    overwrite: bool = False,
) -> RasterResult:
    """Write ``dataset_id``'s cells inside ``bbox`` to a COG (or Zarr store) in ``output_dir``.

    By default the output is on the source's native grid and CRS, the box snapped outward
    to whole source cells; tiles are mosaicked by the source (STAC: every intersecting
    item, newest first, ties by id, first valid cell wins; WCS: tiled GetCoverage; local
    globs: file-name order). Cells of the box outside the data hold the nodata value.

    Parameters
    ----------
    dataset_id
        ``"provider:name"``.
    bbox
        Lon/lat box: a :class:`~cas_xr.models.BoundingBox`, a 4-sequence
        ``(min_lon, min_lat, max_lon, max_lat)`` or a dict with those keys.
    output_dir
        A writable folder; created (parents included) when it does not exist.
    target_resolution
        Output cell size in units of the output CRS (default: the native one). In the
        native CRS the output lattice starts at the native grid's origin; in another CRS
        cell edges lie on multiples of the resolution.
    resampling
        ``nearest`` (default), ``bilinear``, ``cubic`` or ``average``, used when the output
        grid differs from the native one (GDAL's warper, from full-resolution cells,
        ignoring nodata). Categorical datasets allow ``nearest`` only.
    time_range
        For temporal datasets, the steps to write, one band per step (in time order, each
        band described by its ISO time); without it, the latest step only. Ignored by
        static datasets.
    filename
        File name in ``output_dir`` (default ``"{provider}_{dataset}.tif"``, or ``.zarr``).
    target_crs
        Output CRS (default: the native one); the box is transformed with densified edges.
    format
        ``"geotiff"`` (a Cloud-Optimized GeoTIFF, DEFLATE-compressed, with overviews) or
        ``"zarr"`` (a Zarr format 2 store); default: from ``filename``'s suffix, else
        ``"geotiff"``.
    overwrite
        Replace an existing file.

    Returns
    -------
    RasterResult
        Path, CRS, transform, shape, nodata, license, provenance (source, items or files
        used, box, resampling, band times) and elapsed time.

    Raises
    ------
    pydantic.ValidationError
        For an invalid bbox (inverted, out of range) or time range.
    InvalidDatasetIdError, UnknownProviderError, UnknownDatasetError
        For a malformed or unknown dataset id.
    ValueError
        For a bad argument (resampling, categorical data with a resampling other than
        ``nearest``, target_crs, target_resolution, format, filename) or a file in the
        way of ``output_dir``.
    FileExistsError, PermissionError
        For an existing file (without ``overwrite``) or an unwritable folder.
    LimitExceededError
        When the output or the source cells it needs exceed ``max_raster_pixels``
        (checked before any pixel is read).
    SourceError
        When the source fails (``kind="no_data"`` for a box without data).
    RequestTimeoutError
        After ``request_timeout_s``; no file is written.

    Notes
    -----
    The file is written to a hidden temporary name in ``output_dir`` and renamed to its
    final name only when complete: a failed, interrupted or timed-out call never leaves a
    file at the target path.
    """
    started = time.perf_counter()
    box = validated(BoundingBox, bbox)
    connector, name = resolve(dataset_id)
    variable = connector.definition_of(name).variables[0]
    method = check_resampling(resampling, categorical=variable.data_type is DataType.CATEGORICAL)
    fmt = check_format(filename or "", format) if format or filename else "geotiff"
    folder = _output_dir(output_dir)
    target = _target(folder, filename, f"{connector.slug}_{name}{_SUFFIXES[fmt]}")
    if (target.exists() or target.is_symlink()) and not overwrite:
        raise OutputExistsError(f"{target} exists; pass overwrite=True or another filename")
    request = _Request(
        dataset_id=dataset_id,
        connector=connector,
        name=name,
        bbox=box.as_tuple(),
        time_range=None if time_range is None else validated(TimeRange, time_range),
        resampling=method,
        resolution=_check_resolution(target_resolution),
        crs=_check_crs(target_crs),
        format=fmt,
        target=target,
        overwrite=overwrite,
    )
    settings = get_settings()
    cancelled = threading.Event()
    try:
        async with asyncio.timeout(settings.request_timeout_s):
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(_EXECUTOR, _write, request, cancelled, started)
    except TimeoutError:
        raise RequestTimeoutError(
            f"raster mode took longer than request_timeout_s ({settings.request_timeout_s} s); "
            "no file was written: request a smaller bbox or raise the setting"
        ) from None
    finally:
        cancelled.set()  # work still running in the thread then discards its file
