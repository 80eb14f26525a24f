"""Front ends: every public entry point, each a view of the engine's one pipeline.

``extract``/``batch_extract`` (and their blocking twins) answer with the CAS response
models, ``extract_cube``/``extract_table`` with the vector data cube or its table,
``extract_raster`` writes pixels, ``open_dataset`` gives a dataset's lazy cube,
``check_providers`` reads each provider's test geometry and says how it is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cas_xr.config._lazy import lazy_names

if TYPE_CHECKING:
    from cas_xr.frontends._cubes import extract_cube, extract_table, extract_table_reporting
    from cas_xr.frontends._health import check_providers, check_providers_sync
    from cas_xr.frontends._open import open_dataset
    from cas_xr.frontends._raster import extract_raster
    from cas_xr.frontends._responses import (
        batch_extract,
        batch_extract_reporting,
        extract,
        extract_together,
    )
    from cas_xr.frontends._sync import (
        batch_extract_sync,
        extract_raster_sync,
        extract_sync,
        run_sync,
    )
    from cas_xr.frontends._versions import show_versions

#: public name -> the module that defines it (loaded on first use: a table does not
#: import raster mode, health checks or the CAS responses)
_HOMES = {
    "batch_extract": "cas_xr.frontends._responses",
    "batch_extract_reporting": "cas_xr.frontends._responses",
    "batch_extract_sync": "cas_xr.frontends._sync",
    "check_providers": "cas_xr.frontends._health",
    "check_providers_sync": "cas_xr.frontends._health",
    "extract": "cas_xr.frontends._responses",
    "extract_cube": "cas_xr.frontends._cubes",
    "extract_raster": "cas_xr.frontends._raster",
    "extract_raster_sync": "cas_xr.frontends._sync",
    "extract_sync": "cas_xr.frontends._sync",
    "extract_table": "cas_xr.frontends._cubes",
    "extract_table_reporting": "cas_xr.frontends._cubes",
    "extract_together": "cas_xr.frontends._responses",
    "open_dataset": "cas_xr.frontends._open",
    "run_sync": "cas_xr.frontends._sync",
    "show_versions": "cas_xr.frontends._versions",
}

__all__ = [
    "batch_extract",
    "batch_extract_reporting",
    "batch_extract_sync",
    "check_providers",
    "check_providers_sync",
    "extract",
    "extract_cube",
    "extract_raster",
    "extract_raster_sync",
    "extract_sync",
    "extract_table",
    "extract_table_reporting",
    "extract_together",
    "open_dataset",
    "run_sync",
    "show_versions",
]


__getattr__, __dir__ = lazy_names(__name__, _HOMES)
