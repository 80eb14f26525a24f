"""The facade, the error tree and warnings (import lightness: test_import.py)."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

import cas_xr as cas
from cas_xr import errors

STABLE = {
    "extract", "batch_extract", "extract_raster", "extract_sync", "batch_extract_sync",
    "extract_raster_sync", "configure", "discover", "list_providers", "get_connector",
    "AttributeRequest", "BatchAttributeRequest", "AttributeResponse", "BatchAttributeResponse",
    "AttributeResult", "RasterResult", "Geometry", "BoundingBox", "TimeRange", "AggregationMethod",
    "OutputMode", "RasterResampling", "QualityFlag", "__version__",
}  # fmt: skip


def test_all_holds_the_documented_surface():
    assert set(cas.__all__) >= STABLE
    for name in cas.__all__:
        assert hasattr(cas, name), name
    assert cas.__version__.count(".") == 2


def test_error_tree():
    for cls in (
        errors.InvalidGeometryError, errors.InvalidDatasetIdError, errors.LimitExceededError,
        errors.ConfigurationError, errors.ProviderDefinitionError, errors.UnknownProviderError,
        errors.UnknownDatasetError, errors.SourceError, errors.RequestTimeoutError,
        errors.MissingDependencyError,
    ):  # fmt: skip
        assert issubclass(cls, errors.CasError)
    assert issubclass(errors.UnknownProviderError, KeyError)
    assert issubclass(errors.LimitExceededError, ValueError)
    assert issubclass(errors.RequestTimeoutError, TimeoutError)
    err = errors.SourceError("HTTP 503", provider="sample", url="http://x/y.tif", kind="http")
    assert str(err) == "HTTP 503 (provider 'sample' http://x/y.tif)" and err.kind == "http"


def test_strict_turns_warnings_into_errors():
    with pytest.raises(errors.QualityWarning), errors.strict():
        warnings.warn("partial coverage", errors.QualityWarning, stacklevel=1)
    with errors.strict(errors.SourceWarning), pytest.warns(errors.QualityWarning):
        warnings.warn("not escalated", errors.QualityWarning, stacklevel=1)


def test_strict_escalates_engine_warnings():
    k06 = {
        "type": "Polygon",
        "coordinates": [
            [[-96.66, 38.9], [-96.66, 38.96], [-96.75, 38.96], [-96.75, 38.9], [-96.66, 38.9]]
        ],
    }
    with pytest.raises(errors.QualityWarning, match="not GOOD"), errors.strict():
        cas.extract_sync({"geometry": k06, "dataset_ids": ["sample:elevation"]})


def test_show_versions(capsys: pytest.CaptureFixture[str]):
    text = cas.show_versions()
    assert "cas-xr: " in text and "GDAL: " in text and "xarray: " in text
    assert capsys.readouterr().out.strip() == text


def test_extract_raster_native_grid(tmp_path: Path):
    import rasterio

    result = cas.extract_raster_sync(
        "sample:elevation", bbox=(-112.05, 41.95, -111.95, 42.05), output_dir=tmp_path
    )
    assert Path(result.path) == tmp_path / "sample_elevation.tif"
    assert result.crs == "EPSG:4326" and result.shape == (100, 100) and result.nodata == -9999.0
    assert set(result.provenance["items"]) == {"elevation-U-north", "elevation-U-south"}
    with rasterio.open(result.path) as src:
        data = src.read(1)
        assert src.crs.to_epsg() == 4326 and src.nodata == -9999.0
        assert src.transform.c == pytest.approx(-112.05) and src.transform.f == pytest.approx(42.05)
    assert (data != -9999.0).all()
    assert data[:50].mean() > data[50:].mean()  # the north tile is offset upwards
    with pytest.raises(FileExistsError, match="overwrite=True"):
        cas.extract_raster_sync("sample:elevation", (-112.05, 41.95, -111.95, 42.05), tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sample_elevation.tif"]


def test_extract_raster_bad_input(tmp_path: Path):
    import pydantic

    bbox = (-112.05, 41.95, -111.95, 42.05)
    with pytest.raises(errors.InvalidRequestError, match="min_lon") as raised:
        cas.extract_raster_sync("sample:elevation", (-111.95, 41.95, -112.05, 42.05), tmp_path)
    assert isinstance(raised.value.__cause__, pydantic.ValidationError)
    with pytest.raises(errors.UnknownDatasetError):
        cas.extract_raster_sync("sample:curvature", bbox, tmp_path)
    (tmp_path / "afile").write_text("")
    with pytest.raises(ValueError, match="a file, not a folder"):
        cas.extract_raster_sync("sample:elevation", bbox, tmp_path / "afile")
    cas.configure(max_raster_pixels=100)
    with pytest.raises(errors.LimitExceededError, match="max_raster_pixels"):
        cas.extract_raster_sync("sample:elevation", bbox, tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["afile"]
