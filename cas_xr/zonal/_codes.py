"""Statistic, weight-mode, option and geometry-kind codes shared by the API and the kernel.

Kept free of numba so that importing :mod:`cas_xr` stays light; the kernel is compiled
on first use.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = [
    "CELL_STATISTICS",
    "COUNT",
    "COVERAGE_NOISE",
    "CV",
    "KERNEL_KINDS",
    "KIND_EMPTY",
    "KIND_LINE",
    "KIND_MULTIPOINT",
    "KIND_POINT",
    "KIND_POLYGON",
    "MAJORITY",
    "MAX",
    "MAX_X",
    "MAX_Y",
    "MEAN",
    "MIN",
    "MINORITY",
    "MIN_X",
    "MIN_Y",
    "MODE_ALL_TOUCHED",
    "MODE_CENTER",
    "MODE_EXACT",
    "MORE_STATISTICS",
    "NAN_COUNT",
    "NODATA_COUNT",
    "N_OPTIONS",
    "OPT_DEFAULT_VALUE",
    "OPT_DEFAULT_WEIGHT",
    "OPT_HAS_DEFAULT_VALUE",
    "OPT_HAS_DEFAULT_WEIGHT",
    "OPT_MIN_COVER",
    "OPT_UNIT_COVER",
    "POOLED_STATISTICS",
    "QUANTILE",
    "RANGE",
    "STD",
    "SUM",
    "UNIQUE",
    "VARIANCE",
    "WEIGHTED_MEAN",
    "WEIGHTED_STATISTICS",
    "WEIGHTED_STD",
    "WEIGHTED_SUM",
    "WEIGHTED_VARIANCE",
    "empty_stats",
    "options",
]

COUNT, SUM, MEAN, MIN, MAX, STD, QUANTILE, MAJORITY, MINORITY, UNIQUE = range(10)
VARIANCE, CV, RANGE, NODATA_COUNT, NAN_COUNT = range(10, 15)
MIN_X, MIN_Y, MAX_X, MAX_Y = range(15, 19)
WEIGHTED_MEAN, WEIGHTED_SUM, WEIGHTED_STD, WEIGHTED_VARIANCE = range(19, 23)
MODE_EXACT, MODE_CENTER, MODE_ALL_TOUCHED = range(3)
KIND_POLYGON, KIND_POINT, KIND_EMPTY, KIND_LINE, KIND_MULTIPOINT = range(5)
#: The kinds whose cells the kernel's coverage finds (points are gathered on their own).
KERNEL_KINDS = (KIND_POLYGON, KIND_LINE, KIND_MULTIPOINT)

#: Statistics that need the distinct values and their pooled weights.
POOLED_STATISTICS = (QUANTILE, MAJORITY, MINORITY, UNIQUE)
#: Statistics that need the centre coordinates of each cell.
CELL_STATISTICS = (MIN_X, MIN_Y, MAX_X, MAX_Y)
#: Statistics that need a weights raster.
WEIGHTED_STATISTICS = (WEIGHTED_MEAN, WEIGHTED_SUM, WEIGHTED_STD, WEIGHTED_VARIANCE)
#: Statistics the kernel leaves to a function compiled only when one is asked (with the
#: distribution weighted by a weights raster): a first run need not compile them.
MORE_STATISTICS = (QUANTILE, *CELL_STATISTICS, *WEIGHTED_STATISTICS)

#: Positions in the kernel's ``options`` array (see :func:`options`).
OPT_MIN_COVER, OPT_UNIT_COVER = 0, 1
OPT_HAS_DEFAULT_VALUE, OPT_DEFAULT_VALUE = 2, 3
OPT_HAS_DEFAULT_WEIGHT, OPT_DEFAULT_WEIGHT = 4, 5
N_OPTIONS = 6

#: Cells covered by less than this fraction are dropped: the floating-point noise of
#: mapping coordinates to cell units (up to ~2e-10 of a cell where a polygon edge runs
#: along a cell edge far from the grid origin), so that pixel_count, min, max, unique and
#: the weighted median do not depend on it.
COVERAGE_NOISE = 1e-9


def empty_stats(codes: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
    """Statistics without valid cells: counts and sums are 0 (as in exactextract), others NaN."""
    zero = (COUNT, SUM, NODATA_COUNT, NAN_COUNT, WEIGHTED_SUM)
    return np.where(np.isin(codes, zero), 0.0, np.nan)


def options(
    *,
    min_coverage_frac: float = 0.0,
    unit_cover: bool = False,
    default_value: float | None = None,
    default_weight: float | None = None,
) -> npt.NDArray[np.float64]:
    """The kernel's per-call options as one array (indexed by the ``OPT_*`` positions)."""
    out = np.zeros(N_OPTIONS)
    out[OPT_MIN_COVER] = min_coverage_frac
    out[OPT_UNIT_COVER] = float(unit_cover)
    if default_value is not None:
        out[OPT_HAS_DEFAULT_VALUE], out[OPT_DEFAULT_VALUE] = 1.0, default_value
    if default_weight is not None:
        out[OPT_HAS_DEFAULT_WEIGHT], out[OPT_DEFAULT_WEIGHT] = 1.0, default_weight
    return out
