"""Validation of the contract models: each bad input gets a specific message."""

from __future__ import annotations

import datetime as dt

import pydantic
import pytest
import shapely

import cas_xr as cas
from cas_xr.errors import InvalidDatasetIdError
from cas_xr.models import split_dataset_id

SQUARE = [[[-96.6, 39.0], [-96.5, 39.0], [-96.5, 39.1], [-96.6, 39.1], [-96.6, 39.0]]]


def _request(**kwargs: object) -> cas.AttributeRequest:
    fields: dict[str, object] = {
        "geometry": {"type": "Polygon", "coordinates": SQUARE},
        "dataset_ids": ["sample:elevation"],
    }
    fields.update(kwargs)
    return cas.AttributeRequest.model_validate(fields)


def test_enum_values_are_the_contract():
    assert [m.value for m in cas.AggregationMethod] == [
        "mean", "median", "min", "max", "std", "sum", "majority", "minority", "unique",
        "distribution",
    ]  # fmt: skip
    assert {q.value for q in cas.QualityFlag} == {
        "good", "suspect", "partial", "missing", "degraded", "estimated"
    }  # fmt: skip
    assert [m.value for m in cas.OutputMode] == ["stats", "raster"]
    assert [m.value for m in cas.RasterResampling] == ["nearest", "bilinear", "cubic", "average"]
    assert [t.value for t in cas.TemporalType] == [
        "static", "annual", "monthly", "daily", "hourly", "climatology"
    ]  # fmt: skip
    assert [t.value for t in cas.DataType] == ["continuous", "categorical"]


def test_request_defaults():
    req = _request()
    assert req.aggregation is cas.AggregationMethod.MEAN
    assert req.target_crs == "EPSG:4326"
    assert req.geometry_crs == "EPSG:4326"
    assert req.time_range is None
    assert req.output is cas.OutputMode.STATS
    assert not req.geometry.is_point


@pytest.mark.parametrize(
    "geometry",
    [
        {
            "type": "Feature",
            "properties": {"id": 1},
            "geometry": {"type": "Polygon", "coordinates": SQUARE},
        },
        shapely.Polygon(SQUARE[0]),
        cas.Geometry(type="Polygon", coordinates=SQUARE),
        {"type": "Polygon", "coordinates": tuple(tuple(tuple(p) for p in r) for r in SQUARE)},
    ],
    ids=["feature", "shapely", "model", "tuples"],
)
def test_geometry_accepts_features_shapely_and_models(geometry: object):
    assert _request(geometry=geometry).geometry == cas.Geometry(type="Polygon", coordinates=SQUARE)


@pytest.mark.parametrize(
    ("geometry", "message"),
    [
        ({"type": "Curve", "coordinates": [[0, 0], [1, 1]]}, "Curve' is not supported"),
        ({"type": "LineString", "coordinates": [[0, 0]]}, "at least 2 positions"),
        ({"type": "MultiPoint", "coordinates": [[0, "a"]]}, "must be numbers"),
        ({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [0, 0]]]}, "at least 4 positions"),
        ({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1]]]}, "not closed"),
        ({"type": "Point", "coordinates": [float("nan"), 1.0]}, "must be finite"),
        ({"type": "Point", "coordinates": ["a", 1.0]}, "must be numbers"),
        ({"type": "Point", "coordinates": [1.0]}, "[x, y] or [x, y, z]"),
        ({"type": "Point", "coordinates": [39.0, -196.5]}, "outside longitude -180..180"),
        ({"type": "FeatureCollection", "features": []}, "BatchAttributeRequest"),
        ({"type": "Feature", "geometry": None}, "has no geometry"),
        ({"type": "MultiPolygon", "coordinates": []}, "at least one polygon"),
        (
            {
                "type": "Polygon",
                "coordinates": [[[179, 0], [-179, 0], [-179, 1], [179, 1], [179, 0]]],
            },
            "crosses the antimeridian",
        ),
    ],
)
def test_invalid_geometries_say_what_is_wrong(geometry: object, message: str):
    with pytest.raises(
        pydantic.ValidationError, match=message.replace("[", r"\[").replace("]", r"\]")
    ):
        _request(geometry=geometry)


def test_projected_geometry_crs_skips_lonlat_range():
    req = _request(
        geometry={"type": "Point", "coordinates": [500000.0, 4300000.0]}, geometry_crs="EPSG:32614"
    )
    assert req.geometry.is_point


def test_unknown_crs_is_rejected():
    with pytest.raises(pydantic.ValidationError, match="not recognised"):
        _request(geometry_crs="EPSG:999999")


@pytest.mark.parametrize(
    "bad", ["elevation", "Sample:elevation", "sample:", ":x", "a b:c", "sample:elev ation"]
)
def test_malformed_dataset_ids(bad: str):
    with pytest.raises(pydantic.ValidationError, match="not of the form 'provider:name'"):
        _request(dataset_ids=[bad])
    with pytest.raises(InvalidDatasetIdError, match="provider:name"):
        split_dataset_id(bad)


def test_dataset_ids_required_and_unique():
    with pytest.raises(pydantic.ValidationError, match="at least 1 item"):
        _request(dataset_ids=[])
    with pytest.raises(pydantic.ValidationError, match="duplicates"):
        _request(dataset_ids=["sample:elevation", "sample:elevation"])


def test_time_range_order_and_sequences():
    tr = cas.TimeRange.model_validate(("2022-01-01", "2022-03-01"))
    assert tr.start.month == 1
    with pytest.raises(pydantic.ValidationError, match="is after its end"):
        cas.TimeRange(start="2022-03-01", end="2022-01-01")  # type: ignore[arg-type]


def test_a_date_alone_as_the_end_means_the_whole_day():
    last = dt.datetime(2022, 12, 31, 23, 59, 59, 999999)
    assert cas.TimeRange.model_validate(("2022-01-01", "2022-12-31")).end == last
    assert cas.TimeRange(start=dt.date(2022, 1, 1), end=dt.date(2022, 12, 31)).end == last
    assert cas.TimeRange.model_validate({"start": "2022-01-01", "end": " 2022-12-31 "}).end == last
    given = cas.TimeRange.model_validate(("2022-01-01", "2022-12-31T00:00"))
    assert given.start == dt.datetime(2022, 1, 1) and given.end == dt.datetime(2022, 12, 31)
    one_day = cas.TimeRange.model_validate(("2022-06-01", "2022-06-01"))
    assert one_day.end - one_day.start == dt.timedelta(days=1, microseconds=-1)
    with pytest.raises(pydantic.ValidationError, match="both have a time zone"):
        cas.TimeRange.model_validate(("2022-01-01T00:00Z", "2022-12-31"))


def test_bounding_box_order_and_forms():
    assert cas.BoundingBox.model_validate([-112.05, 41.95, -111.95, 42.05]).max_lat == 42.05
    d = {"min_lon": 1, "min_lat": 2, "max_lon": 3, "max_lat": 4}
    assert cas.BoundingBox.model_validate(d).as_tuple() == (1, 2, 3, 4)
    with pytest.raises(pydantic.ValidationError, match="min_lon .* must be less than max_lon"):
        cas.BoundingBox.model_validate((-111.95, 41.95, -112.05, 42.05))
    with pytest.raises(pydantic.ValidationError, match="min_lat .* must be less than max_lat"):
        cas.BoundingBox.model_validate((-112.05, 42.05, -111.95, 41.95))
    with pytest.raises(pydantic.ValidationError, match="less than or equal to 90"):
        cas.BoundingBox.model_validate((0, 0, 1, 91))
    with pytest.raises(pydantic.ValidationError, match="needs 4 numbers"):
        cas.BoundingBox.model_validate((0, 0, 1))


def test_batch_limit_is_1000_geometries():
    point = {"type": "Point", "coordinates": [-96.5, 39.0]}
    cas.BatchAttributeRequest(geometries=[point] * 1000, dataset_ids=["sample:elevation"])
    with pytest.raises(pydantic.ValidationError, match="at most 1000 items"):
        cas.BatchAttributeRequest(geometries=[point] * 1001, dataset_ids=["sample:elevation"])


def test_geometry_hash_is_stable_and_distinguishes():
    a = cas.Geometry(type="Polygon", coordinates=SQUARE)
    b = cas.Geometry.model_validate(shapely.Polygon(SQUARE[0]))
    c = cas.Geometry(type="Point", coordinates=[-96.5, 39.0])
    assert a.geometry_hash() == b.geometry_hash() != c.geometry_hash()
    assert len(a.geometry_hash()) == 32
    assert a.geometry_hash("EPSG:3857") != a.geometry_hash()  # the CRS is part of the key
    assert a.n_vertices == 5


def test_result_model_fields_and_error():
    result = cas.AttributeResult(
        dataset_id="sample:elevation", variable="elevation", value=None, units="m",
        aggregation="mean", quality="missing", coverage_fraction=0.0, pixel_count=0,
        provider="sample",
        error={"provider": "sample", "dataset_id": "sample:elevation", "kind": "http",
               "message": "503"},
    )  # fmt: skip
    assert result.error is not None and result.error.kind == "http"
    with pytest.raises(pydantic.ValidationError):
        cas.AttributeResult.model_validate({**result.model_dump(), "coverage_fraction": 1.5})
