"""The results of ``extract`` / ``batch-extract`` jobs as rows: for the page, CSV and GeoParquet.

One row per geometry and dataset, with the attribute's value, units, quality and
coverage. The geometries come from the job's stored inputs (GeoJSON geometries or
Features; a Feature's ``id`` or ``name`` property labels its row).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

__all__ = ["ATTRIBUTE_PROCESSES", "Row", "attribute_rows", "geometries_of", "to_csv", "to_parquet"]

#: The processes whose results are attribute tables.
ATTRIBUTE_PROCESSES = frozenset({"extract", "batch-extract"})


@dataclass(frozen=True)
class Row:
    """One attribute of one geometry."""

    geometry: int
    label: str
    dataset_id: str
    variable: str
    value: Any
    units: str
    aggregation: str
    quality: str
    coverage_fraction: float | None
    pixel_count: int | None
    timestamp: str | None
    provider: str
    error: str | None


def geometries_of(process_id: str, inputs: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """``(label, GeoJSON geometry)`` of each input geometry, in order."""
    given = [inputs.get("geometry")] if process_id == "extract" else inputs.get("geometries", [])
    found = []
    for i, item in enumerate(given or []):
        if not isinstance(item, Mapping):
            continue
        properties = item.get("properties") or {}
        name = item.get("id", properties.get("id", properties.get("name", i)))
        geometry = item.get("geometry", item) if item.get("type") == "Feature" else item
        found.append((str(name), dict(geometry or {})))
    return found


def attribute_rows(
    process_id: str, response: Mapping[str, Any], labels: Sequence[str] = ()
) -> list[Row]:
    """The rows of an ``extract`` or ``batch-extract`` response (its JSON)."""
    responses = [response] if process_id == "extract" else response.get("responses", [])
    rows = []
    for i, answer in enumerate(responses):
        label = labels[i] if i < len(labels) else str(i)
        for result in answer.get("results", []):
            error = result.get("error")
            rows.append(
                Row(
                    geometry=i,
                    label=label,
                    dataset_id=str(result.get("dataset_id", "")),
                    variable=str(result.get("variable", "")),
                    value=result.get("value"),
                    units=str(result.get("units") or ""),
                    aggregation=str(result.get("aggregation", "")),
                    quality=str(result.get("quality", "")),
                    coverage_fraction=result.get("coverage_fraction"),
                    pixel_count=result.get("pixel_count"),
                    timestamp=result.get("timestamp"),
                    provider=str(result.get("provider", "")),
                    error=error.get("message") if isinstance(error, Mapping) else None,
                )
            )
    return rows


def _cell(value: Any) -> Any:
    return json.dumps(value, sort_keys=True) if isinstance(value, dict) else value


#: A text cell starting with one of these is a formula to a spreadsheet (OWASP's list).
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def _text(value: Any) -> Any:
    """A cell of the CSV: text a spreadsheet would run as a formula is quoted with ``'``."""
    value = _cell(value)
    return f"'{value}" if isinstance(value, str) and value.startswith(_FORMULA) else value


def to_csv(rows: Sequence[Row]) -> str:
    """The rows as CSV (a distribution's value as a JSON object).

    Text that a spreadsheet would read as a formula (``=``, ``+``, ``-``, ``@`` first: a
    dataset id or warning from a provider file) gets a leading ``'``; numbers stay.
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([f.name for f in fields(Row)])
    for row in rows:
        writer.writerow(["" if v is None else _text(v) for v in asdict(row).values()])
    return out.getvalue()


def to_parquet(
    rows: Sequence[Row], geometries: Sequence[tuple[str, dict[str, Any]]], crs: str
) -> bytes:
    """The rows as GeoParquet, each with its geometry."""
    import geopandas as gpd
    import shapely.geometry

    shapes = [shapely.geometry.shape(geometry) for _, geometry in geometries]
    records = [{**asdict(row), "value": _cell(row.value)} for row in rows]
    frame = gpd.GeoDataFrame(
        records, geometry=[shapes[row.geometry] for row in rows], crs=crs or "EPSG:4326"
    )
    if frame["value"].map(lambda v: isinstance(v, str)).any():
        frame["value"] = frame["value"].astype("string")
    out = io.BytesIO()
    frame.to_parquet(out)
    return out.getvalue()
