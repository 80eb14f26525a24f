"""Files opened lazily: GeoTIFF/COG (one file, or a glob of tiles), Zarr and NetCDF.

:class:`LocalSource` holds what is shared; GeoTIFFs are read by
:mod:`cas_xr.sources._local_geotiff` (GDAL, one task per chunk, the settings' GDAL options
shipped with each), Zarr and NetCDF by :mod:`cas_xr.sources._local_array` (xarray, fsspec
``storage_options`` for remote ones).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from affine import Affine
from pydantic import ValidationError

from cas_xr.config import get_settings
from cas_xr.errors import CasError, ProviderDefinitionError, SourceError, validation_problems
from cas_xr.sources._base import gdal_options
from cas_xr.sources._cog import prefetch_header
from cas_xr.sources._grid import lonlat_bounds_to_crs, snap_bounds
from cas_xr.sources._local_array import open_array
from cas_xr.sources._local_geotiff import open_geotiff, raster_files
from cas_xr.sources._local_options import FORMATS, LocalOptions, is_url

if TYPE_CHECKING:
    import xarray as xr

    from cas_xr.models import TimeRange
    from cas_xr.sources._definitions import DatasetDefinition, ProviderDefinition

__all__ = ["FORMATS", "LocalOptions", "LocalSource", "from_definition"]


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
            files = raster_files(self)
            if len(files) > 1:
                provenance["files"] = files
            da = open_geotiff(self, files, bbox, chunks or get_settings().chunk_size)
        else:
            da = open_array(self, bbox, time_range, chunks)
        da.attrs["cas_provenance"] = provenance
        return da

    def prefetch(self) -> None:
        """Start reading a COG's header over HTTP(S) in the background; else nothing.

        What opening such a file waits for first (its header, a round trip) is then on
        its way while a request is planned (see :class:`~cas_xr.sources._base.Prefetching`).
        Never raises: :meth:`open` does.
        """
        try:
            geotiff = self.file_format == "geotiff"
        except CasError:
            return
        if geotiff and not self.gdal and urlsplit(self.path).scheme in ("http", "https"):
            prefetch_header(self.path, self.provider)

    # -- helpers, also of _local_geotiff and _local_array --------------------------------

    def _error(self, message: str, *, kind: str) -> SourceError:
        return SourceError(message, provider=self.provider or None, url=self.path, kind=kind)

    def _env(self) -> dict[str, Any]:
        return {**gdal_options(get_settings()), **self.gdal}

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
        """Write the nodata on ``da``, a DataArray made for this call (in place)."""
        nodata = nodata if nodata is not None else self.nodata
        if nodata is not None:
            da = da.rio.write_nodata(nodata, encoded=False, inplace=True)
        da.attrs["nodata"] = nodata
        return da


def from_definition(provider: ProviderDefinition, dataset: DatasetDefinition) -> LocalSource:
    """The source of ``dataset`` of a ``local`` or ``zarr`` provider (catalog factory).

    ``dataset.path`` is resolved against the provider's endpoint (a folder or URL prefix)
    when relative; without a path the endpoint itself is the data.
    """
    try:
        options = LocalOptions.model_validate(provider.options_for(dataset))
    except ValidationError as err:
        problems = validation_problems(err, "options")
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
    if is_url(path) or Path(path).expanduser().is_absolute():
        return path if is_url(path) else str(Path(path).expanduser())
    if is_url(endpoint):
        return endpoint.rstrip("/") + "/" + path
    return str(Path(endpoint).expanduser() / path)
