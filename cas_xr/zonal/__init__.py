"""Zonal statistics as xarray reductions: exact cell coverage and weighted statistics.

Pure functions on xarray objects; no I/O and no network. :func:`zonal` is also bound
as the ``.cas.zonal`` accessor, :func:`cells` (every covered cell, as a long table) as
``.cas.cells``, :func:`point_query` (values at points, bilinear or nearest) as
``.cas.point_query``. The module itself is callable as :func:`zonal`, so that
``cas_xr.zonal(...)`` works as well as ``cas_xr.zonal.zonal(...)``.
"""

import inspect
import sys
import types
from typing import Any

from cas_xr.zonal._api import STATISTICS, zonal
from cas_xr.zonal._cells import cells
from cas_xr.zonal._codes import COVERAGE_NOISE
from cas_xr.zonal._points import point_query

__all__ = ["COVERAGE_NOISE", "STATISTICS", "cells", "point_query", "zonal"]


class _CallableModule(types.ModuleType):
    """The ``cas_xr.zonal`` module, callable as :func:`zonal`."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return zonal(*args, **kwargs)


__signature__ = inspect.signature(zonal)
sys.modules[__name__].__class__ = _CallableModule
