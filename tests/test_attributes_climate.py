"""Climate indices against hand-computed series (formulas: Addor et al. 2017; naddor/camels).

Each series is designed so that its index is known without the code under test: a
precipitation series with known events, sine cycles of known amplitude and phase, the
FAO-56 worked example of extraterrestrial radiation.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from cas_xr.attributes import _climate as climate
from cas_xr.attributes import extraterrestrial_radiation, hargreaves_pet, index_value

DAYS = pd.date_range("2001-01-01", "2002-12-31", freq="D").values
DOY0 = pd.DatetimeIndex(DAYS).day_of_year.values - 1.0  # R's yday, as CAMELS' code uses
#: four periods of 365.25 days, sampled daily: a sine sums to exactly 0 over them, so the
#: sample mean is the curve's mean and CAMELS' model fits a designed series exactly
T4 = np.arange(1461.0)


def test_extraterrestrial_radiation_fao56_example_8() -> None:
    """FAO-56, Example 8: 20 deg S on 3 September (day 246): Ra = 32.2 MJ m-2 day-1."""
    assert extraterrestrial_radiation(246, -20.0) == pytest.approx(32.2, abs=0.05)
    # polar night and polar day do not fail
    assert extraterrestrial_radiation(355, 80.0) == pytest.approx(0.0, abs=1e-9)
    assert extraterrestrial_radiation(172, 80.0) > 40


def test_hargreaves_by_hand() -> None:
    ra_mm = 0.408 * 32.2  # the FAO-56 example's day and latitude, in mm/day
    expected = 0.0023 * ra_mm * (20.0 + 17.8) * math.sqrt(14.0)  # tmin 13, tmax 27
    got = hargreaves_pet(np.array([13.0]), np.array([27.0]), [246], -20.0)[0]
    assert got == pytest.approx(expected, rel=2e-3)
    # a negative diurnal range (bad data) gives no PET rather than NaN
    assert hargreaves_pet(np.array([5.0]), np.array([4.0]), [100], 45.0)[0] == 0.0


def test_aridity_of_a_designed_series() -> None:
    days = pd.date_range("2001-03-21", periods=4, freq="D").values
    prcp = np.array([0.0, 4.0, 0.0, 4.0])  # 2 mm/day
    tmin, tmax = np.full(4, 10.0), np.full(4, 20.0)
    doy = pd.DatetimeIndex(days).day_of_year.values.astype(float)
    # PET of each day by hand: FAO-56 eqs. 21-25 at the equator
    j = doy
    dr = 1 + 0.033 * np.cos(2 * math.pi * j / 365)
    delta = 0.409 * np.sin(2 * math.pi * j / 365 - 1.39)
    ws = np.arccos(-np.tan(0.0) * np.tan(delta))
    ra = 24 * 60 / math.pi * 0.082 * dr * (np.cos(0.0) * np.cos(delta) * np.sin(ws))
    pet = 0.0023 * 0.408 * ra * (15.0 + 17.8) * math.sqrt(10.0)
    series = {"prcp": prcp, "tmin": tmin, "tmax": tmax}
    assert index_value("pet_mean", series, days, 0.0) == pytest.approx(pet.mean(), rel=1e-9)
    assert index_value("aridity", series, days, 0.0) == pytest.approx(pet.mean() / 2.0, rel=1e-9)
    assert index_value("p_mean", series, days, 0.0) == 2.0


@pytest.mark.parametrize(
    ("s_p", "s_t", "t_sign"),
    [(100.0, 100.0, 1), (280.0, 100.0, 1), (30.0, 200.0, 1), (30.0, 200.0, -1)],
)
def test_seasonality_of_designed_sine_cycles(s_p: float, s_t: float, t_sign: int) -> None:
    """CAMELS' model holds exactly: the index is dP sign(dT) cos(2 pi (sP - sT) / 365.25)."""
    w = 2 * math.pi / 365.25
    d_p, d_t = 0.4, 12.0 * t_sign
    expected = d_p * t_sign * math.cos(w * (s_p - s_t))
    prcp = 3.0 * (1 + d_p * np.sin(w * (T4 - s_p)))
    temp = 8.0 + d_t * np.sin(w * (T4 - s_t))
    assert climate.p_seasonality(prcp, temp, T4) == pytest.approx(expected, abs=1e-12)
    # the same cycles on calendar days (the day of the year restarts each January): close
    prcp = 3.0 * (1 + d_p * np.sin(w * (DOY0 - s_p)))
    temp = 8.0 + d_t * np.sin(w * (DOY0 - s_t))
    series = {"prcp": prcp, "tmin": temp - 5.0, "tmax": temp + 5.0}  # mean temperature = temp
    assert index_value("p_seasonality", series, DAYS, 45.0) == pytest.approx(expected, abs=1e-3)


def test_seasonality_signs() -> None:
    w = 2 * math.pi / 365.25
    temp = 10 + 10 * np.sin(w * (T4 - 110))  # warmest near day 200
    summer = 2 * (1 + 0.5 * np.sin(w * (T4 - 110)))
    winter = 2 * (1 - 0.5 * np.sin(w * (T4 - 110)))
    assert climate.p_seasonality(summer, temp, T4) == pytest.approx(0.5, abs=1e-12)
    assert climate.p_seasonality(winter, temp, T4) == pytest.approx(-0.5, abs=1e-12)
    assert climate.p_seasonality(np.full(T4.size, 2.0), temp, T4) == pytest.approx(0.0, abs=1e-12)


def test_frac_snow_of_a_designed_series() -> None:
    prcp = np.array([10.0, 5.0, 0.0, 20.0, 5.0])
    temp = np.array([-3.0, 0.0, -10.0, 4.0, 1.0])  # days at or below 0: 10 + 5 (+ 0)
    assert climate.frac_snow(prcp, temp) == pytest.approx(15.0 / 40.0)
    assert climate.frac_snow(prcp, temp + 20) == 0.0
    assert math.isnan(climate.frac_snow(np.zeros(5), temp))


def known_events() -> np.ndarray:
    """365 days: 0.5 mm a day, with events of 40 mm on days 10, 100, 200-201 and 300-302."""
    prcp = np.full(365, 0.5)
    for day in (10, 100, 200, 201, 300, 301, 302):
        prcp[day] = 40.0
    return prcp


def test_high_precipitation_frequency_and_duration_of_known_events() -> None:
    prcp = known_events()
    mean = (358 * 0.5 + 7 * 40.0) / 365  # 1.2575 mm/day: threshold 6.29 mm
    assert climate.p_mean(prcp) == pytest.approx(mean)
    assert climate.high_prec_freq(prcp) == pytest.approx(7 / 365 * 365.25)  # days per year
    assert climate.high_prec_dur(prcp) == pytest.approx((1 + 1 + 2 + 3) / 4)
    # a day of exactly 5 x mean counts (>=)
    edge = np.array([0.0, 0.0, 0.0, 0.0, 5.0])  # mean 1, threshold 5
    assert climate.high_prec_freq(edge) == pytest.approx(1 / 5 * 365.25)
    # no event: frequency and duration 0 (as CAMELS)
    assert climate.high_prec_freq(np.full(10, 2.0)) == 0.0
    assert climate.high_prec_dur(np.full(10, 2.0)) == 0.0


def test_low_precipitation_frequency_and_duration() -> None:
    prcp = known_events()
    # dry days: all but the 7 event days; dry spells between events: 10, 89, 99, 98, 62 days
    assert climate.low_prec_freq(prcp) == pytest.approx(358 / 365 * 365.25)
    assert climate.low_prec_dur(prcp) == pytest.approx((10 + 89 + 99 + 98 + 62) / 5)
    assert math.isnan(climate.low_prec_dur(np.full(5, 3.0)))  # no dry day
    assert climate.low_prec_freq(np.full(5, 3.0)) == 0.0


def test_runs() -> None:
    events = np.array([1, 1, 0, 1, 0, 0, 1, 1, 1], dtype=bool)
    np.testing.assert_array_equal(climate.runs(events), [2, 1, 3])
    assert climate.runs(np.zeros(4, dtype=bool)).size == 0


def test_missing_days_are_left_out() -> None:
    prcp = np.array([2.0, np.nan, 4.0])
    assert climate.p_mean(prcp) == 3.0
    assert math.isnan(climate.p_mean(np.full(3, np.nan)))
    assert math.isnan(climate.high_prec_freq(np.full(3, np.nan)))


def test_a_missing_day_ends_a_run_and_counts_among_the_days() -> None:
    """CAMELS' code: ``hp[is.na(hp)] <- F`` and ``sum(hp) / length(hp) * 365.25``."""
    tail = [0.5, 0.5, 60.0, np.nan, 60.0, 60.0, 0.5, 0.5, 0.5, np.nan, 0.5, 0.5]
    prcp = np.concatenate([np.full(30, 0.5), tail])  # 42 days, 40 of them present
    # 37 days of 0.5 mm and 3 of 60 mm: mean 198.5 / 40, threshold 5 x 4.9625 = 24.8 mm
    assert climate.p_mean(prcp) == pytest.approx(198.5 / 40)
    # events: day 32, then 34-35 (the missing day 33 ends the first run): 2 runs
    assert climate.high_prec_freq(prcp) == pytest.approx(3 / 42 * 365.25)
    assert climate.high_prec_dur(prcp) == pytest.approx((1 + 2) / 2)
    # dry days: 0-31, 36-38, then 40-41 after the missing day 39
    assert climate.low_prec_freq(prcp) == pytest.approx(37 / 42 * 365.25)
    assert climate.low_prec_dur(prcp) == pytest.approx((32 + 3 + 2) / 3)
