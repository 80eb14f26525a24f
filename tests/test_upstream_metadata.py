"""The built-in definitions against the publishers' recorded metadata (offline), and the
real upstreams for one catchment (opt-in: ``network`` marker and ``CAS_NETWORK_TESTS=1``).

The recorded metadata are in ``tests/fixtures/upstream/`` (their sources in its README).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyproj
import pytest

import cas_xr as cas
from cas_xr.attributes import get_attribute_set
from cas_xr.models import Protocol

FIXTURES = Path(__file__).parent / "fixtures" / "upstream"
DAYMET = json.loads((FIXTURES / "daymet-daily-na.template.json").read_text(encoding="utf-8"))
WORLDCOVER = json.loads((FIXTURES / "esa-worldcover.template.json").read_text(encoding="utf-8"))
COPDEM = json.loads((FIXTURES / "cop-dem-glo-30.template.json").read_text(encoding="utf-8"))
MODIS = json.loads((FIXTURES / "modis-13Q1-061.template.json").read_text(encoding="utf-8"))
MODIS_ITEM = json.loads(
    (FIXTURES / "MOD13Q1.A2022033.h09v05.061.2022051005101.json").read_text(encoding="utf-8")
)
#: the providers whose definitions a test below checks against recorded metadata
CHECKED = {"daymet", "copernicus_dem", "esa_worldcover", "isric_soilgrids", "modis_13q1"}
#: the publisher's spelling -> the UDUNITS symbol cas_xr writes (the same unit)
UNIT_SPELLINGS = {"degrees C": "degC"}


def _same_projection(a: Any, b: Any) -> bool:
    """Whether two CRSs put points of North America at the same x/y (to 1 mm)."""
    lon, lat = np.meshgrid(np.linspace(-170, -55, 12), np.linspace(15, 80, 12))
    xa, ya = pyproj.Transformer.from_crs(4326, pyproj.CRS(a), always_xy=True).transform(lon, lat)
    xb, yb = pyproj.Transformer.from_crs(4326, pyproj.CRS(b), always_xy=True).transform(lon, lat)
    return bool(np.allclose(xa, xb, rtol=0, atol=1e-3) and np.allclose(ya, yb, rtol=0, atol=1e-3))


def _stamp(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


# -- Daymet daily (Planetary Computer daymet-daily-na) -------------------------------------


@pytest.mark.parametrize("name", ["prcp", "tmin", "tmax"])
def test_daymet_matches_the_collection_metadata(name: str) -> None:
    connector = cas.get_connector("daymet")
    dataset = connector.definition_of(name)
    (variable,) = dataset.variables
    cube = DAYMET["cube:variables"][dataset.array]
    assert connector.definition.protocol is Protocol.STAC_ZARR
    assert connector.definition.endpoint == "https://planetarycomputer.microsoft.com/api/stac/v1"
    assert dataset.collection == DAYMET["id"] == "daymet-daily-na"
    asset = DAYMET["assets"][dataset.asset]
    assert "zarr" in asset["roles"] and asset["xarray:open_kwargs"] == {"consolidated": True}
    assert dataset.array == variable.name == name
    assert cube["type"] == "data" and cube["dimensions"] == ["time", "y", "x"]
    assert UNIT_SPELLINGS.get(cube["unit"], cube["unit"]) == variable.units
    assert cube["attrs"]["units"] == cube["unit"]
    assert not {"scale_factor", "add_offset"} & set(cube["attrs"])  # stored as published
    assert variable.scale is None and variable.offset is None
    # the grid: CF grid mapping and PROJJSON of the dims, 1000 m cells
    grid = DAYMET["cube:variables"][cube["attrs"]["grid_mapping"]]["attrs"]
    assert _same_projection(dataset.crs, pyproj.CRS.from_cf(grid))
    for axis in ("x", "y"):
        dim = DAYMET["cube:dimensions"][axis]
        assert _same_projection(dataset.crs, pyproj.CRS.from_json_dict(dim["reference_system"]))
        assert abs(dim["step"]) == dataset.resolution_m == 1000
    # extent and time span
    assert dataset.bbox is not None
    box = dataset.bbox
    assert [box.min_lon, box.min_lat, box.max_lon, box.max_lat] == DAYMET["extent"]["spatial"][
        "bbox"
    ][0]
    (interval,) = DAYMET["extent"]["temporal"]["interval"]
    assert (dataset.temporal.start, dataset.temporal.end) == tuple(map(_stamp, interval))
    assert dataset.temporal.temporal_type is cas.TemporalType.DAILY
    assert connector.definition.options == {"sign": "planetary_computer"}


def test_daymet_units_are_what_the_camels_set_needs() -> None:
    units = {d.name: d.variables[0].units for d in cas.get_connector("daymet").definition.datasets}
    assert units == {"prcp": "mm/day", "tmin": "degC", "tmax": "degC"}


# -- Copernicus DEM GLO-30 (Planetary Computer cop-dem-glo-30) -----------------------------


def test_copernicus_dem_matches_the_collection_metadata() -> None:
    connector = cas.get_connector("copernicus_dem")
    definition = connector.definition
    dataset = definition.definition_of("elevation")
    assert definition.protocol is Protocol.STAC_COG
    assert definition.endpoint == "https://planetarycomputer.microsoft.com/api/stac/v1"
    assert definition.options == {"sign": "planetary_computer"}
    assert dataset.collection == COPDEM["id"] == "cop-dem-glo-30"
    asset = COPDEM["item_assets"][dataset.asset]
    assert asset["roles"] == ["data"]
    assert asset["type"] == "image/tiff; application=geotiff; profile=cloud-optimized"
    assert [dataset.resolution_m] == COPDEM["summaries"]["gsd"] == [30]
    box = dataset.bbox
    assert box is not None
    assert [box.min_lon, box.min_lat, box.max_lon, box.max_lat] == COPDEM["extent"]["spatial"][
        "bbox"
    ][0]
    # one instant (the publication), not a time series: the definition is static
    ((start, end),) = COPDEM["extent"]["temporal"]["interval"]
    assert start == end and not dataset.is_temporal
    # the licence the collection links to, and its licensor in the citation
    (link,) = [link for link in COPDEM["links"] if link["rel"] == "license"]
    assert link["title"].lower().replace("license", "licence") in definition.license.lower()
    licensors = [p["name"] for p in COPDEM["providers"] if "licensor" in p["roles"]]
    assert licensors == ["European Space Agency"] and "ESA" in definition.citation
    assert COPDEM["msft:short_description"].startswith("Copernicus DEM 30 is a near-global")
    assert "digital surface model" in COPDEM["msft:short_description"]
    assert "DSM" in dataset.description and dataset.variables[0].units == "m"


@pytest.mark.parametrize("name", ["slope", "slope_m_per_km", "aspect"])
def test_copernicus_dem_derived_datasets_share_its_grid(name: str) -> None:
    """elev_mean and slope_mean of the camels set: the slope is computed on the DEM's grid."""
    definition = cas.get_connector("copernicus_dem").definition
    derived, base = definition.definition_of(name), definition.definition_of("elevation")
    assert derived.derive is not None and derived.derive.dataset == "elevation"
    assert (derived.resolution_m, derived.crs, derived.bbox) == (
        base.resolution_m,
        base.crs,
        base.bbox,
    )


def test_every_camels_dataset_is_checked_against_recorded_metadata() -> None:
    from cas_xr.attributes import get_attribute_set

    providers = {i.split(":")[0] for i in get_attribute_set("camels").dataset_ids()}
    assert providers <= CHECKED, sorted(providers - CHECKED)


# -- ESA WorldCover ------------------------------------------------------------------------


def _class_name(description: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", description.lower()).strip("_")


def test_worldcover_matches_the_collection_metadata() -> None:
    dataset = cas.get_connector("esa_worldcover").definition_of("land_cover")
    (variable,) = dataset.variables
    asset = WORLDCOVER["item_assets"][dataset.asset]
    assert dataset.collection == WORLDCOVER["id"]
    (band,) = asset["raster:bands"]
    assert variable.nodata_value == band["nodata"] and band["data_type"] == "uint8"
    assert dataset.resolution_m == band["spatial_resolution"]
    published = {c["value"]: _class_name(c["description"]) for c in asset["classification:classes"]}
    assert variable.class_names == published
    assert variable.valid_range == (min(published), max(published))
    box = dataset.bbox
    assert box is not None
    bbox = [box.min_lon, box.min_lat, box.max_lon, box.max_lat]
    assert bbox == WORLDCOVER["extent"]["spatial"]["bbox"][0]
    (interval,) = WORLDCOVER["extent"]["temporal"]["interval"]
    assert (dataset.temporal.start, dataset.temporal.end) == tuple(map(_stamp, interval))
    assert cas.get_connector("esa_worldcover").definition.license == WORLDCOVER["license"]


def test_worldcover_forest_classes_are_tree_cover_and_mangroves() -> None:
    names = cas.get_connector("esa_worldcover").definition_of("land_cover").variables[0].class_names
    assert names is not None
    assert {code for code, name in names.items() if name in ("tree_cover", "mangroves")} == {10, 95}


# -- SoilGrids -----------------------------------------------------------------------------


def _faq_rows() -> dict[str, list[str]]:
    text = (FIXTURES / "soilgrids-faq-properties.md").read_text(encoding="utf-8")
    rows = [[c.strip() for c in line.split("|")[:5]] for line in text.splitlines()[2:]]
    return {row[0]: row for row in rows}


#: where the recorded table is known to be wrong (its own units contradict it) or to
#: spell otherwise: property -> (what the definition has, why)
FAQ_EXCEPTIONS = {
    "cfvo": "vol‰ to vol% divides by 10, not the 100 the table prints (the definition: 0.1)",
}


@pytest.mark.parametrize("prop", ["sand", "silt", "clay", "bdod", "cec", "nitrogen", "soc", "ocd"])
def test_soilgrids_units_and_scales_match_the_faq(prop: str) -> None:
    _, _, units, factor, _ = _faq_rows()[prop]
    definition = cas.get_connector("isric_soilgrids").definition
    datasets = [d for d in definition.datasets if d.name.split("_")[0] == prop]
    assert len(datasets) == 6  # the six standard depths
    for dataset in datasets:
        (variable,) = dataset.variables
        assert variable.units == units
        assert variable.scale == pytest.approx(1 / float(factor), rel=1e-12)
        assert variable.nodata_value == -32768


def test_soilgrids_texture_fractions_sum_in_the_stored_units() -> None:
    """sand + silt + clay = 1000 g/kg: the texture attributes are fractions of one whole."""
    rows = _faq_rows()
    assert {rows[p][2] for p in ("sand", "silt", "clay")} == {"g/kg"}
    assert "cfvo" in FAQ_EXCEPTIONS and rows["cfvo"][3] == "100"  # the known misprint


# -- MODIS 16-day NDVI (Planetary Computer modis-13Q1-061) ---------------------------------


def _lpdaac_ndvi_row() -> dict[str, str]:
    lines = (FIXTURES / "lpdaac-mod13c1v061-sds.md").read_text(encoding="utf-8").splitlines()
    header = [c.strip() for c in lines[0].split("|")[:-1]]
    rows = [[c.strip() for c in line.split("|")[:-1]] for line in lines[2:]]
    (row,) = [r for r in rows if r[0].endswith("16 days NDVI")]
    return dict(zip(header, row, strict=True))


def test_modis_ndvi_matches_the_collection_metadata() -> None:
    connector = cas.get_connector("modis_13q1")
    definition = connector.definition
    dataset = definition.definition_of("ndvi")
    (variable,) = dataset.variables
    assert definition.protocol is Protocol.STAC_COG
    assert definition.endpoint == "https://planetarycomputer.microsoft.com/api/stac/v1"
    assert definition.options == {"sign": "planetary_computer"}
    assert dataset.collection == MODIS["id"] == "modis-13Q1-061"
    asset = MODIS["item_assets"][dataset.asset]
    assert asset["title"] == "16 day NDVI" and asset["roles"] == ["data"]
    assert asset["type"] == "image/tiff; application=geotiff; profile=cloud-optimized"
    (band,) = asset["raster:bands"]
    assert band["data_type"] == "int16" and band["unit"] == "NDVI"
    assert variable.scale == band["scale"] == 0.0001  # stored x 10^4 ...
    assert variable.units == "1e-4"  # ... so the stored values are in units of 10^-4 NDVI
    assert "nodata" not in band  # the fill value comes from LP DAAC's documentation
    assert dataset.resolution_m == band["spatial_resolution"] == 250
    box = dataset.bbox
    assert box is not None
    bbox = [box.min_lon, box.min_lat, box.max_lon, box.max_lat]
    assert bbox == MODIS["extent"]["spatial"]["bbox"][0]
    ((start, end),) = MODIS["extent"]["temporal"]["interval"]
    assert dataset.temporal.start == _stamp(start) and end is None is dataset.temporal.end
    assert dataset.is_temporal
    (link,) = [link for link in MODIS["links"] if link["rel"] == "license"]
    assert link["title"].startswith("LP DAAC - Data Citation") and "LP DAAC" in definition.license
    dois = [p["doi"] for p in MODIS["sci:publications"]]
    assert all(f"doi:{doi}" in definition.citation for doi in dois)


def test_modis_ndvi_fill_range_and_scale_match_lpdaac() -> None:
    """One nodata value (-3000) masks the fill: every other value is in the valid range."""
    row = _lpdaac_ndvi_row()
    (variable,) = cas.get_connector("modis_13q1").definition_of("ndvi").variables
    assert row["Data Type"] == "16-bit signed integer" and row["Units"] == "NDVI"
    assert variable.nodata_value == float(row["Fill Value"]) == -3000
    low, high = (float(v) for v in row["Valid Range"].split(" to "))
    assert variable.valid_range == (low, high) == (-2000, 10000)
    assert not low <= variable.nodata_value <= high  # the fill cannot pass for a value
    assert row["No Data Value"] == "N/A"  # no second marker to mask
    assert variable.scale == float(row["Scale Factor"])


def test_modis_items_are_sinusoidal_tiles_labelled_by_their_composite() -> None:
    """The published items (stactools' example): no EPSG code but proj:wkt2, no datetime
    but the composite's start/end; the definition's CRS is the same sinusoidal grid."""
    props = MODIS_ITEM["properties"]
    dataset = cas.get_connector("modis_13q1").definition_of("ndvi")
    assert MODIS_ITEM["collection"] == dataset.collection
    assert dataset.asset in MODIS_ITEM["assets"]
    assert (
        MODIS_ITEM["assets"][dataset.asset]["raster:bands"]
        == (MODIS["item_assets"][dataset.asset]["raster:bands"])
    )
    assert props["datetime"] is None and props["proj:epsg"] is None
    assert _same_projection(dataset.crs, props["proj:wkt2"])
    cell = props["proj:transform"][0]
    assert cell == pytest.approx(-props["proj:transform"][4], rel=1e-12)
    assert cell == pytest.approx(231.656, abs=1e-3)  # the "250 m" of the metadata
    start, end = _stamp(props["start_datetime"]), _stamp(props["end_datetime"])
    assert (end - start).days == 15  # a 16-day composite, its last second included


# -- the real upstreams, one catchment (opt-in) -------------------------------------------

#: a small catchment east of Manhattan, Kansas (about 20 km2)
CATCHMENT = {
    "type": "Polygon",
    "coordinates": [
        [[-96.60, 39.04], [-96.55, 39.04], [-96.55, 39.08], [-96.60, 39.08], [-96.60, 39.04]]
    ],
}


@pytest.mark.network
def test_real_catchment_values_for_the_camels_datasets() -> None:
    import geopandas as gpd
    import shapely

    cas.configure(provider_timeout_s=120, request_timeout_s=1800)
    frame = gpd.GeoDataFrame(geometry=[shapely.geometry.shape(CATCHMENT)], crs="EPSG:4326")
    year = ("2019-01-01", "2019-12-31T23:59:59")
    climate = cas.extract_table(
        frame, ["daymet:prcp", "daymet:tmin", "daymet:tmax"], time_range=year
    )
    assert len(climate) == 365  # Daymet years have 365 days
    prcp, tmin, tmax = (climate[f"daymet:{v}_mean"].to_numpy() for v in ("prcp", "tmin", "tmax"))
    assert 500 < prcp.sum() < 1600  # eastern Kansas: about 900 mm a year
    assert (prcp >= 0).all() and (tmin <= tmax).all()
    assert -5 < tmin.mean() < 15 and 10 < tmax.mean() < 25
    soils = cas.extract_table(
        frame, [f"isric_soilgrids:{p}_0-5cm" for p in ("sand", "silt", "clay")]
    )
    total = sum(
        float(soils[f"isric_soilgrids:{p}_0-5cm_mean"].iloc[0]) for p in ("sand", "silt", "clay")
    )
    assert 950 < total < 1050  # g/kg, fractions of the fine earth
    cover = cas.extract_table(frame, ["esa_worldcover:land_cover"], aggregation="distribution")
    fractions = cover.filter(like="_distribution_").iloc[-1]
    assert fractions.sum() == pytest.approx(1.0, abs=0.02)


@pytest.mark.network
def test_real_catchment_modis_ndvi_series() -> None:
    """A year of MODIS 16-day NDVI for the Kansas catchment: Terra and Aqua composites every
    8 days, the fill masked, a summer peak; and the camels set's ndvi_max/ndvi_diff."""
    import geopandas as gpd
    import shapely

    cas.configure(provider_timeout_s=120, request_timeout_s=1800)
    frame = gpd.GeoDataFrame(geometry=[shapely.geometry.shape(CATCHMENT)], crs="EPSG:4326")
    year = ("2019-01-01", "2019-12-31T23:59:59")
    table = cas.extract_table(frame, ["modis_13q1:ndvi"], time_range=year)
    assert 40 <= len(table) <= 48  # 23 Terra and 23 Aqua composites start in a year
    ndvi = table["modis_13q1:ndvi_mean"].to_numpy() * 0.0001
    assert ((ndvi >= -0.2) & (ndvi <= 1.0)).all()
    months = np.asarray(table.index.get_level_values("time").month)
    assert ndvi[(months >= 6) & (months <= 8)].mean() > ndvi[(months <= 2)].mean() + 0.1
    aset = get_attribute_set("camels").model_copy()
    aset.attributes = [a for a in aset.attributes if a.name in ("ndvi_max", "ndvi_diff")]
    attributes = cas.extract_attributes(frame, aset)
    row = attributes.iloc[0]
    assert 0.4 < row["ndvi_max"] <= 1.0 and 0.1 < row["ndvi_diff"] < row["ndvi_max"]
