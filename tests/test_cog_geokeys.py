"""The COG reader's grid from a GeoTIFF's raw GeoKeys, checked against GDAL (rasterio).

A plain north-up grid with an EPSG code is read by cas_xr's range reader; anything else
(a rotation, a user-defined CRS, no georeferencing) is left to GDAL (``None``).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import tifffile
from rasterio.crs import CRS
from rasterio.transform import Affine

from cas_xr.sources._cog import _geo

LAEA = "+proj=laea +lat_0=52 +lon_0=10 +x_0=4321000 +y_0=3210000 +ellps=GRS80 +units=m"
CASES: dict[str, dict[str, Any]] = {
    "geographic": {"crs": "EPSG:4326", "transform": Affine(0.1, 0, -10, 0, -0.1, 50)},
    "projected": {
        "crs": "EPSG:32633",
        "transform": Affine(30, 0, 500000, 0, -30, 5000000),
        "nodata": -9999,
    },
    "rotated": {"crs": "EPSG:32633", "transform": Affine(10, 1, 500000, 1, -10, 5000000)},
    "user-defined": {"crs": CRS.from_proj4(LAEA), "transform": Affine(10, 0, 0, 0, -10, 0)},
}


def _write(path: Path, **options: Any) -> Path:
    profile = {"driver": "GTiff", "width": 64, "height": 48, "count": 1, "dtype": "float32"}
    with rasterio.open(
        path, "w", tiled=True, blockxsize=32, blockysize=32, **profile, **options
    ) as out:
        out.write(np.ones((1, 48, 64), "float32"))
    return path


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_grid_is_gdals_or_left_to_gdal(case: str, tmp_path: Path):
    path = _write(tmp_path / f"{case}.tif", **CASES[case])
    with tifffile.TiffFile(path) as tif:
        geo = _geo(tif.pages.first)
    with rasterio.open(path) as gdal:
        if case in ("rotated", "user-defined"):
            assert geo is None
            return
        assert geo is not None
        assert geo.epsg == gdal.crs.to_epsg()
        assert geo.transform == gdal.transform
        assert geo.nodata == gdal.nodata


def test_reading_a_header_builds_no_geokey_tables(tmp_path: Path):
    """tifffile's GeoKey name tables (tifffile.geodb) cost 60-300 ms at the first header."""
    path = _write(tmp_path / "dem.tif", **CASES["projected"])
    code = (
        "import sys; from cas_xr.sources._cog import _header; "
        f"h = _header({str(path)!r}, 'p'); assert h.geo is not None and h.geo.epsg == 32633; "
        "print('tifffile.geodb' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
