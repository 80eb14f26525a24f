"""Climate indices of a Daymet-like series: 365-day years that leave out December 31 of
each leap year (Planetary Computer daymet-daily-na), on the standard calendar.

The left-out day is a missing day (NaN), as CAMELS' code treats one; any other gap is an
error. Values are checked against hand-computed numbers, through a user's provider of a
NetCDF file with such a time axis and through ``extract_attributes``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rioxarray  # noqa: F401  (registers .rio)
import shapely
import xarray as xr

import cas_xr as cas
from cas_xr.attributes import INDICES, hargreaves_pet
from cas_xr.attributes._daily import daily_axis
from cas_xr.errors import InvalidArgumentError
from cas_xr.models import TimeRange


def daymet_days(start: str, end: str) -> pd.DatetimeIndex:
    """Daymet's steps: every day at 12:00 but December 31 of leap years."""
    days = pd.date_range(f"{start}T12:00", f"{end}T12:00", freq="D")
    return days[~((days.month == 12) & (days.day == 31) & days.is_leap_year)]


IDS = ["dm:prcp"]


def test_the_camels_period_of_daymet_is_accepted_with_its_five_missing_days() -> None:
    """1989-10-01 to 2009-09-30: 7305 days, Daymet has 7300 (no Dec 31 of 5 leap years)."""
    steps = daymet_days("1989-10-01", "2009-09-30")
    assert steps.size == 7300
    axis = daily_axis(steps.values, "p_mean", IDS)
    assert axis.days.size == 7305
    assert axis.missing == [f"{y}-12-31" for y in (1992, 1996, 2000, 2004, 2008)]
    assert np.datetime64("2004-02-29T12:00") in axis.days[axis.positions]  # kept by Daymet
    filled = axis.fill(np.arange(7300.0)[None, :])
    assert filled.shape == (1, 7305)
    day = {str(d)[:10]: k for k, d in enumerate(axis.days)}
    assert filled[0, day["1992-12-30"]] == filled[0, day["1993-01-01"]] - 1  # consecutive steps
    assert np.isnan(filled[0, day["1992-12-31"]])
    assert np.isnan(filled).sum() == 5


@pytest.mark.parametrize(
    ("drop", "first"),
    [("2004-03-05", "2004-03-05"), ("2003-12-31", "2003-12-31"), ("2004-12-30", "2004-12-30")],
)
def test_any_other_gap_is_refused(drop: str, first: str) -> None:
    steps = daymet_days("2003-07-01", "2005-06-30")
    steps = steps[steps.normalize() != pd.Timestamp(drop)]
    with pytest.raises(InvalidArgumentError, match=f"continuous daily series.*the first {first}"):
        daily_axis(steps.values, "p_mean", IDS)


def test_steps_that_are_not_days_are_refused() -> None:
    steps = pd.date_range("2004-01-01", periods=10, freq="12h").values
    with pytest.raises(InvalidArgumentError, match="0.5 to 0.5 days apart: not one a day"):
        daily_axis(steps, "p_mean", IDS)
    with pytest.raises(InvalidArgumentError, match="give 1 steps"):
        daily_axis(steps[:1], "p_mean", IDS)


def test_a_leap_years_last_day_at_the_end_of_the_time_range_is_a_missing_day() -> None:
    steps = daymet_days("2004-12-01", "2004-12-31")  # ends on December 30
    to_the_end = TimeRange(start="2004-12-01T00:00:00Z", end="2004-12-31T23:59:59Z")
    axis = daily_axis(steps.values, "p_mean", IDS, window=to_the_end)
    assert axis.days.size == 31 and axis.missing == ["2004-12-31"]
    before_noon = TimeRange(start="2004-12-01T00:00:00Z", end="2004-12-31T06:00:00Z")
    assert daily_axis(steps.values, "p_mean", IDS, window=before_noon).days.size == 30
    steps = daymet_days("2005-01-01", "2005-01-31")  # from the year after: Dec 31 before
    from_before = TimeRange(start="2004-12-31T00:00:00Z", end="2005-01-31T23:59:59Z")
    axis = daily_axis(steps.values, "p_mean", IDS, window=from_before)
    assert axis.days.size == 32 and axis.missing == ["2004-12-31"]
    assert axis.positions[0] == 1


# -- through extract_attributes ------------------------------------------------------------

#: 2 x 2 cells of 0.05 degrees; the catchment is exactly their box
LATS, LONS = np.array([39.075, 39.025]), np.array([-96.575, -96.525])
BOX = shapely.box(-96.60, 39.00, -96.50, 39.10)
PROVIDER = """\
slug: dm
protocol: local
endpoint: .
datasets:
{datasets}
"""
DATASET = """\
  - name: {name}
    path: daily.nc
    array: {name}
    temporal: {{start: 2004-12-01T00:00:00Z, end: 2005-01-31T23:59:59Z, temporal_type: daily}}
    variables:
      - {{name: {name}, units: {units}, nodata_value: -9999.0}}
"""


def designed_weather(steps: pd.DatetimeIndex) -> dict[str, np.ndarray]:
    """December 2004 and January 2005 as Daymet has them (61 days, no 2004-12-31).

    0.5 mm a day but 40 mm on December 10-11, 30 and January 1, and 3 mm on December 20;
    December 1-15 freeze (mean temperature -2 degC), then 6 degC.
    """
    date = steps.strftime("%m-%d")
    prcp = np.full(steps.size, 0.5)
    prcp[np.isin(date, ["12-10", "12-11", "12-30", "01-01"])] = 40.0
    prcp[date == "12-20"] = 3.0
    cold = (steps.month == 12) & (steps.day <= 15)
    tmin = np.where(cold, -6.0, 2.0)
    tmax = np.where(cold, 2.0, 10.0)
    return {"prcp": prcp, "tmin": tmin, "tmax": tmax}


@pytest.fixture
def daymet_like(tmp_path: Path) -> Iterator[dict[str, np.ndarray]]:
    steps = daymet_days("2004-12-01", "2005-01-31")
    assert steps.size == 61
    weather = designed_weather(steps)
    cells = np.ones((1, LATS.size, LONS.size))
    ds = xr.Dataset(
        {k: (("time", "lat", "lon"), v[:, None, None] * cells) for k, v in weather.items()},
        coords={"time": steps.values, "lat": LATS, "lon": LONS},
    ).rio.write_crs("EPSG:4326")
    ds.to_netcdf(tmp_path / "daily.nc", engine="h5netcdf")
    units = {"prcp": "mm/day", "tmin": "degC", "tmax": "degC"}
    datasets = "".join(DATASET.format(name=k, units=u) for k, u in units.items())
    (tmp_path / "dm.yaml").write_text(PROVIDER.format(datasets=datasets), encoding="utf-8")
    cas.configure(provider_files=[tmp_path / "dm.yaml"], progress=False)
    try:
        yield {**weather, "days": steps.values}
    finally:
        cas.configure(provider_files=[])


def indices_set(end: str) -> dict[str, object]:
    return {
        "name": "daymet-like",
        "time_range": {"start": "2004-12-01T00:00:00Z", "end": end},
        "inputs": {"prcp": "dm:prcp", "tmin": "dm:tmin", "tmax": "dm:tmax"},
        "attributes": [{"name": name, "statistic": name} for name in INDICES],
    }


def test_indices_of_a_daymet_like_series_by_hand(daymet_like: dict[str, np.ndarray]) -> None:
    frame = gpd.GeoDataFrame(geometry=[BOX], crs=4326)
    table = cas.extract_attributes(frame, indices_set("2005-01-31T23:59:59Z"))
    row = table.iloc[0]
    # 61 days present of 62: 56 x 0.5 + 4 x 40 + 3 = 191 mm
    assert row["p_mean"] == pytest.approx(191 / 61, rel=1e-9)
    # events (>= 5 x 3.13 mm): Dec 10-11, Dec 30 and Jan 1, which the missing Dec 31
    # keeps apart (CAMELS' code: a missing day is no event); per year of the 62 days
    assert row["high_prec_freq"] == pytest.approx(4 / 62 * 365.25, rel=1e-9)
    assert row["high_prec_dur"] == pytest.approx((2 + 1 + 1) / 3, rel=1e-9)
    # dry days: Dec 1-9, 12-19, 21-29 and Jan 2-31
    assert row["low_prec_freq"] == pytest.approx(56 / 62 * 365.25, rel=1e-9)
    assert row["low_prec_dur"] == pytest.approx((9 + 8 + 9 + 30) / 4, rel=1e-9)
    # snow: Dec 1-15, 9 x 0.5 + 2 x 40 + 4 x 0.5 = 86.5 mm of 191
    assert row["frac_snow"] == pytest.approx(86.5 / 191, rel=1e-9)
    # PET on the 61 days present, each at its own day of the year (Jan 1 is day 1)
    doy = pd.DatetimeIndex(daymet_like["days"]).day_of_year.values
    assert doy[-31] == 1 and doy[-32] == 365  # 2004-12-30 is day 365 of a leap year
    lat = BOX.centroid.y
    pet = hargreaves_pet(daymet_like["tmin"], daymet_like["tmax"], doy, lat).mean()
    assert row["pet_mean"] == pytest.approx(pet, rel=1e-9)
    assert row["aridity"] == pytest.approx(pet / (191 / 61), rel=1e-9)
    assert math.isfinite(row["p_seasonality"])
    assert (table.filter(like="_quality").astype(str) == "good").all(axis=None)
    described = table.attrs["cas_xr"]["attributes"]
    assert described["high_prec_freq"]["missing_days"] == ["2004-12-31"]


def test_a_time_range_ending_on_a_leap_years_last_day(
    daymet_like: dict[str, np.ndarray],
) -> None:
    """December 2004: 30 days of data, 31 days in the period."""
    frame = gpd.GeoDataFrame(geometry=[BOX], crs=4326)
    table = cas.extract_attributes(frame, indices_set("2004-12-31T23:59:59Z"))
    row = table.iloc[0]
    assert row["p_mean"] == pytest.approx((26 * 0.5 + 3 * 40 + 3) / 30, rel=1e-9)
    assert row["high_prec_freq"] == pytest.approx(3 / 31 * 365.25, rel=1e-9)
    assert row["high_prec_dur"] == pytest.approx((2 + 1) / 2, rel=1e-9)
    assert table.attrs["cas_xr"]["attributes"]["p_mean"]["missing_days"] == ["2004-12-31"]


def test_a_real_gap_in_a_users_series_is_still_an_error(
    daymet_like: dict[str, np.ndarray], tmp_path: Path
) -> None:
    with xr.open_dataset(tmp_path / "daily.nc", engine="h5netcdf") as ds:
        gappy = ds.drop_sel(time=np.datetime64("2005-01-15T12:00")).load()
    gappy.to_netcdf(tmp_path / "daily.nc", engine="h5netcdf")
    frame = gpd.GeoDataFrame(geometry=[BOX], crs=4326)
    with pytest.raises(InvalidArgumentError, match=r"60 steps .* the first 2005-01-15"):
        cas.extract_attributes(frame, indices_set("2005-01-31T23:59:59Z"))
