"""Responses as table rows: one row per (geometry, dataset), for CSV, GeoParquet and pandas."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from cas_xr.models import AttributeResponse, AttributeResult

__all__ = ["RESULT_COLUMNS", "response_rows"]

RESULT_COLUMNS = (
    "dataset_id",
    "variable",
    "value",
    "units",
    "aggregation",
    "quality",
    "coverage_fraction",
    "pixel_count",
    "timestamp",
    "error",
)
_RESERVED = {"feature", "geometry", *RESULT_COLUMNS}


def _result_columns(result: AttributeResult) -> dict[str, Any]:
    error = result.error
    return {
        "dataset_id": result.dataset_id,
        "variable": result.variable,
        "value": result.value,
        "units": result.units,
        "aggregation": result.aggregation.value,
        "quality": result.quality.value,
        "coverage_fraction": result.coverage_fraction,
        "pixel_count": result.pixel_count,
        "timestamp": result.timestamp,
        "error": None if error is None else f"{error.kind}: {error.message}",
    }


def _feature_columns(index: int, feature: Mapping[str, Any]) -> dict[str, Any]:
    """``feature`` (the index), ``id`` and the properties of a GeoJSON Feature.

    Nested property values become JSON text; a property whose name is taken by a result
    column is renamed ``properties.<name>``.
    """
    columns: dict[str, Any] = {"feature": index, "id": feature.get("id")}
    properties = feature.get("properties")
    for key, value in (properties if isinstance(properties, Mapping) else {}).items():
        name = f"properties.{key}" if key in _RESERVED else key
        columns[name] = json.dumps(value) if isinstance(value, Mapping | list) else value
    return columns


def response_rows(
    responses: Sequence[AttributeResponse], features: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """One row per result, carrying the feature's index, id and properties.

    Parameters
    ----------
    responses
        The responses, one per geometry, in request order.
    features
        The GeoJSON Features (or bare geometries) the responses belong to, in the same order.

    Returns
    -------
    list of dict
        Rows with ``feature``, ``id``, the feature properties and :data:`RESULT_COLUMNS`.
        ``value`` is a number, or JSON text for every row when any value is a dict (a
        ``distribution``), so that the column has one type.

    Raises
    ------
    ValueError
        If ``responses`` and ``features`` differ in length.
    """
    rows = [
        {**_feature_columns(i, feature), **_result_columns(result)}
        for i, (response, feature) in enumerate(zip(responses, features, strict=True))
        for result in response.results
    ]
    if any(isinstance(row["value"], dict) for row in rows):
        for row in rows:
            row["value"] = None if row["value"] is None else json.dumps(row["value"])
    return rows
