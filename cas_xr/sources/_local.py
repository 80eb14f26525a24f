"""Files opened lazily: GeoTIFF/COG (one file, or a glob of tiles), Zarr and NetCDF.

GeoTIFFs are read by GDAL through rasterio, one Dask task per chunk; each task opens the
file itself inside ``rasterio.Env`` with the GDAL options of the settings, so remote
workers read with the same retries and timeouts. URLs go through GDAL's ``/vsicurl/``
(``/vsis3/``, ``/vsigs/``, ``/vsiaz/``). Several tiles matched by a glob become one
in-memory VRT on their common grid. Zarr and NetCDF are opened by xarray (NetCDF with the
``h5netcdf`` engine unless the ``engine`` option names another), remote ones through
fsspec with ``storage_options``.
"""

from __future__ import annotations

import glob
import itertools
import math
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

import numpy as np
from affine import Affine
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cas_xr.config import get_settings
from cas_xr.errors import MissingDependencyError, ProviderDefinitionError, SourceError
from cas_xr.sources._base import gdal_options
from cas_xr.sources._grid import lonlat_bounds_to_crs, snap_bounds

if TYPE_CHECKING:
    import xarray as xr

    from cas_xr.catalog import DatasetDefinition, ProviderDefinition
    from cas_xr.models import TimeRange

__all__ = ["FORMATS", "LocalOptions", "LocalSource", "from_definition"]

#: File formats the source reads, and the suffixes that select them.
FORMATS: dict[str, tuple[str, ...]] = {
    "geotiff": (".tif", ".tiff", ".vrt"),
    "zarr": (".zarr",),
    "netcdf": (".nc", ".nc4", ".cdf", ".netcdf", ".h5", ".hdf5"),
}
_VSI = {
    "http": "/vsicurl/",
    "https": "/vsicurl/",
    "s3": "/vsis3/",
    "gs": "/vsigs/",
    "az": "/vsiaz/",
}
_CHECK = "check the dataset's 'path' and the provider's 'endpoint'"
_NOT_FOUND = f"file not found; {_CHECK}"
_ENGINE_PACKAGES = {"h5netcdf": "h5netcdf h5py", "netcdf4": "netCDF4", "scipy": "scipy"}
_DIMS = {"latitude": "y", "longitude": "x", "lat": "y", "lon": "x"}
_GDAL_TYPES = {
    "uint8": "Byte", "int8": "Int8", "uint16": "UInt16", "int16": "Int16", "uint32": "UInt32",
    "int32": "Int32", "uint64": "UInt64", "int64": "Int64", "float32": "Float32",
    "float64": "Float64",
}  # fmt: skip


def _is_url(path: str) -> bool:
    return len(urlsplit(path).scheme) > 1  # one letter is a Windows drive


class LocalOptions(BaseModel):
    """The ``options`` of a ``local`` or ``zarr`` provider or dataset (provider YAML files).

    Attributes
    ----------
    format
        ``geotiff``, ``zarr`` or ``netcdf``; by default inferred from the path's suffix
        (always ``zarr`` for the ``zarr`` protocol).
    storage_options
        fsspec options for remote Zarr/NetCDF (e.g. ``{"anon": true}`` for public S3).
    gdal
        GDAL configuration options for GeoTIFF reads, over those derived from the settings
        (e.g. ``{"AWS_NO_SIGN_REQUEST": "YES"}``).
    engine
        xarray engine for NetCDF.
    consolidated
        Whether a Zarr store has consolidated metadata (None: try, then fall back with
        xarray's warning).
    """

    model_config = ConfigDict(extra="forbid")

    format: Literal["geotiff", "zarr", "netcdf"] | None = None
    storage_options: dict[str, Any] = Field(default_factory=dict)
    gdal: dict[str, str | int | float | bool] = Field(default_factory=dict)
    engine: Literal["h5netcdf", "netcdf4", "scipy"] = "h5netcdf"
    consolidated: bool | None = None


@dataclass(frozen=True)
class _Raster:
    """What GDAL opens (a file, a /vsi path or VRT XML) and the grid it holds."""

    target: str
    band: int
    crs: Any
    transform: Affine
    shape: tuple[int, int]
    dtype: str
    nodata: float | None


@dataclass(frozen=True)
class LocalSource:
    """One variable of a GeoTIFF/COG, a glob of GeoTIFF tiles, a Zarr store or a NetCDF file.

    Parameters
    ----------
    path
        File, glob (GeoTIFF tiles only) or URL (``http(s)://``, ``s3://``, ``gs://``...).
    format
        ``"geotiff"``, ``"zarr"`` or ``"netcdf"``; by default inferred from the suffix.
    provider
        Provider slug, for error messages and provenance.
    protocol
        Catalog protocol (``"local"`` or ``"zarr"``), recorded in the provenance.
    array
        Zarr/NetCDF variable to read (default: the only one on a y/x grid).
    band
        1-based band of a multi-band GeoTIFF.
    crs
        CRS to assume when the data declare none (never guessed otherwise).
    nodata
        Nodata value to use where the files declare none (and for gaps between tiles).
    temporal
        Whether a ``time`` dimension of length one is kept (temporal datasets) or dropped.
    storage_options
        fsspec options for remote Zarr/NetCDF (credentials, ``anon``...).
    gdal
        GDAL configuration options over those of the settings (e.g. ``AWS_NO_SIGN_REQUEST``).
    engine
        xarray engine for NetCDF.
    consolidated
        Whether a Zarr store has consolidated metadata (None: try, then fall back).

    Notes
    -----
    Data are returned on their native grid and CRS, clipped to the requested box snapped
    outward to whole cells; grids whose y axis ascends keep that order. Where tiles of a
    glob overlap, the first file in name order wins; its nodata cells show the next file.
    Values are returned as stored (no scale/offset applied, nodata not masked).
    """

    path: str
    format: str | None = None
    provider: str = ""
    protocol: str = "local"
    array: str | None = None
    band: int = 1
    crs: str | None = None
    nodata: float | None = None
    temporal: bool = False
    storage_options: Mapping[str, Any] = field(default_factory=dict)
    gdal: Mapping[str, Any] = field(default_factory=dict)
    engine: str = "h5netcdf"
    consolidated: bool | None = None

    @property
    def file_format(self) -> str:
        """The format read: the ``format`` given, else the one the path's suffix names."""
        if self.format is not None:
            return self.format
        suffix = Path(urlsplit(self.path).path.rstrip("/")).suffix.lower()
        for name, suffixes in FORMATS.items():
            if suffix in suffixes:
                return name
        raise self._error(
            f"cannot tell the format of {self.path!r} from its suffix; set the dataset option "
            f"'format' to one of {sorted(FORMATS)}",
            kind="definition",
        )

    def open(
        self,
        *,
        bbox: tuple[float, float, float, float] | None = None,
        time_range: TimeRange | None = None,
        chunks: int | None = None,
    ) -> xr.DataArray:
        """Open the data intersecting ``bbox``, lazily.

        Parameters
        ----------
        bbox
            ``(min_lon, min_lat, max_lon, max_lat)``; None for the whole extent.
        time_range
            Keep the steps of a ``time`` dimension inside this range (GeoTIFFs have none).
        chunks
            Dask chunk size in cells along ``y`` and ``x`` (default: ``chunk_size`` setting).

        Returns
        -------
        xarray.DataArray
            Dask-backed, dims ``(y, x)`` or ``(time, y, x)``, with a CRS, ``nodata`` and
            ``cas_provenance`` attrs.

        Raises
        ------
        SourceError
            ``kind="not_found"`` for a missing file, ``"read"`` for an unreadable one,
            ``"definition"`` for a wrong format/array/band/CRS, ``"no_data"`` when the box
            or time range holds no cell.
        """
        provenance: dict[str, Any] = {"protocol": self.protocol, "path": self.path}
        if self.file_format == "geotiff":
            files = self._raster_files()
            if len(files) > 1:
                provenance["files"] = files
            da = self._open_raster(files, bbox, chunks or get_settings().chunk_size)
        else:
            da = self._open_array(bbox, time_range, chunks)
        da.attrs["cas_provenance"] = provenance
        return da

    def _error(self, message: str, *, kind: str) -> SourceError:
        return SourceError(message, provider=self.provider or None, url=self.path, kind=kind)

    def _env(self) -> dict[str, Any]:
        return {**gdal_options(get_settings()), **self.gdal}

    # -- GeoTIFF ----------------------------------------------------------------------

    def _raster_files(self) -> list[str]:
        if _is_url(self.path):
            if glob.has_magic(self.path):
                raise self._error("globs work on local paths only", kind="definition")
            scheme = urlsplit(self.path).scheme
            if scheme not in _VSI:
                raise self._error(
                    f"URL scheme {scheme!r} is not supported for GeoTIFFs; use one of "
                    f"{sorted(_VSI)}",
                    kind="definition",
                )
            remote = self.path if scheme.startswith("http") else self.path.split("://", 1)[1]
            return [_VSI[scheme] + remote]
        if glob.has_magic(self.path):
            files = sorted(glob.glob(self.path))
            if not files:
                raise self._error(f"no file matches the glob; {_CHECK}", kind="not_found")
            return files
        if not Path(self.path).is_file():
            raise self._error(_NOT_FOUND, kind="not_found")
        return [self.path]

    def _describe(self, target: str) -> _Raster:
        import rasterio

        try:
            with rasterio.Env(**self._env()), rasterio.open(target) as src:
                if not 1 <= self.band <= src.count:
                    raise self._error(
                        f"band {self.band} requested but {target} has {src.count} band(s)",
                        kind="definition",
                    )
                return _Raster(
                    target=target,
                    band=self.band,
                    crs=src.crs,
                    transform=src.transform,
                    shape=(src.height, src.width),
                    dtype=src.dtypes[self.band - 1],
                    nodata=src.nodatavals[self.band - 1],
                )
        except rasterio.errors.RasterioIOError as err:
            text = str(err)
            missing = "No such file" in text or "does not exist" in text or "404" in text
            kind = "not_found" if missing else "read"
            reason = "not found" if missing else "not a readable raster (corrupt or truncated?)"
            raise self._error(f"{reason}: {text}", kind=kind) from err

    def _open_raster(
        self, files: Sequence[str], bbox: tuple[float, float, float, float] | None, size: int
    ) -> xr.DataArray:
        import dask.array
        import rioxarray  # noqa: F401  (registers .rio)
        import xarray as xr

        rasters = [self._describe(f) for f in files]
        raster = rasters[0] if len(rasters) == 1 else self._mosaic(rasters)
        crs = raster.crs if raster.crs else self._fallback_crs()
        rows, cols = self._window(raster.transform, raster.shape, crs, bbox)
        t, env = raster.transform, self._env()
        window = t @ Affine.translation(cols.start, rows.start)
        data = dask.array.map_blocks(
            _read_block,
            chunks=(
                _aligned(rows.start, rows.stop - rows.start, size),
                _aligned(cols.start, cols.stop - cols.start, size),
            ),
            dtype=raster.dtype,
            meta=np.empty((0, 0), dtype=raster.dtype),
            name=f"cas-local-{dask.base.tokenize(raster, rows, cols, size, env)}",
            raster=raster,
            origin=(rows.start, cols.start),
            env=env,
            label=self.path,
            provider=self.provider or None,
        )
        y = t.f + t.e * (np.arange(rows.start, rows.stop) + 0.5)
        x = t.c + t.a * (np.arange(cols.start, cols.stop) + 0.5)
        da = xr.DataArray(data, dims=("y", "x"), coords={"y": y, "x": x})
        da = da.rio.write_crs(crs).rio.write_transform(window)
        return self._with_nodata(da, raster.nodata)

    def _mosaic(self, rasters: Sequence[_Raster]) -> _Raster:
        ref = rasters[0]
        a, e = ref.transform.a, ref.transform.e
        for r in rasters:
            t = r.transform
            if r.crs != ref.crs or r.dtype != ref.dtype:
                raise self._error(
                    f"tiles differ: {r.target} is {r.dtype} in {r.crs}, {ref.target} is "
                    f"{ref.dtype} in {ref.crs}; a glob must match tiles of one grid",
                    kind="definition",
                )
            if t.b or t.d or e >= 0 or not math.isclose(t.a, a) or not math.isclose(t.e, e):
                raise self._error(
                    f"tiles must be north-up with one cell size; {r.target} has {tuple(t)[:6]}",
                    kind="definition",
                )
        x0 = min(r.transform.c for r in rasters)
        y0 = max(r.transform.f for r in rasters)
        x1 = max(r.transform.c + r.shape[1] * a for r in rasters)
        y1 = min(r.transform.f + r.shape[0] * e for r in rasters)
        nodata = ref.nodata if ref.nodata is not None else self.nodata
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
                raise self._error(
                    f"{r.target} is not aligned with {ref.target} (offset of {col:.3f}, "
                    f"{row:.3f} cells); a glob must match tiles of one grid",
                    kind="definition",
                )
            source = ET.SubElement(band, "ComplexSource")
            ET.SubElement(source, "SourceFilename", relativeToVRT="0").text = r.target
            ET.SubElement(source, "SourceBand").text = str(r.band)
            height, width = (str(n) for n in r.shape)
            ET.SubElement(source, "SrcRect", xOff="0", yOff="0", xSize=width, ySize=height)
            offsets = {"xOff": str(round(col)), "yOff": str(round(row))}
            ET.SubElement(source, "DstRect", {**offsets, "xSize": width, "ySize": height})
            if r.nodata is not None:
                ET.SubElement(source, "NODATA").text = repr(float(r.nodata))
        return _Raster(
            target=ET.tostring(root, encoding="unicode"),
            band=1,
            crs=ref.crs,
            transform=Affine(a, 0.0, x0, 0.0, e, y0),
            shape=shape,
            dtype=ref.dtype,
            nodata=nodata,
        )

    # -- Zarr and NetCDF --------------------------------------------------------------

    def _open_store(self, *, native_chunks: bool) -> xr.Dataset:
        import xarray as xr

        remote = _is_url(self.path)
        if not remote and not Path(self.path).exists():
            raise self._error(_NOT_FOUND, kind="not_found")
        if self.file_format == "netcdf" and self.engine not in xr.backends.list_engines():
            raise MissingDependencyError(
                f"reading NetCDF with engine {self.engine!r} needs its package: "
                f"pip install {_ENGINE_PACKAGES[self.engine]} (or set the dataset option 'engine')"
            )
        common: dict[str, Any] = {"mask_and_scale": False, "decode_coords": "all"}
        try:
            if self.file_format == "zarr":
                return xr.open_zarr(
                    self.path,
                    chunks={} if native_chunks else None,
                    consolidated=self.consolidated,
                    storage_options=dict(self.storage_options) if remote else None,
                    **common,
                )
            target: Any = self.path
            if remote:
                import fsspec

                target = fsspec.open(self.path, mode="rb", **self.storage_options).open()
            return xr.open_dataset(target, engine=self.engine, chunks=None, cache=False, **common)
        except FileNotFoundError as err:
            raise self._error(f"not found: {err}", kind="not_found") from err
        except ImportError as err:  # fsspec names the package of a remote protocol
            raise MissingDependencyError(f"reading {self.path} needs a package: {err}") from err
        except (OSError, ValueError, KeyError) as err:
            raise self._error(
                f"cannot read {self.file_format} (corrupt or truncated?): {err}", kind="read"
            ) from err

    def _variable(self, ds: xr.Dataset) -> xr.DataArray:
        if self.array is not None:
            if self.array not in ds.data_vars:
                raise self._error(
                    f"variable {self.array!r} is not in the data; its variables are "
                    f"{sorted(map(str, ds.data_vars))}",
                    kind="definition",
                )
            return ds[self.array]
        gridded = [
            name
            for name, var in ds.data_vars.items()
            if {_DIMS.get(str(d), str(d)) for d in var.dims} >= {"y", "x"}
        ]
        if len(gridded) != 1:
            raise self._error(
                f"cannot choose a variable among {sorted(map(str, gridded))}; set the dataset's "
                "'array'",
                kind="definition",
            )
        return ds[gridded[0]]

    def _open_array(
        self,
        bbox: tuple[float, float, float, float] | None,
        time_range: TimeRange | None,
        chunks: int | None,
    ) -> xr.DataArray:
        import rioxarray  # noqa: F401  (registers .rio)

        native_chunks = self.file_format == "zarr" and chunks is None  # keep the store's chunks
        da = self._variable(self._open_store(native_chunks=native_chunks))
        da = da.rename({d: _DIMS[str(d)] for d in da.dims if str(d) in _DIMS})
        if not {"y", "x"} <= set(da.dims):
            raise self._error(
                f"{da.name!r} has dims {tuple(map(str, da.dims))}; it needs y/x (or lat/lon, "
                "latitude/longitude) dimensions",
                kind="definition",
            )
        crs = da.rio.crs or self._fallback_crs()
        extra = [d for d in da.dims if d not in ("time", "y", "x")]
        if any(da.sizes[d] > 1 for d in extra):
            raise self._error(
                f"{da.name!r} has extra dimensions {extra}; only time, y and x are read",
                kind="definition",
            )
        if "time" in da.dims and da.sizes["time"] == 1 and not self.temporal:
            extra.append("time")
        da = da.squeeze(extra, drop=True)
        if time_range is not None and "time" in da.dims:
            da = da.sel(time=slice(_naive_utc(time_range.start), _naive_utc(time_range.end)))
            if da.sizes["time"] == 0:
                raise self._error(
                    f"no time step in {time_range.start.isoformat()}..{time_range.end.isoformat()}",
                    kind="no_data",
                )
        transform = da.rio.transform(recalc=True)
        rows, cols = self._window(transform, (da.sizes["y"], da.sizes["x"]), crs, bbox)
        da = da.isel(y=rows, x=cols).transpose(..., "y", "x")
        if not native_chunks:
            size = chunks or get_settings().chunk_size
            da = da.chunk({"y": size, "x": size, **({"time": 1} if "time" in da.dims else {})})
        da = da.rio.write_crs(crs)
        nodata = da.attrs.get("_FillValue", da.attrs.get("missing_value"))
        return self._with_nodata(da, None if nodata is None else float(nodata))

    # -- shared -----------------------------------------------------------------------

    def _fallback_crs(self) -> str:
        if self.crs is None:
            raise self._error(
                "the data declare no CRS (no GeoTIFF CRS, no CF grid_mapping); set the "
                "dataset's 'crs' in the provider file (cas_xr never assumes one)",
                kind="definition",
            )
        return self.crs

    def _window(
        self,
        transform: Affine,
        shape: tuple[int, int],
        crs: Any,
        bbox: tuple[float, float, float, float] | None,
    ) -> tuple[slice, slice]:
        rows, cols = shape
        if bbox is None:
            return slice(0, rows), slice(0, cols)
        ascending = transform.e > 0
        # snap on the north-up view of the grid, then map rows back if y ascends
        a, c, e, f = transform.a, transform.c, transform.e, transform.f
        north_up = Affine(a, 0.0, c, 0.0, -e, f + rows * e) if ascending else transform
        try:
            window, (height, width) = snap_bounds(north_up, lonlat_bounds_to_crs(bbox, crs))
        except ValueError as err:
            raise self._error(str(err), kind="definition") from err
        col0 = round((window.c - north_up.c) / north_up.a)
        row0 = round((window.f - north_up.f) / north_up.e)
        r0, r1 = max(row0, 0), min(row0 + height, rows)
        c0, c1 = max(col0, 0), min(col0 + width, cols)
        if r0 >= r1 or c0 >= c1:
            raise self._error(f"bbox {bbox} does not intersect the data", kind="no_data")
        if ascending:
            r0, r1 = rows - r1, rows - r0
        return slice(r0, r1), slice(c0, c1)

    def _with_nodata(self, da: xr.DataArray, nodata: float | None) -> xr.DataArray:
        nodata = nodata if nodata is not None else self.nodata
        if nodata is not None:
            da = da.rio.write_nodata(nodata, encoded=False)
        da.attrs["nodata"] = nodata
        return da


def _naive_utc(value: Any) -> Any:
    return value if value.tzinfo is None else value.astimezone(UTC).replace(tzinfo=None)


def _aligned(start: int, length: int, size: int) -> tuple[int, ...]:
    """Chunk lengths covering ``[start, start + length)`` with edges on multiples of ``size``."""
    edges = [start, *range((start // size + 1) * size, start + length, size), start + length]
    return tuple(b - a for a, b in itertools.pairwise(edges))


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


def from_definition(provider: ProviderDefinition, dataset: DatasetDefinition) -> LocalSource:
    """The source of ``dataset`` of a ``local`` or ``zarr`` provider (catalog factory).

    ``dataset.path`` is resolved against the provider's endpoint (a folder or URL prefix)
    when relative; without a path the endpoint itself is the data.
    """
    try:
        options = LocalOptions.model_validate(provider.options_for(dataset))
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'options'}: {e['msg']}" for e in err.errors()
        )
        raise ProviderDefinitionError(
            f"invalid {provider.protocol.value} options of dataset {dataset.name!r} of provider "
            f"{provider.slug!r}: {problems}"
        ) from None
    return LocalSource(
        path=_resolve(provider.endpoint, dataset.path),
        format="zarr" if provider.protocol.value == "zarr" else options.format,
        provider=provider.slug,
        protocol=provider.protocol.value,
        array=dataset.array,
        band=dataset.band,
        crs=dataset.crs if "crs" in dataset.model_fields_set else None,
        nodata=dataset.variables[0].nodata_value,
        temporal=dataset.is_temporal,
        storage_options=options.storage_options,
        gdal={k: _gdal_value(v) for k, v in options.gdal.items()},
        engine=options.engine,
        consolidated=options.consolidated,
    )


def _gdal_value(value: str | float | bool) -> str:
    """GDAL's spelling of a config value (YAML reads ``YES`` as a boolean)."""
    if isinstance(value, bool):
        return "YES" if value else "NO"
    return str(value)


def _resolve(endpoint: str, path: str | None) -> str:
    if path is None:
        return endpoint
    if _is_url(path) or Path(path).expanduser().is_absolute():
        return path if _is_url(path) else str(Path(path).expanduser())
    if _is_url(endpoint):
        return endpoint.rstrip("/") + "/" + path
    return str(Path(endpoint).expanduser() / path)
