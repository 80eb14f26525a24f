"""cas_xr: catchment attributes from remote geodata, on xarray and Dask.

The names in ``__all__`` are the stable surface (the CAS embedded Python API plus
cas_xr's additions); deeper modules may change between minor versions.

Examples
--------
>>> import cas_xr as cas
>>> request = cas.AttributeRequest(
...     geometry={"type": "Point", "coordinates": [-96.5, 39.0]},
...     dataset_ids=["sample:elevation"],
... )
>>> cas.extract_sync(request).results[0].units
'm'
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cas_xr import accessor as _accessor  # noqa: F401  (registers the .cas accessor)
from cas_xr._open import open_dataset
from cas_xr._show_versions import show_versions
from cas_xr._sync import run_sync
from cas_xr._version import __version__
from cas_xr.batch import BatchFailureWarning, extract_cube, extract_table
from cas_xr.catalog import discover, get_connector, list_datasets, list_providers
from cas_xr.config import Settings, configure, get_settings
from cas_xr.engine import batch_extract, extract
from cas_xr.models import (
    AggregationMethod,
    AttributeRequest,
    AttributeResponse,
    AttributeResult,
    BatchAttributeRequest,
    BatchAttributeResponse,
    BoundingBox,
    Dataset,
    DataType,
    Geometry,
    OutputMode,
    QualityFlag,
    RasterResampling,
    RasterResult,
    TemporalExtent,
    TemporalType,
    TimeRange,
    Variable,
)
from cas_xr.raster import extract_raster
from cas_xr.zonal import zonal  # the function; the module stays importable as cas_xr.zonal

__all__ = [
    "AggregationMethod",
    "AttributeRequest",
    "AttributeResponse",
    "AttributeResult",
    "BatchAttributeRequest",
    "BatchAttributeResponse",
    "BatchFailureWarning",
    "BoundingBox",
    "DataType",
    "Dataset",
    "Geometry",
    "OutputMode",
    "QualityFlag",
    "RasterResampling",
    "RasterResult",
    "Settings",
    "TemporalExtent",
    "TemporalType",
    "TimeRange",
    "Variable",
    "__version__",
    "batch_extract",
    "batch_extract_sync",
    "configure",
    "discover",
    "extract",
    "extract_cube",
    "extract_raster",
    "extract_raster_sync",
    "extract_sync",
    "extract_table",
    "get_connector",
    "get_settings",
    "list_datasets",
    "list_providers",
    "open_dataset",
    "show_versions",
    "zonal",
]


def extract_sync(request: AttributeRequest | dict[str, Any]) -> AttributeResponse:
    """Blocking :func:`extract`; raises RuntimeError inside a running event loop."""
    return run_sync(extract(request), awaitable="extract")


def batch_extract_sync(request: BatchAttributeRequest | dict[str, Any]) -> BatchAttributeResponse:
    """Blocking :func:`batch_extract`; raises RuntimeError inside a running event loop."""
    return run_sync(batch_extract(request), awaitable="batch_extract")


def extract_raster_sync(
    dataset_id: str,
    bbox: BoundingBox | tuple[float, float, float, float] | list[float] | dict[str, float],
    output_dir: str | Path,
    **kwargs: Any,
) -> RasterResult:
    """Blocking :func:`extract_raster`; raises RuntimeError inside a running event loop."""
    return run_sync(
        extract_raster(dataset_id, bbox, output_dir, **kwargs), awaitable="extract_raster"
    )
