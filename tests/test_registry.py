"""The provider registry: built-ins, provider files and entry points."""

from __future__ import annotations

from pathlib import Path

import pytest

import cas_xr as cas
from cas_xr.errors import ProviderDefinitionError, UnknownDatasetError, UnknownProviderError
from tests._catalogs import make_catalog, provider_yaml

POINT = {"type": "Point", "coordinates": [10.055, 50.155]}  # row 4 -> value 104


def test_discover_and_list():
    assert "sample" in cas.discover()
    assert len(cas.list_providers()) >= 1
    connector = cas.get_connector("sample")
    assert connector.slug == "sample"
    ids = [d.id for d in connector.datasets()]
    assert ids == [
        "sample:elevation",
        "sample:clay_0-5cm",
        "sample:land_cover",
        "sample:precipitation",
        "sample:slope",
        "sample:slope_m_per_km",
        "sample:aspect",
        "sample:prcp",
        "sample:tmin",
        "sample:tmax",
    ]
    land = connector.dataset("land_cover")
    assert land.variables[0].data_type is cas.DataType.CATEGORICAL
    assert land.variables[0].class_names and land.variables[0].class_names[40] == "cropland"
    assert connector.dataset("precipitation").temporal.temporal_type is cas.TemporalType.MONTHLY


def test_unknown_provider_is_a_key_error_listing_slugs():
    with pytest.raises(KeyError, match="unknown provider 'nope'; known providers: .*sample"):
        cas.get_connector("nope")
    with pytest.raises(UnknownProviderError):
        cas.get_connector("nope")


def test_unknown_dataset_lists_the_providers_datasets():
    with pytest.raises(UnknownDatasetError, match="no dataset 'curvature'.*'elevation'"):
        cas.get_connector("sample").dataset("curvature")


def test_provider_file_adds_a_provider(tmp_path: Path):
    catalog = make_catalog(tmp_path / "cat")
    yaml_file = provider_yaml(tmp_path / "mine.yaml", slug="mine", endpoint=catalog)
    cas.configure(provider_files=[yaml_file])
    assert "mine" in cas.list_providers()
    result = cas.extract_sync({"geometry": POINT, "dataset_ids": ["mine:height"]}).results[0]
    assert result.value == 104.0 and result.units == "m" and result.quality is cas.QualityFlag.GOOD


def test_provider_file_redefines_a_builtin(tmp_path: Path):
    catalog = make_catalog(tmp_path / "cat")
    yaml_file = provider_yaml(
        tmp_path / "sample.yaml", slug="sample", endpoint="cat/catalog.json", dataset="elevation"
    )  # relative endpoint: resolved against the YAML file's folder
    cas.configure(provider_files=[str(yaml_file)])
    connector = cas.get_connector("sample")
    assert connector.definition.endpoint == str(catalog.resolve())
    result = cas.extract_sync({"geometry": POINT, "dataset_ids": ["sample:elevation"]}).results[0]
    assert result.value == 104.0


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("slug: x\nprotocol: ftp\nendpoint: a\ndatasets: []", "protocol: Input should be"),
        (
            "slug: Bad Slug\nprotocol: stac_static\nendpoint: a\ndatasets: []",
            "slug: String should match",
        ),
        (
            "slug: x\nprotocol: stac_static\nendpoint: a\ndatasets: [{name: a}]",
            "datasets.0.variables: Field required",
        ),
        ("slug: [unclosed", "not valid YAML"),
        (
            "slug: x\nprotocol: stac_static\nendpoint: a\ncolour: red\ndatasets: []",
            "colour: Extra inputs",
        ),
        (
            "slug: x\nprotocol: stac_static\nendpoint: a\n"
            "datasets: [{name: a, variables: [{name: v, units: m, nodta_value: 0}]}]",
            "datasets.0.variables.0.nodta_value: Extra inputs",
        ),
    ],
)
def test_invalid_provider_files_name_the_problem(tmp_path: Path, content: str, message: str):
    bad = tmp_path / "bad.yaml"
    bad.write_text(content, encoding="utf-8")
    cas.configure(provider_files=[bad])
    with pytest.raises(ProviderDefinitionError, match=message) as info:
        cas.discover()
    assert str(bad) in str(info.value)


def test_missing_provider_file(tmp_path: Path):
    cas.configure(provider_files=[tmp_path / "nope.yaml"])
    with pytest.raises(ProviderDefinitionError, match="cannot read provider file .*nope.yaml"):
        cas.list_providers()


def test_entry_point_provider(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    catalog = make_catalog(tmp_path / "cat")
    plugin = tmp_path / "site"
    (plugin / "casplugin-1.0.dist-info").mkdir(parents=True)
    (plugin / "casplugin-1.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: casplugin\nVersion: 1.0\n", encoding="utf-8"
    )
    (plugin / "casplugin-1.0.dist-info" / "entry_points.txt").write_text(
        "[cas_xr.providers]\nplug = casplugin_mod:provider\n", encoding="utf-8"
    )
    (plugin / "casplugin_mod.py").write_text(
        "def provider():\n"
        f"    return {{'slug': 'plug', 'protocol': 'stac_static', 'endpoint': {str(catalog)!r},\n"
        "            'datasets': [{'name': 'height',\n"
        "                          'variables': [{'name': 'h', 'units': 'm'}]}]}\n",
        encoding="utf-8",
    )
    monkeypatch.syspath_prepend(str(plugin))
    assert "plug" in cas.discover()
    result = cas.extract_sync({"geometry": POINT, "dataset_ids": ["plug:height"]}).results[0]
    assert result.value == 104.0 and result.units == "m"
