"""Seasonal-cycle statistics (``seasonal_max``, ``seasonal_range``): by hand on designed
series, through the whole pipeline against the daily table, and the same numbers with one
chunk and with many."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import yaml

import cas_xr as cas
from cas_xr.attributes import get_attribute_set
from cas_xr.attributes._seasonal import monthly_climatology, seasonal_value
from cas_xr.errors import ConfigurationError, InvalidArgumentError
from cas_xr.sample import sample_catchments_path

#: 8-day steps over two years (46 a year), as MODIS Terra and Aqua composites interleave
STEPS = pd.date_range("2020-01-01", "2021-12-31", freq="8D")


@pytest.fixture(autouse=True)
def _quiet() -> None:
    cas.configure(progress=False)


def test_the_climatology_of_a_designed_series() -> None:
    """Every step of month m holds 100 m: the climatology is 100, 200, ..., 1200."""
    values = 100.0 * STEPS.month.to_numpy()
    np.testing.assert_array_equal(monthly_climatology(values, STEPS), 100.0 * np.arange(1, 13))
    assert seasonal_value("seasonal_max", values, STEPS) == 1200.0
    assert seasonal_value("seasonal_range", values, STEPS) == 1100.0


def test_a_month_is_the_mean_of_its_steps_over_the_years() -> None:
    """January: 4 steps of 0.2 in 2020 and 4 of 0.4 in 2021 -> 0.3; other months 0.5;
    NaN steps are left out (not zeros)."""
    values = np.full(STEPS.size, 0.5)
    january = STEPS.month == 1
    values[january & (STEPS.year == 2020)] = 0.2
    values[january & (STEPS.year == 2021)] = 0.4
    values[STEPS.month == 7] = np.where(STEPS[STEPS.month == 7].day < 10, np.nan, 0.9)
    assert (january & (STEPS.year == 2020)).sum() == 4 == (january & (STEPS.year == 2021)).sum()
    climatology = monthly_climatology(values, STEPS)
    assert climatology[0] == pytest.approx(0.3, rel=1e-12)
    assert climatology[6] == pytest.approx(0.9, rel=1e-12)  # July's NaN steps left out
    assert seasonal_value("seasonal_max", values, STEPS) == pytest.approx(0.9, rel=1e-12)
    assert seasonal_value("seasonal_range", values, STEPS) == pytest.approx(0.6, rel=1e-12)


def test_an_incomplete_cycle_has_no_value_and_series_are_independent() -> None:
    """Two series at once: the second has no valid step in March, so NaN; the first is
    unaffected."""
    values = np.vstack([np.sin(STEPS.day_of_year / 366 * np.pi), np.ones(STEPS.size)])
    values[1, STEPS.month == 3] = np.nan
    top = seasonal_value("seasonal_max", values, STEPS)
    span = seasonal_value("seasonal_range", values, STEPS)
    assert np.isnan(top[1]) and np.isnan(span[1])
    climatology = monthly_climatology(values[0], STEPS)
    assert top[0] == pytest.approx(climatology.max(), rel=1e-12)
    assert span[0] == pytest.approx(climatology.max() - climatology.min(), rel=1e-12)
    assert 0.9 < top[0] < 1.0  # the sine's top, damped by the mean over each month


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="unknown seasonal statistic"):
        seasonal_value("seasonal_min", np.ones(3), STEPS[:3])
    with pytest.raises(ValueError, match="2 time stamps for 3 steps"):
        monthly_climatology(np.ones(3), STEPS[:2])


@pytest.mark.parametrize(
    ("attributes", "message"),
    [
        ("[{name: a, statistic: seasonal_max}]", "needs a 'dataset'"),
        (
            "[{name: a, statistic: seasonal_max, dataset: ['sample:prcp', 'sample:tmin'], "
            "transform: {weights: [1, 1]}}]",
            "takes one dataset",
        ),
        (
            "[{name: a, statistic: seasonal_range, dataset: 'sample:prcp', units: x, "
            "transform: {offset: 1}}]",
            "takes no offset",
        ),
        (
            "[{name: a, statistic: seasonal_max, dataset: 'sample:prcp', transform: {scale: 2}}]",
            "give 'units'",
        ),
        (
            "[{name: a, statistic: seasonal_max, dataset: 'sample:prcp', units: x, "
            "transform: {scale: -1}}]",
            "needs a positive transform.scale",
        ),
    ],
)
def test_invalid_seasonal_attributes_say_what_is_wrong(attributes: str, message: str) -> None:
    data = {"name": "bad", "attributes": yaml.safe_load(attributes)}
    with pytest.raises(ConfigurationError, match=message):
        get_attribute_set(data)


SEASONAL = {
    "name": "seasonal",
    "time_range": {"start": "2022-01-01T00:00:00Z", "end": "2022-12-31T23:59:59Z"},
    "attributes": [
        {"name": "p_month_max", "dataset": "sample:prcp", "statistic": "seasonal_max"},
        {"name": "p_month_range", "dataset": "sample:prcp", "statistic": "seasonal_range"},
        {"name": "t_month_range", "dataset": "sample:tmax", "statistic": "seasonal_range",
         "transform": {"scale": 1.8}, "units": "degF"},
    ],
}  # fmt: skip


@pytest.fixture(scope="module")
def catchments() -> gpd.GeoDataFrame:
    frame = gpd.read_file(sample_catchments_path()).set_index("id")
    return frame.loc[["K01", "K03", "U01"]]


def test_through_the_pipeline_against_the_daily_table(catchments: gpd.GeoDataFrame) -> None:
    """The same numbers as monthly means of extract_table's area-weighted daily means."""
    table = cas.extract_attributes(catchments, SEASONAL)
    cas.configure(area_weighted=True)  # as extract_attributes reduces geographic grids
    try:
        daily = cas.extract_table(
            catchments, ["sample:prcp", "sample:tmax"], time_range=("2022-01-01", "2022-12-31")
        )
    finally:
        cas.configure(area_weighted=False)
    for gid in catchments.index:
        days = daily.xs(gid, level="id")
        months = pd.DatetimeIndex(days.index).month
        prcp = days["sample:prcp_mean"].groupby(months).mean()
        tmax = days["sample:tmax_mean"].groupby(months).mean()
        row = table.loc[gid]
        assert row["p_month_max"] == pytest.approx(prcp.max(), rel=1e-9)
        assert row["p_month_range"] == pytest.approx(prcp.max() - prcp.min(), rel=1e-9)
        assert row["t_month_range"] == pytest.approx(1.8 * (tmax.max() - tmax.min()), rel=1e-9)
        assert str(row["p_month_max_quality"]) == "good"
    assert table.attrs["cas_xr"]["units"] == {
        "p_month_max": "mm/day", "p_month_range": "mm/day", "t_month_range": "degF"
    }  # fmt: skip


def test_the_same_numbers_with_one_chunk_and_with_many(catchments: gpd.GeoDataFrame) -> None:
    """The daily grid (66 x 316 cells) in one chunk, then in 2 x 5 chunks of 64 cells."""
    one = cas.extract_attributes(catchments, SEASONAL)
    cas.configure(chunk_size=64)
    try:
        many = cas.extract_attributes(catchments, SEASONAL)
    finally:
        cas.configure(chunk_size=2048)
    for name in ("p_month_max", "p_month_range", "t_month_range"):
        np.testing.assert_allclose(many[name], one[name], rtol=1e-10, err_msg=name)


def test_a_static_dataset_has_no_seasonal_cycle(catchments: gpd.GeoDataFrame) -> None:
    aset = {
        "name": "static",
        "attributes": [{"name": "a", "dataset": "sample:elevation", "statistic": "seasonal_max"}],
    }
    with pytest.raises(InvalidArgumentError, match="not temporal; seasonal_max needs"):
        cas.extract_attributes(catchments, aset)
