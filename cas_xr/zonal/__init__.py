"""Zonal statistics as xarray reductions: exact cell coverage and weighted statistics.

Pure functions on xarray objects; no I/O and no network. :func:`zonal` is also bound
as the ``.cas.zonal`` accessor.
"""

from cas_xr.zonal._api import STATISTICS, zonal
from cas_xr.zonal._codes import COVERAGE_NOISE

__all__ = ["COVERAGE_NOISE", "STATISTICS", "zonal"]
