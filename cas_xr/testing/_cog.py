"""Write small, real Cloud-Optimized GeoTIFFs for tests and examples."""

from __future__ import annotations

import math
import os
import pathlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import rasterio
import rasterio.shutil
from affine import Affine
from rasterio.enums import Resampling
from rasterio.io import MemoryFile

__all__ = ["SUPPORTED_DTYPES", "make_cog"]

#: Numpy dtypes that :func:`make_cog` can write.
SUPPORTED_DTYPES: frozenset[str] = frozenset(
    {"uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "float64"}
)

_COMPRESSIONS = frozenset({"none", "deflate", "lzw", "zstd", "lzma", "packbits"})
_PREDICTOR_COMPRESSIONS = frozenset({"deflate", "lzw", "zstd"})
_OVERVIEW_RESAMPLINGS = frozenset(
    {"nearest", "average", "bilinear", "cubic", "cubicspline", "lanczos", "mode", "rms"}
)


def make_cog(
    path: str | os.PathLike[str],
    data: npt.ArrayLike,
    *,
    transform: Affine,
    crs: Any,
    nodata: float | None = None,
    blocksize: int = 256,
    compress: str = "deflate",
    band_descriptions: Sequence[str] | None = None,
    units: str | Sequence[str] | None = None,
    overview_resampling: str = "nearest",
) -> pathlib.Path:
    """Write an array to a Cloud-Optimized GeoTIFF.

    The file is tiled, compressed (with a predictor for deflate, LZW and ZSTD) and has
    internal overviews whenever the image is larger than one block.

    Parameters
    ----------
    path : str or os.PathLike
        Destination file. Its parent directory must exist; an existing file is replaced.
    data : array_like
        Pixel values: a 2-D array ``(y, x)`` for a single band or a 3-D array
        ``(band, y, x)``.
    transform : affine.Affine
        Pixel-to-CRS transform of the top-left pixel corner (pixel-is-area).
    crs : Any
        Coordinate reference system, anything :class:`rasterio.crs.CRS` accepts
        (``"EPSG:4326"``, an EPSG integer, WKT, a ``CRS`` object...).
    nodata : float, optional
        Nodata value stored in the file; it must be representable in ``data``'s dtype.
    blocksize : int, default 256
        Tile width and height in pixels; a multiple of 16.
    compress : str, default "deflate"
        Compression: one of ``none``, ``deflate``, ``lzw``, ``zstd``, ``lzma`` or
        ``packbits`` (case-insensitive).
    band_descriptions : sequence of str, optional
        One description per band.
    units : str or sequence of str, optional
        Unit of the pixel values: one string for all bands or one per band.
    overview_resampling : str, default "nearest"
        Resampling for the overviews: ``nearest`` (keeps categorical data valid),
        ``average``, ``bilinear``, ``cubic``, ``cubicspline``, ``lanczos``, ``mode`` or
        ``rms``.

    Returns
    -------
    pathlib.Path
        The path of the written file.

    Raises
    ------
    ValueError
        If the array has the wrong number of dimensions or an unsupported dtype, the
        nodata value does not fit the dtype, an option is invalid, the number of
        descriptions or units does not match the number of bands, or the destination
        directory does not exist.
    """
    out = pathlib.Path(path)
    if not out.parent.is_dir():
        raise ValueError(f"destination directory does not exist: {out.parent}")
    array = _as_band_stack(data)
    dtype = array.dtype.name
    _check_nodata(nodata, array.dtype)
    method, resampling = _check_options(blocksize, compress, overview_resampling)
    count = array.shape[0]
    descriptions = _per_band("band_descriptions", band_descriptions, count)
    band_units = _per_band("units", [units] * count if isinstance(units, str) else units, count)

    profile: dict[str, Any] = {
        "driver": "GTiff",
        "width": array.shape[2],
        "height": array.shape[1],
        "count": count,
        "dtype": dtype,
        "crs": crs,
        "transform": transform,
        "nodata": nodata,
    }
    with MemoryFile() as memfile, memfile.open(**profile) as mem:
        mem.write(array)
        for band, description in enumerate(descriptions or [], start=1):
            mem.set_band_description(band, description)
        for band, unit in enumerate(band_units or [], start=1):
            mem.set_band_unit(band, unit)
        if _has_cog_driver():
            _copy_with_cog_driver(mem, out, blocksize, method, resampling)
        else:
            _copy_as_tiled_gtiff(mem, out, blocksize, method, resampling)
    return out


def _as_band_stack(data: npt.ArrayLike) -> npt.NDArray[Any]:
    array = np.asarray(data)
    if array.ndim == 2:
        array = array[np.newaxis]
    if array.ndim != 3:
        raise ValueError(f"data must be 2-D (y, x) or 3-D (band, y, x), got {array.ndim}-D")
    if 0 in array.shape:
        raise ValueError(f"data must not be empty, got shape {array.shape}")
    if array.dtype.name not in SUPPORTED_DTYPES:
        raise ValueError(
            f"unsupported dtype {array.dtype.name!r}; use one of {sorted(SUPPORTED_DTYPES)}"
        )
    return array


def _check_nodata(nodata: float | None, dtype: np.dtype[Any]) -> None:
    if nodata is None:
        return
    if dtype.kind == "f":
        if math.isfinite(nodata) and abs(nodata) > float(np.finfo(dtype).max):
            raise ValueError(f"nodata {nodata} does not fit dtype {dtype.name}")
        return
    info = np.iinfo(dtype)
    if not (math.isfinite(nodata) and float(nodata).is_integer()):
        raise ValueError(f"nodata {nodata} is not an integer, as dtype {dtype.name} needs")
    if not info.min <= nodata <= info.max:
        raise ValueError(
            f"nodata {nodata} is outside the range of dtype {dtype.name} ({info.min}..{info.max})"
        )


def _check_options(blocksize: int, compress: str, overview_resampling: str) -> tuple[str, str]:
    if blocksize < 16 or blocksize % 16:
        raise ValueError(f"blocksize must be a positive multiple of 16, got {blocksize}")
    method = compress.lower()
    if method not in _COMPRESSIONS:
        raise ValueError(f"compress must be one of {sorted(_COMPRESSIONS)}, got {compress!r}")
    resampling = overview_resampling.lower()
    if resampling not in _OVERVIEW_RESAMPLINGS:
        raise ValueError(
            f"overview_resampling must be one of {sorted(_OVERVIEW_RESAMPLINGS)}, "
            f"got {overview_resampling!r}"
        )
    return method, resampling


def _per_band(name: str, values: Sequence[str] | None, count: int) -> list[str] | None:
    if values is None:
        return None
    listed = list(values)
    if len(listed) != count:
        raise ValueError(f"{name} has {len(listed)} entries but the data has {count} band(s)")
    return listed


def _has_cog_driver() -> bool:
    with rasterio.Env() as env:
        return "COG" in env.drivers()


def _creation_options(method: str, predictor: str) -> dict[str, str]:
    options = {"COMPRESS": method.upper()}
    if method in _PREDICTOR_COMPRESSIONS:
        options["PREDICTOR"] = predictor
    return options


def _copy_with_cog_driver(
    src: rasterio.io.DatasetWriter,
    out: pathlib.Path,
    blocksize: int,
    method: str,
    resampling: str,
) -> None:
    rasterio.shutil.copy(
        src,
        out,
        driver="COG",
        BLOCKSIZE=str(blocksize),
        OVERVIEWS="AUTO",
        OVERVIEW_RESAMPLING=resampling.upper(),
        **_creation_options(method, "YES"),
    )


def _copy_as_tiled_gtiff(
    src: rasterio.io.DatasetWriter,
    out: pathlib.Path,
    blocksize: int,
    method: str,
    resampling: str,
) -> None:
    factors: list[int] = []
    size = max(src.width, src.height)
    while size > blocksize:
        factors.append(2 ** (len(factors) + 1))
        size = math.ceil(size / 2)
    if factors:
        src.build_overviews(factors, Resampling[resampling])
    rasterio.shutil.copy(
        src,
        out,
        driver="GTiff",
        TILED="YES",
        BLOCKXSIZE=str(blocksize),
        BLOCKYSIZE=str(blocksize),
        COPY_SRC_OVERVIEWS="YES",
        **_creation_options(method, "3" if src.dtypes[0].startswith("float") else "2"),
    )
