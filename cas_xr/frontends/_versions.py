"""``show_versions()``: what to paste into a bug report."""

from __future__ import annotations

import importlib.metadata
import platform
import sys

__all__ = ["show_versions"]

_PACKAGES = (
    "cas-xr",
    "numpy",
    "xarray",
    "dask",
    "distributed",
    "rasterio",
    "rioxarray",
    "odc-stac",
    "odc-geo",
    "pystac",
    "pystac-client",
    "exactextract",
    "xvec",
    "shapely",
    "pyproj",
    "geopandas",
    "pydantic",
    "pydantic-settings",
    "fastapi",
    "uvicorn",
    "httpx",
)


def show_versions() -> str:
    """Print and return the versions of Python, GDAL and the packages cas_xr uses."""
    lines = [f"python: {sys.version.split()[0]} ({platform.platform()})"]
    for name in _PACKAGES:
        try:
            version = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            version = "not installed"
        lines.append(f"{name}: {version}")
    try:
        import rasterio

        lines.append(f"GDAL: {rasterio.__gdal_version__}")
    except ImportError:
        lines.append("GDAL: rasterio not installed")
    text = "\n".join(lines)
    print(text)
    return text
