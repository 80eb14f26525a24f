"""Attribute sets: the shipped sets validate offline, users add theirs, and the sample set
computes on the sample catchments, checked against values computed another way."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyarrow.parquet as pq
import pytest
import xarray as xr

import cas_xr as cas
from cas_xr import cli
from cas_xr.attributes import (
    INDICES,
    INPUT_UNITS,
    AttributeSet,
    UnknownAttributeSetError,
    get_attribute_set,
    list_attribute_sets,
)
from cas_xr.catalog import resolve
from cas_xr.errors import ConfigurationError, InvalidArgumentError, UnknownDatasetError
from cas_xr.sample import sample_catchments_path, sample_data_dir

#: the datasets the other half of issue 16 defines (Planetary Computer daymet-daily-na)
DAYMET = ("daymet:prcp", "daymet:tmin", "daymet:tmax")


@pytest.fixture(autouse=True)
def _quiet() -> None:
    cas.configure(progress=False)


@pytest.fixture(scope="module")
def catchments() -> gpd.GeoDataFrame:
    return gpd.read_file(sample_catchments_path()).set_index("id")


@pytest.fixture(scope="module")
def sample_table(catchments: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    cas.configure(progress=False)
    with pytest.warns(cas.errors.QualityWarning, match="partial"):  # K06 is half outside
        return cas.extract_attributes(catchments, "sample")


def test_the_shipped_sets_are_listed() -> None:
    assert {"camels", "sample"} <= set(list_attribute_sets())
    assert {a.statistic for a in get_attribute_set("camels").attributes} >= set(INDICES)


CAMELS_NAMES = [
    "p_mean", "pet_mean", "aridity", "p_seasonality", "frac_snow", "high_prec_freq",
    "high_prec_dur", "low_prec_freq", "low_prec_dur", "elev_mean", "slope_mean", "area",
    "frac_forest", "dom_land_cover", "dom_land_cover_frac", "ndvi_max", "ndvi_diff", "sand_frac",
    "silt_frac", "clay_frac",
]  # fmt: skip


def test_the_camels_set_has_camels_names_and_units() -> None:
    aset = get_attribute_set("camels")
    assert [a.name for a in aset.attributes] == CAMELS_NAMES
    assert aset.time_range is not None
    assert (aset.time_range.start.date().isoformat(), aset.time_range.end.date().isoformat()) == (
        "1989-10-01",
        "2009-09-30",
    )
    units = {a.name: a.units for a in aset.attributes if a.units}
    assert units == {
        "ndvi_max": "1", "ndvi_diff": "1", "sand_frac": "%", "silt_frac": "%", "clay_frac": "%"
    }  # fmt: skip


def camels_ids(*, daymet: bool) -> list[str]:
    ids = get_attribute_set("camels").dataset_ids()
    return [i for i in ids if i.startswith("daymet:") == daymet]


@pytest.mark.parametrize("dataset_id", camels_ids(daymet=False))
def test_every_camels_dataset_id_resolves_in_the_catalog(dataset_id: str) -> None:
    connector, name = resolve(dataset_id)
    assert connector.dataset(name).variables[0].units


@pytest.mark.skipif(
    "daymet" not in cas.list_providers(),
    reason="the daymet provider (daymet:prcp, daymet:tmin, daymet:tmax) comes with the other "
    "half of issue 16; this test runs once it is merged",
)
@pytest.mark.parametrize("dataset_id", DAYMET)
def test_the_camels_daily_inputs_resolve_once_daymet_exists(dataset_id: str) -> None:
    connector, name = resolve(dataset_id)
    definition = connector.definition_of(name)
    assert definition.temporal.temporal_type is cas.TemporalType.DAILY
    role = dataset_id.split(":")[1]
    assert connector.dataset(name).variables[0].units in INPUT_UNITS[role]


def test_the_camels_set_asks_for_what_its_datasets_have() -> None:
    aset = get_attribute_set("camels")
    assert set(camels_ids(daymet=True)) == set(DAYMET)
    land = resolve("esa_worldcover:land_cover")[0].dataset("land_cover").variables[0]
    forest = next(a for a in aset.attributes if a.name == "frac_forest")
    assert set(forest.classes or []) <= set((land.class_names or {}).values())
    slope = next(a for a in aset.attributes if a.name == "slope_mean")
    assert resolve(str(slope.dataset))[0].dataset("slope_m_per_km").variables[0].units == "m/km"
    for name in ("sand_frac", "silt_frac", "clay_frac"):
        attribute = next(a for a in aset.attributes if a.name == name)
        for dataset_id in attribute.datasets:
            assert resolve(dataset_id)[0].dataset(dataset_id.split(":")[1]).variables[0].units == (
                "g/kg"
            )
    # NDVI is stored x 10^4: the attributes' scale is the dataset's, giving NDVI (units 1)
    ndvi = resolve("modis_13q1:ndvi")[0].dataset("ndvi").variables[0]
    for name in ("ndvi_max", "ndvi_diff"):
        attribute = next(a for a in aset.attributes if a.name == name)
        assert attribute.datasets == ["modis_13q1:ndvi"] and attribute.units == "1"
        assert (ndvi.units, ndvi.scale) == ("1e-4", attribute.transform.scale)
        assert attribute.transform.offset == 0.0
        window = attribute.time_range
        assert window is not None and aset.time_range is not None
        assert aset.time_range.start <= window.start and window.end <= aset.time_range.end
        start = resolve("modis_13q1:ndvi")[0].dataset("ndvi").temporal.start
        assert start is not None and start <= window.start  # MODIS covers it


def test_every_sample_id_resolves() -> None:
    for dataset_id in get_attribute_set("sample").dataset_ids():
        resolve(dataset_id)


# -- the sample set on the sample catchments ----------------------------------------------


def test_one_row_per_geometry_one_column_per_attribute(sample_table: gpd.GeoDataFrame) -> None:
    names = [a.name for a in get_attribute_set("sample").attributes]
    assert list(sample_table.index) == ["K01", "K02", "K03", "K04", "K05", "K06", "U01"]
    for name in names:
        assert name in sample_table and f"{name}_quality" in sample_table
    units = sample_table.attrs["cas_xr"]["units"]
    assert list(units) == names
    assert units["p_mean"] == "mm/day" and units["area"] == "km2" and units["clay_frac"] == "%"
    quality = sample_table["p_mean_quality"].astype(str)
    assert quality["K06"] == "partial" and (quality.drop("K06") == "good").all()
    assert (sample_table["area_quality"] == "good").all()


def test_climate_indices_of_the_area_weighted_mean_series(
    sample_table: gpd.GeoDataFrame, catchments: gpd.GeoDataFrame
) -> None:
    """K01 covers four whole 0.05-degree cells: its series is their area-weighted mean."""
    ds = xr.open_dataset(sample_data_dir() / "daily" / "daily_2022.nc")
    cells = ds.sel(lon=slice(-96.60, -96.50), lat=slice(39.10, 39.00))
    assert cells.sizes["lat"] == 2 and cells.sizes["lon"] == 2
    edges = np.radians(cells["lat"].values[:, None] + np.array([-0.025, 0.025]))
    weights = np.sin(edges[:, 1]) - np.sin(edges[:, 0])  # cell areas on a sphere
    w = xr.DataArray(weights / weights.sum(), dims="lat", coords={"lat": cells["lat"]})
    series = {k: (cells[k].mean("lon") * w).sum("lat").values for k in ("prcp", "tmin", "tmax")}
    days = cells["time"].values
    lat = float(catchments.loc[["K01"]].to_crs(4326).geometry.iloc[0].centroid.y)
    for name in INDICES:
        from cas_xr.attributes import index_value

        expected = index_value(name, series, days, lat)
        assert sample_table.loc["K01", name] == pytest.approx(expected, rel=1e-5), name
    # the frequency of the mean series, not the mean of per-cell frequencies
    prcp = series["prcp"]
    assert sample_table.loc["K01", "high_prec_freq"] == pytest.approx(
        np.sum(prcp >= 5 * prcp.mean()) / prcp.size * 365.25, rel=1e-9
    )


def test_static_attributes_against_extract_table(
    sample_table: gpd.GeoDataFrame, catchments: gpd.GeoDataFrame
) -> None:
    cas.configure(area_weighted=True)
    try:
        table = cas.extract_table(
            catchments.drop(index="K06"),
            ["sample:elevation", "sample:slope_m_per_km", "sample:clay_0-5cm"],
        )
        classes = cas.extract_table(
            catchments.drop(index="K06"), "sample:land_cover", aggregation="distribution"
        )
    finally:
        cas.configure(area_weighted=False)
    got = sample_table.drop(index="K06")
    np.testing.assert_allclose(got["elev_mean"], table["sample:elevation_mean"], rtol=1e-12)
    np.testing.assert_allclose(got["slope_mean"], table["sample:slope_m_per_km_mean"], rtol=1e-12)
    np.testing.assert_allclose(got["clay_frac"], table["sample:clay_0-5cm_mean"] * 0.1, rtol=1e-12)
    np.testing.assert_allclose(
        got["frac_forest"], classes["sample:land_cover_distribution_tree_cover"], rtol=1e-12
    )
    dist = classes.filter(like="_distribution_")
    dominant = dist.idxmax(axis=1).str.removeprefix("sample:land_cover_distribution_")
    assert list(got["dom_land_cover"]) == list(dominant)
    np.testing.assert_allclose(got["dom_land_cover_frac"], dist.max(axis=1), rtol=1e-12)


def test_area_is_geodesic_km2(sample_table: gpd.GeoDataFrame, catchments: gpd.GeoDataFrame) -> None:
    equal_area = catchments.to_crs("EPSG:6933").area / 1e6  # cylindrical equal-area, WGS84
    np.testing.assert_allclose(sample_table["area"], equal_area, rtol=1e-4)
    assert sample_table.loc["K01", "area"] == pytest.approx(96.1, abs=0.1)


def test_a_time_range_override(catchments: gpd.GeoDataFrame) -> None:
    one = catchments.loc[["K01"]]
    summer = cas.extract_attributes(one, "sample", time_range=("2022-06-01", "2022-08-31"))
    assert summer.attrs["cas_xr"]["attributes"]["p_mean"]["time_range"]["start"].startswith(
        "2022-06-01"
    )
    with pytest.raises(InvalidArgumentError, match="continuous daily series; .* 1 steps"):
        cas.extract_attributes(one, "sample", time_range=("2022-06-01", "2022-06-01"))


# -- users' sets ---------------------------------------------------------------------------

MY_SET = textwrap.dedent(
    """\
    name: mine
    time_range: {start: "2022-03-01T00:00:00Z", end: "2022-05-31T00:00:00Z"}
    attributes:
      - {name: wet_days, statistic: high_prec_freq, inputs: {prcp: "sample:prcp"}}
      - {name: steep, dataset: "sample:slope", statistic: max}
      - name: dem_km
        dataset: "sample:elevation"
        statistic: mean
        transform: {scale: 0.001}
        units: km
    """
)


def test_a_set_from_a_file(tmp_path: Path, catchments: gpd.GeoDataFrame) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(MY_SET, encoding="utf-8")
    table = cas.extract_attributes(catchments.loc[["K01", "U01"]], str(path))
    units = {"wet_days": "days/yr", "steep": "degree", "dem_km": "km"}
    assert table.attrs["cas_xr"]["units"] == units
    assert table.loc["U01", "dem_km"] == pytest.approx(1.797, abs=0.01)


def test_a_set_from_an_entry_point(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real distribution on sys.path whose entry point names the set's YAML file."""
    (tmp_path / "my_sets.py").write_text(
        "from pathlib import Path\nPATH = Path(__file__).with_name('mine.yaml')\n",
        encoding="utf-8",
    )
    (tmp_path / "mine.yaml").write_text(MY_SET, encoding="utf-8")
    info = tmp_path / "my_sets-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: my-sets\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[cas_xr.attribute_sets]\nmine = my_sets:PATH\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        assert "mine" in list_attribute_sets(reload=True)
        assert get_attribute_set("mine").attributes[0].name == "wet_days"
    finally:
        monkeypatch.undo()
        sys.modules.pop("my_sets", None)
        list_attribute_sets(reload=True)


@pytest.mark.parametrize(
    ("attributes", "message"),
    [
        ("[{name: a, statistic: wobble, dataset: 'sample:elevation'}]", "unknown statistic"),
        ("[{name: a, statistic: mean}]", "needs a 'dataset'"),
        ("[{name: a, statistic: p_mean}]", r"needs inputs \['prcp'\]"),
        ("[{name: a, statistic: area, dataset: 'sample:elevation'}]", "takes no 'dataset'"),
        (
            "[{name: a, statistic: mean, dataset: ['sample:elevation', 'sample:slope']}]",
            "need transform.weights",
        ),
        (
            "[{name: a, statistic: mean, dataset: 'sample:elevation', transform: {scale: 2}}]",
            "give 'units'",
        ),
        ("[{name: a, statistic: class_fraction, dataset: 'sample:land_cover'}]", "needs them"),
        ("[{name: a, statistic: area}, {name: a, statistic: area}]", "unique, repeated"),
    ],
)
def test_invalid_sets_say_what_is_wrong(attributes: str, message: str) -> None:
    import yaml

    data = {"name": "bad", "attributes": yaml.safe_load(attributes)}
    with pytest.raises(ConfigurationError, match=message):
        get_attribute_set(data)


def test_unknown_names_fail_before_any_work(catchments: gpd.GeoDataFrame) -> None:
    with pytest.raises(UnknownAttributeSetError, match="known sets: .*camels"):
        cas.extract_attributes(catchments, "nope")
    bad = {"name": "x", "attributes": [{"name": "a", "statistic": "mean", "dataset": "sample:x"}]}
    with pytest.raises(UnknownDatasetError):
        cas.extract_attributes(catchments, bad)
    classes = {
        "name": "x",
        "attributes": [
            {"name": "a", "statistic": "class_fraction", "dataset": "sample:land_cover",
             "classes": ["forest"]},
        ],
    }  # fmt: skip
    with pytest.raises(InvalidArgumentError, match=r"no classes \['forest'\].*10 \(tree_cover\)"):
        cas.extract_attributes(catchments, AttributeSet.model_validate(classes))
    monthly = {"name": "x", "inputs": {"prcp": "sample:precipitation"},
               "attributes": [{"name": "a", "statistic": "p_mean"}]}  # fmt: skip
    with pytest.raises(InvalidArgumentError, match="'mm/month'; climate indices need 'mm/day'"):
        cas.extract_attributes(catchments, monthly)


# -- the command line ----------------------------------------------------------------------


def test_cli_prints_the_sample_set_with_units(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    output = tmp_path / "table.parquet"
    argv = ["attributes", str(sample_catchments_path()), "--set", "sample", "-o", str(output)]
    code = cli.main(argv)
    out, err = capsys.readouterr()
    assert code == 0, err
    lines = out.splitlines()
    ids = ["K01", "K02", "K03", "K04", "K05", "K06", "U01"]
    assert lines[1].split() == ["attribute", "units", *ids]
    rows = {line.split()[0]: line.split()[1:] for line in lines[3:] if line and line[0] != " "}
    expected_units = {
        "p_mean": "mm/day", "pet_mean": "mm/day", "aridity": "1", "p_seasonality": "1",
        "frac_snow": "1", "high_prec_freq": "days/yr", "high_prec_dur": "days",
        "low_prec_freq": "days/yr", "low_prec_dur": "days", "elev_mean": "m",
        "slope_mean": "m/km", "area": "km2", "frac_forest": "1", "dom_land_cover": "class",
        "dom_land_cover_frac": "1", "clay_frac": "%",
    }  # fmt: skip
    for name, units in expected_units.items():
        assert rows[name][0] == units, name
        assert rows[name][6].endswith("*") == (name != "area")  # K06 is partly outside
    assert "K06: partial:" in out
    assert f"wrote parquet to {output}" in err
    metadata = pq.read_schema(output).metadata
    assert b"PANDAS_ATTRS" in metadata and b'"clay_frac": "%"' in metadata[b"PANDAS_ATTRS"]
    table = gpd.read_parquet(output)
    assert table.attrs["cas_xr"]["units"] == expected_units


def test_cli_refuses_an_unknown_set(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["attributes", str(sample_catchments_path()), "--set", "nope"])
    _, err = capsys.readouterr()
    assert code == 2 and "unknown attribute set 'nope'" in err


# -- the real upstreams (opt-in) -----------------------------------------------------------


@pytest.mark.network
def test_camels_for_one_real_catchment() -> None:
    """A small Kansas box over a year across 2004's end: every attribute has a plausible
    value, and Daymet's missing December 31 of the leap year is a missing day."""
    import shapely

    cas.configure(provider_timeout_s=60)
    frame = gpd.GeoDataFrame(
        {"id": ["kansas"]}, geometry=[shapely.box(-96.60, 39.05, -96.55, 39.10)], crs=4326
    )
    year = ("2004-07-01", "2005-06-30T23:59:59")  # 365 days, 364 of them in Daymet
    table = cas.extract_attributes(frame, "camels", time_range=year)
    row = table.iloc[0]
    assert table.attrs["cas_xr"]["attributes"]["p_mean"]["missing_days"] == ["2004-12-31"]
    assert 1.0 < row["p_mean"] < 4.0 and 0.5 < row["aridity"] < 3.0
    assert 300 < row["elev_mean"] < 500 and row["slope_mean"] > 0
    assert 20 < row["area"] < 35
    assert 90 < row["sand_frac"] + row["silt_frac"] + row["clay_frac"] < 110
    assert 0.3 < row["ndvi_max"] <= 1.0 and 0.05 < row["ndvi_diff"] < row["ndvi_max"]
    assert (table.filter(like="_quality").astype(str) != "missing").all(axis=None)


def test_class_attributes_of_a_temporal_categorical_dataset(tmp_path: Path) -> None:
    """Like ESA WorldCover (annual maps): fractions are averaged over the years in range."""
    import pandas as pd
    import rioxarray  # noqa: F401
    import shapely

    codes = np.full((3, 4, 4), 10, dtype="uint8")  # 2019: all forest
    codes[1, :, :2] = 40  # 2020: half cropland
    codes[2, :, :] = 40  # 2021: all cropland
    times = pd.date_range("2019-01-01", periods=3, freq="YS")
    da = xr.DataArray(
        codes, dims=("time", "lat", "lon"),
        coords={"time": times, "lat": 39.0 + (3.5 - np.arange(4)) * 0.01,
                "lon": -96.0 + (np.arange(4) + 0.5) * 0.01},
        name="lc",
    ).rio.write_crs("EPSG:4326")  # fmt: skip
    da.to_dataset().to_netcdf(tmp_path / "lc.nc", engine="h5netcdf")
    (tmp_path / "p.yaml").write_text(
        textwrap.dedent(
            """\
            slug: mylc
            protocol: local
            endpoint: .
            datasets:
              - name: lc
                path: lc.nc
                temporal: {temporal_type: annual}
                variables:
                  - {name: lc, units: class, data_type: categorical,
                     class_names: {10: tree_cover, 40: cropland}}
            """
        ),
        encoding="utf-8",
    )
    cas.configure(provider_files=[tmp_path / "p.yaml"])
    try:
        aset = {
            "name": "lc",
            "time_range": {"start": "2020-01-01", "end": "2021-12-31"},
            "attributes": [
                {"name": "forest", "statistic": "class_fraction", "dataset": "mylc:lc",
                 "classes": ["tree_cover"]},
                {"name": "dom", "statistic": "dominant_class", "dataset": "mylc:lc"},
                {"name": "dom_frac", "statistic": "dominant_fraction", "dataset": "mylc:lc"},
            ],
        }  # fmt: skip
        boxes = [shapely.box(-96.0, 39.0, -95.96, 39.04), shapely.box(-90.0, 30.0, -89.9, 30.1)]
        frame = gpd.GeoDataFrame(geometry=boxes, crs=4326)
        with pytest.warns(cas.errors.QualityWarning, match="missing"):  # the second is outside
            table = cas.extract_attributes(frame, aset)
        row, outside = table.iloc[0], table.iloc[1]
    finally:
        cas.configure(provider_files=[])
    # 2020: forest 0.5, 2021: forest 0 -> 0.25; cropland 0.75 dominates
    assert row["forest"] == pytest.approx(0.25, abs=1e-3)
    assert row["dom"] == "cropland" and row["dom_frac"] == pytest.approx(0.75, abs=1e-3)
    assert str(row["forest_quality"]) == "good"
    assert np.isnan(outside["forest"]) and pd.isna(outside["dom"])
    assert str(outside["dom_quality"]) == "missing"


def test_the_same_attributes_with_one_chunk_and_with_many(catchments: gpd.GeoDataFrame) -> None:
    """Derived slope (halo across chunks) and the daily series, through the whole pipeline."""
    aset = {
        "name": "chunks",
        "inputs": {"prcp": "sample:prcp"},
        "attributes": [
            {"name": "slope_mean", "dataset": "sample:slope_m_per_km", "statistic": "mean"},
            {"name": "slope_max", "dataset": "sample:slope", "statistic": "max"},
            {"name": "p_mean", "statistic": "p_mean"},
            {"name": "high_prec_freq", "statistic": "high_prec_freq"},
        ],
    }
    frame = catchments.loc[["K01", "K03", "U01"]]
    one = cas.extract_attributes(frame, aset)
    cas.configure(chunk_size=64)  # K01 alone spans 2 x 2 chunks of the elevation
    try:
        many = cas.extract_attributes(frame, aset)
    finally:
        cas.configure(chunk_size=2048)
    for name in ("slope_mean", "slope_max", "p_mean", "high_prec_freq"):
        np.testing.assert_allclose(many[name], one[name], rtol=1e-10, err_msg=name)
