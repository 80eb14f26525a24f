"""What the local source shares: formats, path helpers and the ``options`` model."""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["CHECK_PATH", "FORMATS", "NOT_FOUND", "LocalOptions", "is_url"]

#: File formats the source reads, and the suffixes that select them.
FORMATS: dict[str, tuple[str, ...]] = {
    "geotiff": (".tif", ".tiff", ".vrt"),
    "zarr": (".zarr",),
    "netcdf": (".nc", ".nc4", ".cdf", ".netcdf", ".h5", ".hdf5"),
}
#: What to check when a file is not found.
CHECK_PATH = "check the dataset's 'path' and the provider's 'endpoint'"
NOT_FOUND = f"file not found; {CHECK_PATH}"


def is_url(path: str) -> bool:
    """Whether ``path`` is a URL (a one-letter scheme is a Windows drive)."""
    return len(urlsplit(path).scheme) > 1


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
