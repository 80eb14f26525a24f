"""Seasonal-cycle attributes of a series of composites (e.g. MODIS NDVI), per geometry.

CAMELS describes vegetation by the seasonal cycle of the green vegetation fraction (GVF,
from MODIS NDVI; Addor et al. 2017, Table 4): ``gvf_max``, the maximum monthly mean, and
``gvf_diff``, the difference between the maximum and the minimum monthly mean. The
statistics here do the same to any series, e.g. the area-weighted mean NDVI of a
catchment, without the conversion of NDVI to GVF (so ``ndvi_max`` and ``ndvi_diff`` of the
camels set are not CAMELS' GVF values):

- the **monthly climatology**: each time step goes to the calendar month of its time stamp
  (a composite's stamp is its start), and a month's value is the mean of the valid
  (not NaN) steps of that month over every year of the series, each step weighing the
  same;
- ``seasonal_max``: the largest of the 12 monthly values;
- ``seasonal_range``: the largest minus the smallest of them.

Both are NaN unless every calendar month has at least one valid step: an incomplete
seasonal cycle has no maximum or range that could be compared with another.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["SEASONAL_STATISTICS", "monthly_climatology", "seasonal_value"]

FloatArray = npt.NDArray[np.float64]

#: the statistics of a series's monthly climatology
SEASONAL_STATISTICS = ("seasonal_max", "seasonal_range")


def monthly_climatology(values: npt.ArrayLike, times: npt.ArrayLike) -> FloatArray:
    """The mean of the valid steps of each calendar month, over all years.

    Parameters
    ----------
    values
        The series on the last axis (e.g. ``(geometry, time)``); NaN where a step has no
        value.
    times
        The time stamp of each step.

    Returns
    -------
    numpy.ndarray
        ``values``'s leading shape and 12 months (January first) on the last axis; NaN
        for a month without a valid step.
    """
    import pandas as pd

    from cas_xr.attributes._values import time_mean  # loads the engine: not at import

    series = np.asarray(values, dtype=np.float64)
    months = np.asarray(pd.DatetimeIndex(np.asarray(times)).month) - 1
    if months.size != series.shape[-1]:
        raise ValueError(f"{months.size} time stamps for {series.shape[-1]} steps")
    out = np.full((*series.shape[:-1], 12), np.nan)
    for month in range(12):
        out[..., month] = time_mean(series[..., months == month])
    return out


def seasonal_value(statistic: str, values: npt.ArrayLike, times: npt.ArrayLike) -> FloatArray:
    """``seasonal_max`` or ``seasonal_range`` of series (see the module's description).

    Parameters
    ----------
    statistic
        ``"seasonal_max"`` or ``"seasonal_range"``.
    values
        The series on the last axis, NaN where a step has no value.
    times
        The time stamp of each step.

    Returns
    -------
    numpy.ndarray
        One value per series (``values``'s leading shape); NaN where a calendar month
        has no valid step.
    """
    if statistic not in SEASONAL_STATISTICS:
        raise ValueError(f"unknown seasonal statistic {statistic!r}; known: {SEASONAL_STATISTICS}")
    climatology = monthly_climatology(values, times)
    complete = np.asarray(~np.isnan(climatology).any(axis=-1), dtype=bool)
    filled = np.where(complete[..., None], climatology, 0.0)
    top = filled.max(axis=-1)
    value = top if statistic == "seasonal_max" else top - filled.min(axis=-1)
    return np.asarray(np.where(complete, value, np.nan), dtype=np.float64)
