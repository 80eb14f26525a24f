"""Write a cube as a Cloud-Optimized GeoTIFF or a Zarr store, atomically (local files only)."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import secrets
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cas_xr.errors import InvalidArgumentError, MissingDependencyError, OutputExistsError
from cas_xr.mosaic._grid import crs_wkt, grid_of
from cas_xr.mosaic._regrid import is_categorical, nodata_of, north_up

if TYPE_CHECKING:
    import xarray as xr

__all__ = [
    "COG_OPTIONS",
    "FORMATS",
    "atomic_output",
    "check_format",
    "overview_factors",
    "write_geotiff",
    "write_raster",
    "write_zarr",
]

#: Output formats and the file suffixes that select them.
FORMATS: dict[str, tuple[str, ...]] = {"geotiff": (".tif", ".tiff"), "zarr": (".zarr",)}
#: GDAL COG creation options of every GeoTIFF written (overview resampling aside).
COG_OPTIONS: dict[str, str] = {
    "COMPRESS": "DEFLATE",
    "PREDICTOR": "YES",
    "BLOCKSIZE": "512",
    "OVERVIEWS": "AUTO",
    "NUM_THREADS": "ALL_CPUS",
    "BIGTIFF": "IF_SAFER",
}
_ZARR_CHUNK = 1024
_INTERNAL_ATTRS = ("cas_failed_chunks", "_FillValue", "nodata")


def check_format(path: str | os.PathLike[str], format: str | None = None) -> str:
    """The output format: ``format`` if given, else the one the suffix of ``path`` names.

    Raises
    ------
    ValueError
        For an unknown format or suffix, or a suffix of another format.
    MissingDependencyError
        For ``"zarr"`` without the zarr package.
    """
    suffix = Path(path).suffix.lower()
    named = next((name for name, suffixes in FORMATS.items() if suffix in suffixes), None)
    if format is None and named is None:
        raise InvalidArgumentError(
            f"cannot tell the format of {str(path)!r} from its suffix; use .tif or .zarr, "
            f"or pass format= one of {sorted(FORMATS)}"
        )
    format = format or named
    if format not in FORMATS:
        raise InvalidArgumentError(f"unknown format {format!r}; choose one of {sorted(FORMATS)}")
    if named is not None and named != format:
        raise InvalidArgumentError(f"{str(path)!r} names a {named} file but format={format!r}")
    if format == "zarr" and importlib.util.find_spec("zarr") is None:
        raise MissingDependencyError("Zarr output needs the zarr package: pip install zarr")
    return format


def _check_target(target: Path, overwrite: bool) -> None:
    if not target.parent.is_dir():
        raise InvalidArgumentError(
            f"{str(target.parent)!r} is not an existing directory; create it first"
        )
    if (target.exists() or target.is_symlink()) and not overwrite:
        raise OutputExistsError(f"{target} exists; pass overwrite=True or choose another name")


def _reserve(target: Path, directory: bool) -> Path:
    """Create an empty temporary file or folder next to ``target`` (proves it is writable)."""
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    try:
        if directory:
            tmp.mkdir()
        else:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    except OSError as err:
        raise PermissionError(
            f"cannot write in {str(target.parent)!r} ({err.strerror}); choose a writable folder"
        ) from None
    return tmp


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _commit(tmp: Path, target: Path, overwrite: bool) -> None:
    """Move ``tmp`` to ``target``: one rename, or two when a folder is involved."""
    _check_target(target, overwrite)
    if not (target.is_dir() or (tmp.is_dir() and target.exists())):
        os.replace(tmp, target)
        return
    aside = tmp.with_name(f"{tmp.name}.old")
    os.rename(target, aside)
    try:
        os.rename(tmp, target)
    except OSError:
        os.rename(aside, target)
        raise
    _remove(aside)


@contextlib.contextmanager
def atomic_output(
    target: str | os.PathLike[str], *, directory: bool = False, overwrite: bool = False
) -> Iterator[Path]:
    """A temporary path next to ``target`` that becomes ``target`` only on success.

    The temporary file (or folder, for ``directory=True``) is created at once, so an
    unwritable folder fails before any work. When the block ends normally it is renamed
    to ``target``; when it raises (or is interrupted) it is removed. ``target`` never
    holds a partial file: a file is replaced in one rename; a folder (Zarr store) is
    swapped by two renames, between which ``target`` is briefly absent.

    Parameters
    ----------
    target
        The final path.
    directory
        Reserve a folder rather than a file.
    overwrite
        Replace an existing ``target``.

    Yields
    ------
    pathlib.Path
        The temporary path to write to.

    Raises
    ------
    ValueError
        If the parent folder does not exist.
    FileExistsError
        If ``target`` exists and ``overwrite`` is False (checked again before renaming).
    PermissionError
        If the parent folder is not writable.
    """
    final = Path(target)
    _check_target(final, overwrite)
    tmp = _reserve(final, directory)
    try:
        yield tmp
        _commit(tmp, final, overwrite)
    finally:
        _remove(tmp)


def _band_names(da: xr.DataArray) -> list[str] | None:
    if da.ndim == 2:
        return None
    dim = da.dims[0]
    values = da[dim].values if dim in da.coords else np.arange(da.shape[0])
    if np.issubdtype(values.dtype, np.datetime64):
        seconds = np.asarray(values, dtype="datetime64[s]")
        return [f"{t}Z" for t in np.datetime_as_string(seconds, unit="s")]
    return [f"{dim}={v}" for v in values]


def write_geotiff(
    da: xr.DataArray,
    path: str | os.PathLike[str],
    *,
    tags: Mapping[str, str] | None = None,
    overview_resampling: str = "nearest",
) -> None:
    """Write a cube to a Cloud-Optimized GeoTIFF (not atomic: see :func:`write_raster`).

    The cube is computed into memory. A 3-D cube becomes one band per step of its first
    dimension, described by the step (ISO time for ``time``).

    Parameters
    ----------
    da
        A cube with dims ``(y, x)`` or ``(step, y, x)``, a CRS and north-up grid.
    path
        The file to write.
    tags
        Dataset metadata tags.
    overview_resampling
        GDAL resampling of the overviews.
    """
    import rasterio
    import rasterio.shutil
    from rasterio.enums import Resampling
    from rasterio.io import MemoryFile

    if da.ndim not in (2, 3):
        raise InvalidArgumentError(f"a GeoTIFF holds 2-D or 3-D cubes, got dims {da.dims}")
    da = north_up(da)
    grid = grid_of(da)
    data = np.asarray(da.data).reshape(-1, *grid.shape)
    profile: dict[str, Any] = {
        "driver": "MEM",
        "count": data.shape[0],
        "height": grid.shape[0],
        "width": grid.shape[1],
        "dtype": data.dtype.name,
        "crs": crs_wkt(grid),
        "transform": grid.transform,
        "nodata": nodata_of(da),
    }
    units = da.attrs.get("units")
    # overviews built in memory are copied as they are: the COG driver needs no temp file
    with MemoryFile() as memory, memory.open(**profile) as mem:
        mem.write(data)
        mem.build_overviews(overview_factors(grid.shape.yx), Resampling[overview_resampling])
        for band, name in enumerate(_band_names(da) or [], start=1):
            mem.set_band_description(band, name)
        for band in range(1, data.shape[0] + 1) if units else ():
            mem.set_band_unit(band, str(units))
        mem.update_tags(**(tags or {}))
        rasterio.shutil.copy(mem, path, driver="COG", **COG_OPTIONS)


def overview_factors(shape: tuple[int, int]) -> list[int]:
    """The overview levels of a COG (GDAL's ``OVERVIEWS=AUTO``: halve until within a block)."""
    factors: list[int] = []
    rows, cols = shape
    block = int(COG_OPTIONS["BLOCKSIZE"])
    while rows > block or cols > block:
        rows, cols = -(-rows // 2), -(-cols // 2)
        factors.append(2 ** (len(factors) + 1))
    return factors


def write_zarr(
    da: xr.DataArray,
    path: str | os.PathLike[str],
    *,
    tags: Mapping[str, str] | None = None,
) -> None:
    """Write a cube to a Zarr (format 2) store, lazily chunk by chunk (not atomic).

    The variable keeps the cube's name (``"data"`` if it has none), coordinates, CRS
    (``spatial_ref`` with ``crs_wkt`` and ``GeoTransform``) and attrs; its ``_FillValue``
    is the nodata value, so xarray masks it on reading. ``tags`` become store attrs.
    """
    check_format(path, "zarr")
    nodata = nodata_of(da)
    name = "data" if da.name is None else str(da.name)
    var = north_up(da).copy(deep=False)
    var.attrs = {k: v for k, v in da.attrs.items() if k not in _INTERNAL_ATTRS}
    var.encoding = {
        "_FillValue": nodata,
        "chunks": (*(1,) * (var.ndim - 2), *(min(_ZARR_CHUNK, n) for n in var.shape[-2:])),
    }
    if var.chunks is not None:
        var = var.chunk({d: c for d, c in zip(var.dims, var.encoding["chunks"], strict=True)})
    ds = var.to_dataset(name=name)
    ds.attrs.update(tags or {})
    ds.to_zarr(path, mode="w", consolidated=True, zarr_format=2)


def write_raster(
    da: xr.DataArray,
    path: str | os.PathLike[str],
    *,
    format: str | None = None,
    overwrite: bool = False,
    tags: Mapping[str, str] | None = None,
    categorical: bool | None = None,
) -> Path:
    """Write a cube to a COG or a Zarr store atomically (temporary path, then rename).

    Parameters
    ----------
    da
        A cube with ``y``/``x`` dimensions (plus at most one more for a GeoTIFF) and a CRS.
    path
        The file (``.tif``) or store (``.zarr``) to write; its folder must exist.
    format
        ``"geotiff"`` or ``"zarr"`` (default: from the suffix of ``path``).
    overwrite
        Replace an existing file or store.
    tags
        Metadata tags (GeoTIFF) or store attrs (Zarr).
    categorical
        Whether values are class codes (default: the cube has ``class_names`` or
        ``flag_values`` attrs): GeoTIFF overviews then use ``nearest``, else ``average``.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    ValueError, FileExistsError, PermissionError
        See :func:`atomic_output`; also for an unknown format.
    MissingDependencyError
        For Zarr output without the zarr package.
    """
    fmt = check_format(path, format)
    categorical = is_categorical(da) if categorical is None else categorical
    with atomic_output(path, directory=fmt == "zarr", overwrite=overwrite) as tmp:
        if fmt == "zarr":
            write_zarr(da, tmp, tags=tags)
        else:
            write_geotiff(
                da, tmp, tags=tags, overview_resampling="nearest" if categorical else "average"
            )
    return Path(path)
