"""The ``extract-table`` process: many geometries in, a GeoParquet table out.

The geometries come inline: a GeoJSON FeatureCollection, or a GeoParquet file as base64
(``{"value": "...", "mediaType": "application/vnd.apache.parquet"}``); the service never
fetches an ``href``. The output ``table`` is :func:`cas_xr.extract_table`'s table as
GeoParquet (its metadata in the file, local paths redacted), sent by value (base64) or by
reference: a download link under ``/jobs/{jobId}/results/table``, behind the same
authentication as the rest of the API.
"""

from __future__ import annotations

import base64
import binascii
import io
import math
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, WithJsonSchema

from cas_xr.engine._plan import check_names
from cas_xr.errors import InvalidStatisticError, LimitExceededError
from cas_xr.frontends import extract_table_reporting
from cas_xr.models import TimeRange
from cas_xr.service._executor import JobContext
from cas_xr.service._jobs import FileOutput
from cas_xr.service._options import ServiceOptions
from cas_xr.service._problems import InvalidInputError
from cas_xr.service._processes import Output, Process, check_datasets
from cas_xr.service._redact import redact

if TYPE_CHECKING:
    import geopandas as gpd

__all__ = ["PARQUET", "ExtractTableInputs", "extract_table_process"]

PARQUET = "application/vnd.apache.parquet"
_RESERVED = ("feature", "time")  # the table's own columns: input position, time step
#: A table is computed in about this many batches (of at least _MIN_BATCH geometries),
#: reporting progress and checking for dismissal in between
_STEPS, _MIN_BATCH = 10, 500
_GeoParquet = Annotated[
    str, WithJsonSchema({"type": "string", "format": "binary", "contentMediaType": PARQUET})
]


class ExtractTableInputs(BaseModel):
    """The inputs of ``extract-table``."""

    model_config = ConfigDict(extra="forbid")

    features: dict[str, Any] = Field(
        description="A GeoJSON FeatureCollection, or a GeoParquet file inline: "
        "{'value': <base64>, 'mediaType': 'application/vnd.apache.parquet'}"
    )
    dataset_ids: list[str] = Field(min_length=1)
    aggregation: str | list[str] = "mean"
    time_range: TimeRange | None = None
    geometry_crs: str = "EPSG:4326"
    _frame: Any = PrivateAttr(default=None)


def _read(inputs: ExtractTableInputs) -> gpd.GeoDataFrame:
    """The geometries (and properties) of ``features``, index ``feature`` (0, 1...)."""
    import geopandas as gpd

    features = inputs.features
    if "href" in features:
        raise InvalidInputError(
            "features: this service never fetches an href; send the geometries inline, as "
            "a FeatureCollection or as GeoParquet {'value': <base64>, 'mediaType': "
            f"'{PARQUET}'}}"
        )
    try:
        if features.get("type") == "FeatureCollection":
            frame = gpd.GeoDataFrame.from_features(features, crs=inputs.geometry_crs)
        elif "value" in features and features.get("mediaType", PARQUET) == PARQUET:
            data = base64.b64decode(features["value"], validate=True)
            frame = gpd.read_parquet(io.BytesIO(data))
            if frame.crs is None:
                frame = frame.set_crs(inputs.geometry_crs)
        else:
            raise InvalidInputError(
                "features must be a GeoJSON FeatureCollection or GeoParquet inline "
                f"{{'value': <base64>, 'mediaType': '{PARQUET}'}}"
            )
    except (binascii.Error, TypeError, ValueError, KeyError, OSError) as err:
        if isinstance(err, InvalidInputError):
            raise
        raise InvalidInputError(f"features cannot be read: {err}") from None
    if frame.empty:
        raise InvalidInputError("features holds no feature")
    renamed = {c: f"properties.{c}" for c in _RESERVED if c in frame.columns}
    return frame.rename(columns=renamed).reset_index(drop=True).rename_axis("feature")


def _check(inputs: ExtractTableInputs, options: ServiceOptions) -> None:
    frame = _read(inputs)
    if len(frame) > options.max_table_geometries:
        raise LimitExceededError(
            f"{len(frame)} geometries, more than max_table_geometries "
            f"({options.max_table_geometries}); split the table"
        )
    check_datasets(inputs.dataset_ids, options)
    try:
        check_names(inputs.aggregation, where="the service")
    except InvalidStatisticError as err:
        raise InvalidInputError(f"aggregation: {err}") from None
    inputs._frame = frame


def _extract_table(
    inputs: ExtractTableInputs, context: JobContext, options: ServiceOptions
) -> dict[str, Any]:
    frame = inputs._frame

    def report(done: int, total: int) -> None:
        context.report(100 * done / total, f"{done} of {total} results done")

    context.check()
    batch_size = max(_MIN_BATCH, math.ceil(len(frame) / _STEPS))
    table = extract_table_reporting(
        frame, inputs.dataset_ids, report, aggregation=inputs.aggregation,
        time_range=inputs.time_range, batch_size=batch_size,
    )  # fmt: skip
    context.check()
    flat = table.reset_index()
    flat.attrs = {"cas_xr": redact(table.attrs["cas_xr"])}
    buffer = io.BytesIO()
    flat.to_parquet(buffer)
    return {"table": FileOutput(PARQUET, buffer.getvalue())}


def extract_table_process() -> Process:
    """The ``extract-table`` process."""
    return Process(
        id="extract-table",
        title="Zonal statistics of a table of geometries",
        description=(
            "cas_xr.extract_table over many geometries (a FeatureCollection, or GeoParquet "
            "as base64): one row per geometry (and time step), with the input's properties, "
            "each statistic, coverage, pixel count and quality per dataset, as GeoParquet; "
            "reports progress as batches of geometries are computed. "
            "Ask for the output by reference ('outputs': {'table': {'transmissionMode': "
            "'reference'}}) to download it as a file."
        ),
        model=ExtractTableInputs,
        outputs={"table": Output(_GeoParquet, "GeoParquet table", "The table, as GeoParquet.")},
        function=_extract_table,
        check=_check,
        input_docs={
            "features": "The geometries: a GeoJSON FeatureCollection, or GeoParquet "
            f"{{'value': <base64>, 'mediaType': '{PARQUET}'}}. Never fetched from an href.",
            "dataset_ids": "Dataset ids such as 'sample:elevation'.",
            "aggregation": "A statistic or a list of them (mean, max, p90, distribution...).",
            "time_range": "Time steps of temporal datasets to keep (default: every step).",
            "geometry_crs": "The CRS of FeatureCollection coordinates (GeoParquet: its own).",
        },
        transmission=("value", "reference"),
    )
