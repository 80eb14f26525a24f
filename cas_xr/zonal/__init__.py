"""Zonal statistics: the cells under a geometry, their weights, and weighted statistics.

Pure functions on arrays; no I/O and no network.
"""

from cas_xr.zonal._cells import CellWeights, WeightMode, cells_under
from cas_xr.zonal._stats import class_fractions, summarize, weighted_quantile

__all__ = [
    "CellWeights",
    "WeightMode",
    "cells_under",
    "class_fractions",
    "summarize",
    "weighted_quantile",
]
