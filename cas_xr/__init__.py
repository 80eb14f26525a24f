"""cas_xr: catchment attributes from remote geodata, on xarray and Dask.

The names in ``__all__`` are the stable surface (the CAS embedded Python API plus
cas_xr's additions); deeper modules may change between minor versions. They load on
first use (module ``__getattr__``), so ``import cas_xr`` loads neither numba, GDAL nor
the catalog, and ``import cas_xr.zonal`` loads no catalog, engine or provider files. The
``.cas`` accessor is registered as soon as xarray is imported (at once if it already is),
so ``import cas_xr.client`` and the command line's ``--help`` do not load xarray.

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

import importlib
from typing import TYPE_CHECKING, Any

import wrapt

from cas_xr._version import __version__

if TYPE_CHECKING:
    from cas_xr import zonal
    from cas_xr.attributes import extract_attributes, list_attribute_sets
    from cas_xr.catalog import discover, get_connector, list_datasets, list_providers
    from cas_xr.config import Settings, configure, get_settings
    from cas_xr.errors import BatchFailureWarning
    from cas_xr.frontends import (
        batch_extract,
        batch_extract_sync,
        check_providers,
        check_providers_sync,
        extract,
        extract_cube,
        extract_raster,
        extract_raster_sync,
        extract_sync,
        extract_table,
        open_dataset,
        show_versions,
    )
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
        HealthCheckResult,
        OutputMode,
        ProviderStatus,
        QualityFlag,
        RasterResampling,
        RasterResult,
        TemporalExtent,
        TemporalType,
        TimeRange,
        Variable,
    )

#: Where the public names live, searched in this order (each module's ``__all__``).
_HOMES = (
    "cas_xr.models", "cas_xr.errors", "cas_xr.config", "cas_xr.catalog", "cas_xr.frontends",
    "cas_xr.attributes",
)  # fmt: skip

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
    "HealthCheckResult",
    "OutputMode",
    "ProviderStatus",
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
    "check_providers",
    "check_providers_sync",
    "configure",
    "discover",
    "extract",
    "extract_attributes",
    "extract_cube",
    "extract_raster",
    "extract_raster_sync",
    "extract_sync",
    "extract_table",
    "get_connector",
    "get_settings",
    "list_attribute_sets",
    "list_datasets",
    "list_providers",
    "open_dataset",
    "show_versions",
    "zonal",
]


# the .cas accessor: registered when xarray is imported (at once if it already is)
wrapt.register_post_import_hook(lambda _: importlib.import_module("cas_xr.accessor"), "xarray")


def __getattr__(name: str) -> Any:
    if name == "zonal":  # the module, callable as the function (cas.zonal(...))
        return importlib.import_module("cas_xr.zonal")
    if name in __all__:
        for home in _HOMES:
            module = importlib.import_module(home)
            if name in module.__all__:
                value = getattr(module, name)
                globals()[name] = value  # later lookups skip __getattr__
                return value
    raise AttributeError(f"module 'cas_xr' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
