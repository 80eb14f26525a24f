"""The built-in provider files: valid, listed, and (opt-in) readable from the real upstreams.

The upstream tests reach the internet, so they are marked ``network`` and skipped unless
``CAS_NETWORK_TESTS=1``; each reads one small box.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import cas_xr as cas
from cas_xr import cli
from cas_xr.catalog import load_provider_file
from cas_xr.errors import MissingDependencyError
from cas_xr.models import Protocol

ROOT = Path(__file__).resolve().parents[1]
BUILTIN = sorted((ROOT / "cas_xr" / "catalog" / "providers").glob("*.yaml"))
PLANETARY_COMPUTER = "https://planetarycomputer.microsoft.com/api/stac/v1"
SOIL_PROPERTIES = (
    "bdod", "cec", "cfvo", "clay", "nitrogen", "ocd", "phh2o", "sand", "silt", "soc",
    "wv0010", "wv0033", "wv1500",
)  # fmt: skip
DEPTHS = ("0-5cm", "5-15cm", "15-30cm", "30-60cm", "60-100cm", "100-200cm")
SOIL_UNITS = {
    "bdod": ("cg/cm3", 0.01), "cec": ("mmol(c)/kg", 0.1), "cfvo": ("cm3/dm3", 0.1),
    "clay": ("g/kg", 0.1), "nitrogen": ("cg/kg", 0.01), "ocd": ("hg/m3", 0.1),
    "phh2o": ("pH*10", 0.1), "sand": ("g/kg", 0.1), "silt": ("g/kg", 0.1),
    "soc": ("dg/kg", 0.1), "wv0010": ("10^-3 cm3/cm3", 0.1),
    "wv0033": ("10^-3 cm3/cm3", 0.1), "wv1500": ("10^-3 cm3/cm3", 0.1), "ocs": ("t/ha", 0.1),
}  # fmt: skip
#: provider slug -> (dataset, STAC collection, asset) of the Planetary Computer providers
STAC_DATASETS = {
    "copernicus_dem": ("elevation", "cop-dem-glo-30", "data"),
    "cop_dem_90": ("elevation", "cop-dem-glo-90", "data"),
    "nasadem": ("elevation", "nasadem", "elevation"),
    "alos_dem": ("elevation", "alos-dem", "data"),
    "usgs_3dep": ("elevation", "3dep-seamless", "data"),
    "esa_worldcover": ("land_cover", "esa-worldcover", "map"),
    "io_lulc": ("land_cover", "io-lulc-annual-v02", "data"),
    "modis_13q1": ("ndvi", "modis-13Q1-061", "250m_16_days_NDVI"),
}


def test_the_built_in_providers_are_the_documented_ones() -> None:
    slugs = {load_provider_file(p).slug for p in BUILTIN}
    assert slugs == {"sample", "isric_soilgrids", "daymet", *STAC_DATASETS}
    assert {p.stem for p in BUILTIN} == slugs  # one file per provider, named after it


@pytest.mark.parametrize("path", BUILTIN, ids=lambda p: p.stem)
def test_every_built_in_file_validates_with_complete_metadata(path: Path) -> None:
    definition = load_provider_file(path)
    assert definition.name
    assert definition.description
    for dataset in definition.datasets:
        metadata = definition.dataset_metadata(dataset)
        assert metadata.license, metadata.id
        assert metadata.citation, metadata.id
        assert metadata.resolution_m, metadata.id
        for variable in dataset.variables:
            assert variable.units, metadata.id
            assert variable.nodata_value is not None, metadata.id
            if variable.data_type is cas.DataType.CATEGORICAL:
                assert variable.class_names, metadata.id
            else:
                assert variable.valid_range is not None, metadata.id


def test_every_built_in_dataset_is_listed() -> None:
    listed = {ds.id for ds in cas.list_datasets()}
    for path in BUILTIN:
        definition = load_provider_file(path)
        for dataset in definition.datasets:
            assert f"{definition.slug}:{dataset.name}" in listed


@pytest.mark.parametrize("path", BUILTIN, ids=lambda p: p.stem)
def test_every_built_in_dataset_builds_its_source(path: Path) -> None:
    connector = cas.get_connector(load_provider_file(path).slug)
    unsigned = connector.definition.options.get("sign") == "planetary_computer" and (
        importlib.util.find_spec("planetary_computer") is None
    )
    for dataset in connector.definition.datasets:
        if unsigned:  # the package that signs URLs is optional
            with pytest.raises(MissingDependencyError, match="planetary-computer"):
                connector.source(dataset.name)
        else:
            assert callable(connector.source(dataset.name).open)


@pytest.mark.parametrize("slug", sorted(STAC_DATASETS))
def test_planetary_computer_providers_name_their_collection_and_asset(slug: str) -> None:
    definition = cas.get_connector(slug).definition
    name, collection, asset = STAC_DATASETS[slug]
    dataset = definition.datasets[0]
    assert definition.protocol is Protocol.STAC_COG
    assert definition.endpoint == PLANETARY_COMPUTER
    assert definition.options == {"sign": "planetary_computer"}
    assert (dataset.name, dataset.collection, dataset.asset) == (name, collection, asset)


def test_land_cover_datasets_are_annual_and_categorical_with_class_names() -> None:
    worldcover = cas.get_connector("esa_worldcover").dataset("land_cover")
    (variable,) = worldcover.variables
    assert worldcover.temporal.temporal_type is cas.TemporalType.ANNUAL
    assert variable.data_type is cas.DataType.CATEGORICAL
    assert variable.class_names is not None
    assert sorted(variable.class_names) == [10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 100]
    assert variable.class_names[10] == "tree_cover"
    assert variable.nodata_value == 0
    lulc = cas.get_connector("io_lulc").dataset("land_cover").variables[0]
    assert lulc.class_names is not None
    assert sorted(lulc.class_names) == [1, 2, 4, 5, 7, 8, 9, 10, 11]


def test_usgs_3dep_selects_one_resolution_per_dataset() -> None:
    definition = cas.get_connector("usgs_3dep").definition
    gsd = {d.name: d.options["query"]["gsd"]["eq"] for d in definition.datasets}
    assert gsd == {"elevation": 10, "elevation_30m": 30}
    assert {d.crs for d in definition.datasets} == {"EPSG:4269"}  # NAD83, not WGS84


def test_soilgrids_has_13_properties_at_6_depths_plus_the_carbon_stock() -> None:
    definition = cas.get_connector("isric_soilgrids").definition
    assert definition.protocol is Protocol.WCS
    assert definition.options == {"version": "2.0.1", "read_ratio": 2.0}
    names = [d.name for d in definition.datasets]
    expected = [f"{p}_{d}" for p in SOIL_PROPERTIES for d in DEPTHS] + ["ocs_0-30cm"]
    assert names == expected
    assert len(names) == 13 * 6 + 1
    for dataset in definition.datasets:
        prop = dataset.name.split("_")[0]
        (variable,) = dataset.variables
        assert dataset.coverage == f"{dataset.name}_mean"
        assert dataset.options == {"params": {"map": f"/map/{prop}.map"}}
        assert (variable.name, variable.units, variable.scale) == (prop, *SOIL_UNITS[prop])
        assert variable.nodata_value == -32768
        assert dataset.resolution_m == 250


def test_soilgrids_file_is_what_the_generator_writes() -> None:
    script = ROOT / "scripts" / "make_soilgrids_provider.py"
    done = subprocess.run(
        [sys.executable, str(script), "--check"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr


def test_cli_lists_the_soilgrids_datasets(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["datasets", "--provider", "isric_soilgrids"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = [line.split()[0] for line in lines[2:]]
    assert len(rows) == 79
    assert "isric_soilgrids:clay_0-5cm" in rows
    assert "isric_soilgrids:ocs_0-30cm" in rows
    assert cli.main(["datasets", "--provider", "isric_soilgrids", "--json"]) == 0
    listed = {d["id"]: d for d in json.loads(capsys.readouterr().out)}
    clay = listed["isric_soilgrids:clay_0-5cm"]["variables"][0]
    assert (clay["units"], clay["scale"], clay["nodata_value"]) == ("g/kg", 0.1, -32768)


# -- the real upstreams (opt-in) ----------------------------------------------------------

KANSAS = (-96.60, 39.05, -96.58, 39.07)  # a small box covered by every provider
UPSTREAM = [
    "copernicus_dem:elevation",
    "cop_dem_90:elevation",
    "nasadem:elevation",
    "alos_dem:elevation",
    "usgs_3dep:elevation",
    "esa_worldcover:land_cover",
    "io_lulc:land_cover",
    "isric_soilgrids:clay_0-5cm",
    "isric_soilgrids:wv0033_30-60cm",
]


@pytest.mark.network
@pytest.mark.parametrize("dataset_id", UPSTREAM)
def test_real_upstream_reads_a_small_box(dataset_id: str) -> None:
    cas.configure(provider_timeout_s=60)
    da = cas.open_dataset(dataset_id, bbox=KANSAS)
    if "time" in da.dims:
        da = da.isel(time=-1)
    values = np.asarray(da.values, dtype="float64")
    valid = values[(values != da.attrs["nodata"]) & np.isfinite(values)]
    assert valid.size > 0.9 * values.size, dataset_id
    low, high = da.attrs["valid_range"]
    assert low <= valid.min() <= valid.max() <= high, dataset_id
    if "class_names" in da.attrs:
        assert set(np.unique(valid).astype(int)) <= set(da.attrs["class_names"]), dataset_id
