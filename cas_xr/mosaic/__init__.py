"""Mosaics as xarray operations: clip to a snapped box, regrid, write COG or Zarr.

Pure functions on xarray objects (no network): :func:`clip` cuts a cube to a box snapped
outward to whole cells (optionally reprojected or resampled with GDAL's warper), and
:func:`write_raster` writes it as a Cloud-Optimized GeoTIFF or a Zarr store atomically.
Raster mode (:func:`cas_xr.extract_raster`) and the ``.cas.clip`` / ``.cas.to_raster``
accessor methods are built on them.
"""

from cas_xr.mosaic._grid import grid_of, output_grid, same_lattice, transform_bbox
from cas_xr.mosaic._regrid import check_resampling, clip, nodata_of, read_bounds, regrid
from cas_xr.mosaic._write import COG_OPTIONS, FORMATS, atomic_output, check_format, write_raster

__all__ = [
    "COG_OPTIONS",
    "FORMATS",
    "atomic_output",
    "check_format",
    "check_resampling",
    "clip",
    "grid_of",
    "nodata_of",
    "output_grid",
    "read_bounds",
    "regrid",
    "same_lattice",
    "transform_bbox",
    "write_raster",
]
