"""The days of a daily series, for climate indices: continuous, except Daymet's leap day.

Climate indices need one value per calendar day. Daymet (Planetary Computer
``daymet-daily-na``) publishes 365-day years on the standard calendar: it keeps February
29 and leaves out December 31 of each leap year. :func:`daily_axis` accepts exactly that
gap and puts the left-out day back as a missing day (NaN), so that the indices treat it as
the code that computed CAMELS treats a missing day (``clim/clim_indices.R`` of
``naddor/camels``, ``compute_extreme_precip_indices``: ``hp[is.na(hp)] <- F``): it is left
out of means and sums, is neither a high- nor a low-precipitation day (so it ends a run of
such days), and counts among the days of the period a frequency is taken over. Any other
gap is an error: a series with gaps cannot give those numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from cas_xr.errors import InvalidArgumentError
from cas_xr.models import TimeRange

__all__ = ["DailyAxis", "daily_axis"]

_DAY = np.timedelta64(1, "D")


@dataclass(frozen=True)
class DailyAxis:
    """Every day of a daily series's period, and where the series's steps lie among them.

    Attributes
    ----------
    days
        One stamp per calendar day (at the steps' time of day), first to last.
    positions
        The position in ``days`` of each step of the series.
    """

    days: npt.NDArray[np.datetime64]
    positions: npt.NDArray[np.intp]

    @property
    def missing(self) -> list[str]:
        """The days the series leaves out (each a December 31 of a leap year), ISO dates."""
        present = np.zeros(self.days.size, dtype=bool)
        present[self.positions] = True
        return [str(day)[:10] for day in self.days[~present]]

    def fill(self, values: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """``values`` (the series's steps on the last axis) with NaN on the missing days."""
        steps = np.asarray(values, dtype=np.float64)
        out = np.full((*steps.shape[:-1], self.days.size), np.nan)
        out[..., self.positions] = steps
        return out


def _leap_dec31(days: npt.NDArray[np.datetime64]) -> npt.NDArray[np.bool_]:
    import pandas as pd

    stamps = pd.DatetimeIndex(days)
    return np.asarray((stamps.month == 12) & (stamps.day == 31) & stamps.is_leap_year, dtype=bool)


def _naive(stamp: Any) -> np.datetime64:
    """A time range's bound as a UTC stamp without time zone (as the cubes' times)."""
    import pandas as pd

    value = pd.Timestamp(stamp)
    value = value.tz_convert("UTC").tz_localize(None) if value.tzinfo else value
    return np.datetime64(value.to_datetime64(), "ns")


def daily_axis(
    times: Any, name: str, ids: Sequence[str], *, window: TimeRange | None = None
) -> DailyAxis:
    """The days of a daily series, refusing any gap but a leap year's December 31.

    Parameters
    ----------
    times
        The series's time steps, increasing.
    name
        The attribute, for the error message.
    ids
        The datasets the series comes from, for the error message.
    window
        The time range the series was selected with: a leap year's December 31 just
        before the first step or after the last (at the steps' time of day) that lies
        in it is a missing day of the period too.

    Raises
    ------
    InvalidArgumentError
        For fewer than 2 steps, steps that are not whole days apart, or a missing day
        other than December 31 of a leap year.
    """
    stamps = np.asarray(times, dtype="datetime64[ns]")
    steps = np.diff(stamps)
    head = f"attribute {name!r}: climate indices need a continuous daily series; {', '.join(ids)}"
    if stamps.size < 2:
        raise InvalidArgumentError(f"{head} give {stamps.size} steps in the time range")
    if np.any(steps <= np.timedelta64(0, "ns")) or np.any(steps % _DAY != np.timedelta64(0)):
        raise InvalidArgumentError(
            f"{head} give steps {steps.min() / _DAY:g} to {steps.max() / _DAY:g} days apart: "
            "not one a day"
        )
    positions = np.asarray((stamps - stamps[0]) // _DAY, dtype=np.intp)
    days = stamps[0] + np.arange(positions[-1] + 1) * _DAY
    present = np.zeros(days.size, dtype=bool)
    present[positions] = True
    gaps = days[~present & ~_leap_dec31(days)]
    if gaps.size:
        raise InvalidArgumentError(
            f"{head} give {stamps.size} steps in the time range with gaps up to "
            f"{steps.max() / _DAY:g} days ({gaps.size} missing days, the first "
            f"{str(gaps[0])[:10]}); only December 31 of a leap year may be missing (Daymet's "
            "365-day years), and it counts as a missing day. Choose a time range without gaps"
        )
    if window is not None:
        before, after = stamps[0] - _DAY, stamps[-1] + _DAY
        if _leap_dec31(np.array([before]))[0] and before >= _naive(window.start):
            days = np.concatenate([[before], days])
            positions = positions + 1
        if _leap_dec31(np.array([after]))[0] and after <= _naive(window.end):
            days = np.concatenate([days, [after]])
    return DailyAxis(days=days, positions=positions)
