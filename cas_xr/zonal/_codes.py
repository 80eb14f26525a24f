"""Statistic, weight-mode and geometry-kind codes shared by the API and the compiled kernel.

Kept free of numba so that importing :mod:`cas_xr` stays light; the kernel is compiled
on first use.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = [
    "COUNT",
    "COVERAGE_NOISE",
    "KERNEL_KINDS",
    "KIND_EMPTY",
    "KIND_LINE",
    "KIND_MULTIPOINT",
    "KIND_POINT",
    "KIND_POLYGON",
    "MAJORITY",
    "MAX",
    "MEAN",
    "MIN",
    "MINORITY",
    "MODE_ALL_TOUCHED",
    "MODE_CENTER",
    "MODE_EXACT",
    "QUANTILE",
    "STD",
    "SUM",
    "UNIQUE",
    "empty_stats",
]

COUNT, SUM, MEAN, MIN, MAX, STD, QUANTILE, MAJORITY, MINORITY, UNIQUE = range(10)
MODE_EXACT, MODE_CENTER, MODE_ALL_TOUCHED = range(3)
KIND_POLYGON, KIND_POINT, KIND_EMPTY, KIND_LINE, KIND_MULTIPOINT = range(5)
#: The kinds whose cells the kernel's coverage finds (points are gathered on their own).
KERNEL_KINDS = (KIND_POLYGON, KIND_LINE, KIND_MULTIPOINT)

#: Cells covered by less than this fraction are dropped: the floating-point noise of
#: mapping coordinates to cell units (up to ~2e-10 of a cell where a polygon edge runs
#: along a cell edge far from the grid origin), so that pixel_count, min, max, unique and
#: the weighted median do not depend on it.
COVERAGE_NOISE = 1e-9


def empty_stats(codes: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
    """Statistics without valid cells: count and sum are 0 (as in exactextract), others NaN."""
    return np.where(np.isin(codes, (COUNT, SUM)), 0.0, np.nan)
