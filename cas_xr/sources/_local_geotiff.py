"""The GeoTIFF half of :class:`~cas_xr.sources.LocalSource`: a file, a URL or a glob of tiles.

GeoTIFFs are read by GDAL through rasterio, one Dask task per chunk; each task opens the
file itself inside ``rasterio.Env`` with the GDAL options of the settings, so remote
workers read with the same retries and timeouts. URLs go through GDAL's ``/vsicurl/``
(``/vsis3/``, ``/vsigs/``, ``/vsiaz/``). Several tiles matched by a glob become one
in-memory VRT on their common grid.
"""

from __future__ import annotations

import glob
import math
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import numpy as np
from affine import Affine

from cas_xr.errors import SourceError
from cas_xr.sources._cog import (
    CogHeader,
    CogReader,
    aligned,
    cog_reader,
    known_versions,
    lossy_tile_arrays,
    tile_array,
)
from cas_xr.sources._footprints import FOOTPRINTS
from cas_xr.sources._local_options import CHECK_PATH, NOT_FOUND, is_url
from cas_xr.sources._lost import LossyReader, fill_value
from cas_xr.sources._opened import frozen, opened
from cas_xr.sources._stac_common import _grid_mapping

if TYPE_CHECKING:
    import xarray as xr

    from cas_xr.sources._local import LocalSource

__all__ = ["open_geotiff", "raster_files"]

_VSI = {
    "http": "/vsicurl/",
    "https": "/vsicurl/",
    "s3": "/vsis3/",
    "gs": "/vsigs/",
    "az": "/vsiaz/",
}
_GDAL_TYPES = {
    "uint8": "Byte", "int8": "Int8", "uint16": "UInt16", "int16": "Int16", "uint32": "UInt32",
    "int32": "Int32", "uint64": "UInt64", "int64": "Int64", "float32": "Float32",
    "float64": "Float64",
}  # fmt: skip


@dataclass(frozen=True)
class _Raster:
    """What GDAL opens (a file, a /vsi path or VRT XML) and the grid it holds.

    ``tiles`` are the files of a mosaic, each with its bounds (in ``crs``).
    """

    target: str
    band: int
    crs: Any
    transform: Affine
    shape: tuple[int, int]
    dtype: str
    nodata: float | None
    tiles: tuple[tuple[str, float, float, float, float], ...] = ()


def raster_files(source: LocalSource) -> list[str]:
    """The files (or /vsi paths) of a GeoTIFF source: one, or those its glob matches."""
    if is_url(source.path):
        if glob.has_magic(source.path):
            raise source._error("globs work on local paths only", kind="definition")
        scheme = urlsplit(source.path).scheme
        if scheme not in _VSI:
            raise source._error(
                f"URL scheme {scheme!r} is not supported for GeoTIFFs; use one of {sorted(_VSI)}",
                kind="definition",
            )
        remote = source.path if scheme.startswith("http") else source.path.split("://", 1)[1]
        return [_VSI[scheme] + remote]
    if glob.has_magic(source.path):
        files = sorted(glob.glob(source.path))
        if not files:
            raise source._error(f"no file matches the glob; {CHECK_PATH}", kind="not_found")
        return files
    if not Path(source.path).is_file():
        raise source._error(NOT_FOUND, kind="not_found")
    return [source.path]


def _describe(source: LocalSource, target: str) -> _Raster:
    import rasterio

    try:
        with rasterio.Env(**source._env()), rasterio.open(target) as src:
            if not 1 <= source.band <= src.count:
                raise source._error(
                    f"band {source.band} requested but {target} has {src.count} band(s)",
                    kind="definition",
                )
            return _Raster(
                target=target,
                band=source.band,
                crs=src.crs,
                transform=src.transform,
                shape=(src.height, src.width),
                dtype=src.dtypes[source.band - 1],
                nodata=src.nodatavals[source.band - 1],
            )
    except rasterio.errors.RasterioIOError as err:
        text = str(err)
        missing = "No such file" in text or "does not exist" in text or "404" in text
        kind = "not_found" if missing else "read"
        reason = "not found" if missing else "not a readable raster (corrupt or truncated?)"
        raise source._error(f"{reason}: {text}", kind=kind) from err


def open_geotiff(
    source: LocalSource,
    files: Sequence[str],
    bbox: tuple[float, float, float, float] | None,
    size: int,
) -> xr.DataArray:
    """The cells of ``files`` (one raster, or tiles mosaicked by a VRT) covering ``bbox``.

    One Dask task per chunk of ``size`` cells (edges on multiples of ``size``) opens the
    raster and reads its window; see :class:`~cas_xr.sources.LocalSource` for the rest.
    A COG over HTTP(S) is read by tile (:mod:`cas_xr.sources._cog`): a tile whose range
    the server still answers with an HTTP error after the retries is nodata, counted in
    ``attrs["cas_failed_chunks"]`` (:mod:`cas_xr.sources._lost`), when the dtype holds a
    nodata (else the error is raised).
    """
    import dask.array
    import rioxarray  # noqa: F401  (registers .rio)
    import xarray as xr

    by_tile = _by_tile(source, files)
    cog, raster = opened(
        ("geotiff", frozen(source)),
        lambda: _open(source, files),
        paths=tuple(files),
        versions=(lambda: known_versions([source.path])) if by_tile else None,
    )
    crs = raster.crs if raster.crs else source._fallback_crs()
    rows, cols = source._window(raster.transform, raster.shape, crs, bbox)
    t, env = raster.transform, source._env()
    window = t @ Affine.translation(cols.start, rows.start)
    dtype = np.dtype(raster.dtype)
    fill = fill_value(dtype, raster.nodata if raster.nodata is not None else source.nodata)
    failed = None
    if cog is not None and fill is not None:  # a tile the server keeps refusing: nodata
        lossy = LossyReader(cog[0], fill)
        data, failed = lossy_tile_arrays("cas-cog", lossy, rows, cols, cog[1], dtype)
    elif cog is not None:
        data = tile_array("cas-cog", cog[0], rows, cols, cog[1], dtype)
    else:
        data = dask.array.map_blocks(
            _read_block,
            chunks=(
                aligned(rows.start, rows.stop - rows.start, size),
                aligned(cols.start, cols.stop - cols.start, size),
            ),
            dtype=raster.dtype,
            meta=np.empty((0, 0), dtype=raster.dtype),
            name=f"cas-local-{dask.base.tokenize(raster, rows, cols, size, env)}",
            raster=raster,
            origin=(rows.start, cols.start),
            env=env,
            label=source.path,
            provider=source.provider or None,
        )
    y = t.f + t.e * (np.arange(rows.start, rows.stop) + 0.5)
    x = t.c + t.a * (np.arange(cols.start, cols.stop) + 0.5)
    # labelled as rio.write_crs(crs).rio.write_transform(window) labels it, the CRS's
    # attributes made once per CRS
    geotransform = " ".join(str(item) for item in window.to_gdal())
    spatial_ref = xr.Variable((), 0, attrs={**_grid_mapping(crs), "GeoTransform": geotransform})
    da = xr.DataArray(data, dims=("y", "x"), coords={"y": y, "x": x, "spatial_ref": spatial_ref})
    da.encoding["grid_mapping"] = "spatial_ref"
    if raster.tiles:  # where each file lies, for the provenance of each geometry
        da.attrs[FOOTPRINTS] = {"files": {f: [str(crs), *box] for f, *box in raster.tiles}}
    if failed is not None:
        da.attrs["cas_failed_chunks"] = failed
    return source._with_nodata(da, raster.nodata)


def _open(
    source: LocalSource, files: Sequence[str]
) -> tuple[tuple[CogReader, tuple[int, int]] | None, _Raster]:
    """The grid of ``files`` (one raster, or their mosaic); a URL's COG reader and tile shape.

    Kept across calls while the files are unchanged (:mod:`cas_xr.sources._opened`).
    """
    cog = _remote_cog(source, files)
    if cog is not None and cog[1].geo is not None:
        return (cog[0], cog[1].tile), _from_header(files[0], source.band, cog[1])
    rasters = [_describe(source, f) for f in files]
    return None, rasters[0] if len(rasters) == 1 else _mosaic(source, rasters)


def _from_header(target: str, band: int, header: CogHeader) -> _Raster:
    """The grid of a COG as its GeoKeys give it (without asking GDAL)."""
    from rasterio.crs import CRS

    assert header.geo is not None
    return _Raster(
        target=target,
        band=band,
        crs=CRS.from_epsg(header.geo.epsg),
        transform=header.geo.transform,
        shape=header.shape,
        dtype=str(header.dtype),
        nodata=header.geo.nodata,
    )


def _by_tile(source: LocalSource, files: Sequence[str]) -> bool:
    """Whether the range reader may read the data: one COG over HTTP(S), GDAL's defaults."""
    return len(files) == 1 and urlsplit(source.path).scheme in ("http", "https") and not source.gdal


def _remote_cog(source: LocalSource, files: Sequence[str]) -> tuple[CogReader, CogHeader] | None:
    """The range reader of one COG over HTTP(S), when it can read it (else GDAL reads)."""
    if not _by_tile(source, files):
        return None
    return cog_reader(source.path, source.band, source.provider)


def _mosaic(source: LocalSource, rasters: Sequence[_Raster]) -> _Raster:
    ref = rasters[0]
    a, e = ref.transform.a, ref.transform.e
    for r in rasters:
        t = r.transform
        if r.crs != ref.crs or r.dtype != ref.dtype:
            raise source._error(
                f"tiles differ: {r.target} is {r.dtype} in {r.crs}, {ref.target} is "
                f"{ref.dtype} in {ref.crs}; a glob must match tiles of one grid",
                kind="definition",
            )
        if t.b or t.d or e >= 0 or not math.isclose(t.a, a) or not math.isclose(t.e, e):
            raise source._error(
                f"tiles must be north-up with one cell size; {r.target} has {tuple(t)[:6]}",
                kind="definition",
            )
    x0 = min(r.transform.c for r in rasters)
    y0 = max(r.transform.f for r in rasters)
    x1 = max(r.transform.c + r.shape[1] * a for r in rasters)
    y1 = min(r.transform.f + r.shape[0] * e for r in rasters)
    nodata = ref.nodata if ref.nodata is not None else source.nodata
    shape = (round((y1 - y0) / e), round((x1 - x0) / a))
    root = ET.Element("VRTDataset", rasterXSize=str(shape[1]), rasterYSize=str(shape[0]))
    ET.SubElement(root, "SRS").text = ref.crs.to_wkt()
    ET.SubElement(root, "GeoTransform").text = f"{x0!r},{a!r},0,{y0!r},0,{e!r}"
    band = ET.SubElement(root, "VRTRasterBand", dataType=_GDAL_TYPES[ref.dtype], band="1")
    if nodata is not None:
        ET.SubElement(band, "NoDataValue").text = repr(float(nodata))
    for r in reversed(rasters):  # later sources paint over earlier: the first file wins
        col, row = (r.transform.c - x0) / a, (r.transform.f - y0) / e
        if abs(col - round(col)) > 1e-6 or abs(row - round(row)) > 1e-6:
            raise source._error(
                f"{r.target} is not aligned with {ref.target} (offset of {col:.3f}, "
                f"{row:.3f} cells); a glob must match tiles of one grid",
                kind="definition",
            )
        tile = ET.SubElement(band, "ComplexSource")
        ET.SubElement(tile, "SourceFilename", relativeToVRT="0").text = r.target
        ET.SubElement(tile, "SourceBand").text = str(r.band)
        height, width = (str(n) for n in r.shape)
        ET.SubElement(tile, "SrcRect", xOff="0", yOff="0", xSize=width, ySize=height)
        offsets = {"xOff": str(round(col)), "yOff": str(round(row))}
        ET.SubElement(tile, "DstRect", {**offsets, "xSize": width, "ySize": height})
        if r.nodata is not None:
            ET.SubElement(tile, "NODATA").text = repr(float(r.nodata))
    return _Raster(
        target=ET.tostring(root, encoding="unicode"),
        band=1,
        crs=ref.crs,
        transform=Affine(a, 0.0, x0, 0.0, e, y0),
        shape=shape,
        dtype=ref.dtype,
        nodata=nodata,
        tiles=tuple((r.target, *_bounds(r)) for r in rasters),
    )


def _bounds(raster: _Raster) -> tuple[float, float, float, float]:
    """``(xmin, ymin, xmax, ymax)`` of a north-up raster."""
    t, (rows, cols) = raster.transform, raster.shape
    return (float(t.c), float(t.f + rows * t.e), float(t.c + cols * t.a), float(t.f))


def _read_block(
    raster: _Raster,
    origin: tuple[int, int],
    env: Mapping[str, Any],
    label: str,
    provider: str | None,
    block_info: dict[Any, Any] | None = None,
) -> np.ndarray:
    """Read one chunk (a Dask task): open the raster, read the window, close it."""
    import rasterio
    from rasterio.windows import Window

    assert block_info is not None  # always given by map_blocks
    (r0, r1), (c0, c1) = block_info[None]["array-location"]
    window = Window(origin[1] + c0, origin[0] + r0, c1 - c0, r1 - r0)
    try:
        with rasterio.Env(**env), rasterio.open(raster.target) as src:
            return src.read(raster.band, window=window)
    except rasterio.errors.RasterioError as err:
        raise SourceError(
            f"cannot read rows {window.row_off}..{window.row_off + window.height} "
            f"(corrupt or truncated?): {err.__cause__ or err}",
            provider=provider,
            url=label,
            kind="read",
        ) from err
