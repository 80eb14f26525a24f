"""The ``cas-xr`` command line.

Sub-commands: ``extract`` (statistics of geometries as a table: JSON, GeoJSON, CSV or
GeoParquet), ``attributes`` (an attribute set such as ``camels`` as such a table),
``raster`` (a box of a dataset as a GeoTIFF), ``providers``, ``datasets``, ``health``
(each provider's test read), ``demo`` (every sample dataset for the sample catchments,
offline), ``serve`` (the OGC API - Processes service), ``client`` (talk to a service),
``version`` and ``show-versions``.

``extract`` is a view of :func:`cas_xr.extract_table`: the geometries are read into a
GeoDataFrame (GeoJSON, GeoPackage, Shapefile, GeoParquet, FlatGeobuf...) and computed in
one call.

Exit statuses: 0 success (for ``extract``: every result has a value); 1 a run-time
failure; 2 invalid arguments or input (files, geometries, dataset ids, time ranges,
limits, outputs); 3 some results of ``extract`` are MISSING or DEGRADED (with ``--strict``:
some are not GOOD), or some providers of ``health`` are not healthy; 4 every result is
MISSING, or no provider ``health`` tested answered. Errors are one ``error: ...`` line on
stderr; ``--debug`` adds the traceback. A dataset or geometry that fails does not stop
``extract`` (unless no geometry can be computed): its results are MISSING in the
``<dataset>_quality`` column, the table is written, and the warnings go to stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from pydantic import ValidationError

import cas_xr as cas
from cas_xr._cli._attributes import add_attributes
from cas_xr._cli._common import EXIT_ERROR, EXIT_OK, EXIT_USAGE, UsageError
from cas_xr._cli._health import add_health
from cas_xr._cli._output import add_table_options, output_format, writing
from cas_xr._cli._raster import add_raster
from cas_xr._cli._status import exit_status, quality_counts
from cas_xr.errors import (
    ArgumentTypeError,
    CasError,
    CasWarning,
    InvalidArgumentError,
    InvalidDatasetIdError,
    InvalidGeometryError,
    InvalidRequestError,
    LimitExceededError,
    OutputExistsError,
    UnknownProviderError,
)
from cas_xr.models import (
    AggregationMethod,
    AttributeResult,
    BatchAttributeRequest,
    BatchAttributeResponse,
    Dataset,
    QualityFlag,
    TemporalType,
    TimeRange,
)
from cas_xr.sample import sample_catchments_path

if TYPE_CHECKING:
    import geopandas as gpd
    import pandas as pd

__all__ = ["main"]

_TOP_CLASSES = 3
_VALUE_WIDTH = 25  # the demo's table fits 100 columns


_INPUT_ERRORS = (
    UsageError,
    InvalidArgumentError,
    ArgumentTypeError,
    InvalidGeometryError,
    InvalidDatasetIdError,
    UnknownProviderError,
    LimitExceededError,
    OutputExistsError,
)


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser that raises instead of printing usage and exiting."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see `{self.prog} --help`)")


# -- messages -----------------------------------------------------------------------------


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _validation_message(err: ValidationError) -> str:
    parts = []
    for item in err.errors(include_url=False):
        where = ".".join(str(p) for p in item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return f"invalid {err.title}: " + "; ".join(parts)


def _describe(err: Exception) -> tuple[int, str]:
    """Return the exit status and the one-line message for an exception."""
    if isinstance(err, InvalidRequestError) and isinstance(err.__cause__, ValidationError):
        err = err.__cause__
    if isinstance(err, ValidationError):
        return EXIT_USAGE, _one_line(_validation_message(err))
    code = EXIT_USAGE if isinstance(err, _INPUT_ERRORS) else EXIT_ERROR
    if isinstance(err, CasError | OSError | UsageError):
        return code, _one_line(str(err))
    return (
        EXIT_ERROR,
        f"unexpected {type(err).__name__}: {_one_line(str(err))} (rerun with --debug)",
    )


def _fail(err: Exception, *, debug: bool) -> int:
    if debug:
        traceback.print_exception(err)
    code, message = _describe(err)
    print(f"error: {message}", file=sys.stderr)
    return code


def _label(index: int, feature: Mapping[str, Any]) -> str:
    """How a feature is named in messages and tables: its id, else ``#index``."""
    properties = feature.get("properties")
    fid = properties.get("id") if isinstance(properties, Mapping) else None
    fid = fid if fid is not None else feature.get("id")
    return f"#{index}" if fid is None else str(fid)


def _report_warnings(labels: Sequence[str], warning_lists: Iterable[Iterable[str]]) -> None:
    """Print each geometry's response warnings (once each) on stderr, under its label."""
    lines = [
        f"  {label}: {w}"
        for label, ws in zip(labels, warning_lists, strict=True)
        for w in dict.fromkeys(ws)
    ]
    if lines:
        print(f"warnings ({len(lines)}):", *lines, sep="\n", file=sys.stderr)


def _print_row(cells: Sequence[str], widths: Sequence[int]) -> None:
    """One line of a table, written at once (a reader of a pipe sees it as it comes)."""
    line = "  ".join(cell.ljust(w) for cell, w in zip(cells, widths, strict=True)).rstrip()
    print(line, flush=True)


def _print_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    table = [list(header), *(list(r) for r in rows)]
    widths = [max(len(cell) for cell in column) for column in zip(*table, strict=True)]
    table.insert(1, ["-" * w for w in widths])
    for row in table:
        _print_row(row, widths)


# -- extract: input -----------------------------------------------------------------------

_GEOJSON_SUFFIXES = (".json", ".geojson")
_PARQUET_SUFFIXES = (".parquet", ".geoparquet")
_RESERVED = ("feature", "time")  # the table's own columns: input position, time step


def _source(spec: str) -> tuple[str | bytes, str, bool]:
    """GEOMETRY (inline GeoJSON, @file or a path) as GDAL reads it, its name, is it GeoJSON."""
    if not spec.removeprefix("@").strip():
        raise UsageError(
            "GEOMETRY is empty; give a vector file (GeoJSON, GeoPackage, Shapefile, "
            "GeoParquet, FlatGeobuf...), @file, or inline GeoJSON"
        )
    if spec.lstrip().startswith(("{", "[")):
        try:
            data = json.loads(spec)
        except json.JSONDecodeError as err:
            raise UsageError(f"invalid JSON in the inline GEOMETRY: {err}") from None
        if not isinstance(data, dict) or "type" not in data:
            raise UsageError(
                "the inline GEOMETRY is not a GeoJSON object (a Geometry, Feature or "
                "FeatureCollection)"
            )
        return spec.encode(), "the inline GEOMETRY", True
    path = spec.removeprefix("@")
    if not Path(path).exists():
        raise UsageError(
            f"geometry file {path!r} not found; GEOMETRY is a vector file (GeoJSON, "
            "GeoPackage, Shapefile, GeoParquet, FlatGeobuf...), @file, or inline GeoJSON such "
            'as \'{"type": "Point", "coordinates": [-96.5, 39.0]}\''
        )
    return path, repr(path), path.lower().endswith(_GEOJSON_SUFFIXES)


def _json_text(value: Any) -> Any:
    """A nested property value (object or array) as JSON text; others as they are."""
    import numpy as np

    if isinstance(value, np.ndarray):
        value = value.tolist()
    return json.dumps(value) if isinstance(value, dict | list) else value


def _labels(frame: gpd.GeoDataFrame) -> list[str]:
    """How rows are named in messages: the ``id`` column, else ``#position``."""
    import pandas as pd

    ids = frame["id"] if "id" in frame.columns else [None] * len(frame)
    return [f"#{i}" if pd.isna(fid) else str(fid) for i, fid in enumerate(ids)]


def _read_geometries(spec: str, crs: str | None) -> gpd.GeoDataFrame:
    """GEOMETRY as a GeoDataFrame: properties as columns, index ``feature`` (0, 1...).

    GeoJSON coordinates are in ``crs`` (default EPSG:4326); another file is read in the
    CRS it declares (``crs`` must then agree), else in ``crs``.
    """
    import pyogrio
    import pyproj
    import shapely
    from pyogrio.errors import DataLayerError, DataSourceError

    try:
        wanted = None if crs is None else pyproj.CRS.from_user_input(crs)
    except pyproj.exceptions.CRSError as err:
        raise UsageError(f"--geometry-crs {crs!r} is not recognised ({err})") from None
    source, name, geojson = _source(spec)
    unreadable = (DataSourceError, DataLayerError, shapely.errors.ShapelyError, ValueError)
    try:
        if isinstance(source, str) and source.lower().endswith(_PARQUET_SUFFIXES):
            import geopandas as gpd

            frame = gpd.read_parquet(source)  # GDAL's wheels have no Parquet driver
        else:
            frame = pyogrio.read_dataframe(source)
    except unreadable as err:
        raise UsageError(f"cannot read {name}: {_one_line(str(err))}") from None
    declared = None if geojson else frame.crs
    if declared is not None and wanted is not None and not declared.equals(wanted):
        raise UsageError(
            f"{name} is in {declared.to_string()}, not --geometry-crs {crs}; leave "
            "--geometry-crs out (the file's CRS is used) or reproject the file"
        )
    if declared is None:
        frame = frame.set_crs(wanted or "EPSG:4326", allow_override=True)
    if frame.empty:
        raise UsageError(f"{name} has no features")
    missing = [
        label for label, gone in zip(_labels(frame), frame.geometry.isna(), strict=True) if gone
    ]
    if missing:
        raise UsageError(f"{name}: feature(s) {', '.join(missing)} have no geometry")
    columns = [c for c in frame.columns if c != frame.geometry.name]
    for column in columns:
        if frame[column].dtype == object:
            frame[column] = frame[column].map(_json_text)
    renamed = {c: f"properties.{c}" for c in _RESERVED if c in columns}
    return frame.rename(columns=renamed).rename_axis("feature")


def _time_range(text: str) -> TimeRange:
    """Parse ``--time-range START/END`` (argparse ``type``)."""
    start, sep, end = text.partition("/")
    if not sep:
        raise argparse.ArgumentTypeError(f"{text!r} is not START/END, e.g. 2022-01-01/2022-12-31")
    try:
        return TimeRange.model_validate({"start": start, "end": end})
    except ValidationError as err:
        raise argparse.ArgumentTypeError(_validation_message(err)) from None


# -- extract: run -------------------------------------------------------------------------


def _cas_warnings(caught: Sequence[warnings.WarningMessage]) -> list[str]:
    """The messages of cas_xr's warnings; other warnings go on (shown with --debug)."""
    messages = []
    for w in caught:
        if issubclass(w.category, CasWarning):
            messages.append(_one_line(str(w.message)))
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return messages


def _refuse_uncomputable(table: gpd.GeoDataFrame, labels: Sequence[str]) -> None:
    """Raise if every geometry is at fault; else the table has them as MISSING."""
    problems = [f for f in table.attrs["cas_xr"]["failures"] if f["dataset_id"] is None]
    faulty = {i for f in problems for i in f["index"]}
    if len(faulty) < len(labels):
        return
    error = (
        LimitExceededError
        if all(f["kind"] == LimitExceededError.__name__ for f in problems)
        else InvalidGeometryError
    )
    raise error(
        "no geometry can be computed: "
        + "; ".join(f"{', '.join(labels[i] for i in f['index'])}: {f['message']}" for f in problems)
    )


def _emit(text: str, output: Path | None) -> None:
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")


def _json_value(value: Any) -> Any:
    """A JSON value for what ``json`` cannot write: numpy scalars, timestamps."""
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The rows as dicts (missing values None), for ``json.dumps(default=_json_value)``."""
    return frame.astype(object).where(frame.notna(), None).to_dict("records")


def _geojson(flat: gpd.GeoDataFrame, metadata: Mapping[str, Any]) -> str:
    """A FeatureCollection in EPSG:4326 (RFC 7946); the metadata as member ``cas_xr``."""
    import shapely

    records = _records(flat.drop(columns=flat.geometry.name))
    shapes = shapely.to_geojson(flat.geometry.to_crs("EPSG:4326").to_numpy())
    features = [
        {"type": "Feature", "properties": props, "geometry": json.loads(shape)}
        for props, shape in zip(records, shapes, strict=True)
    ]
    document = {"type": "FeatureCollection", "features": features, "cas_xr": metadata}
    return json.dumps(document, default=_json_value) + "\n"


def _write_table(table: gpd.GeoDataFrame, fmt: str, output: Path | None) -> None:
    """Write the table with its index as columns (``feature``, and ``time`` when long)."""
    flat = table.reset_index()
    metadata = table.attrs["cas_xr"]
    if fmt == "parquet":
        flat.attrs = {"cas_xr": metadata}
        flat.to_parquet(output)
        return
    if fmt == "geojson":
        _emit(_geojson(flat, metadata), output)
        return
    rows = flat.drop(columns=flat.geometry.name)
    if fmt == "csv":
        _emit(rows.to_csv(index=False), output)
        return
    document = {"rows": _records(rows), "cas_xr": metadata}
    _emit(json.dumps(document, indent=2, default=_json_value) + "\n", output)


def _is_temporal(dataset_id: str) -> bool:
    slug, _, name = dataset_id.partition(":")
    return cas.get_connector(slug).dataset(name).temporal.temporal_type is not TemporalType.STATIC


def _time_note(table: gpd.GeoDataFrame, dataset_ids: Sequence[str]) -> str | None:
    """Say that, and over which steps, a temporal dataset made the table long."""
    if "time" not in table.index.names:
        return None
    steps = table.index.get_level_values("time").unique().sort_values()
    temporal = ", ".join(d for d in dataset_ids if _is_temporal(d))
    span = f"{steps[0]:%Y-%m-%d} to {steps[-1]:%Y-%m-%d}" if len(steps) else "none"
    return (
        f"note: {temporal} is temporal: one row per geometry and time step ({len(steps)} "
        f"steps, {span}); --time-range START/END selects steps"
    )


def _statistics(values: Sequence[str] | None) -> str | list[str]:
    """``--stat`` values (repeated, or comma-separated): one name, or several."""
    names = list(dict.fromkeys(n.strip() for v in values or ["mean"] for n in v.split(",")))
    if "" in names:
        raise UsageError("--stat got an empty statistic name; e.g. --stat mean,max,p90")
    from cas_xr.engine._plan import check_names

    check_names(names, where="--stat")
    return names[0] if len(names) == 1 else names


def _cmd_extract(args: argparse.Namespace) -> int:
    fmt = output_format(args.format, args.output)
    statistics = _statistics(args.aggregation)
    frame = _read_geometries(args.geometry, args.geometry_crs)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CasWarning)
        table = cas.extract_table(
            frame, args.dataset_ids, aggregation=statistics, time_range=args.time_range
        )
    notes = _cas_warnings(caught)
    _refuse_uncomputable(table, _labels(frame))
    if notes:
        print(f"warnings ({len(notes)}):", *(f"  {n}" for n in notes), sep="\n", file=sys.stderr)
    note = _time_note(table, args.dataset_ids)
    if note is not None:
        print(note, file=sys.stderr)
    with writing(args.output):
        _write_table(table, fmt, args.output)
    if args.output is not None:
        print(f"wrote {fmt} to {args.output}", file=sys.stderr)
    counts = quality_counts(table, table.attrs["cas_xr"]["datasets"])
    status = exit_status(counts, strict=args.strict)
    if status != EXIT_OK:
        flags = ", ".join(f"{flag} {n}" for flag, n in sorted(counts.items()))
        print(f"exit status {status}: results by quality: {flags}", file=sys.stderr)
    return status


# -- catalog ------------------------------------------------------------------------------


def _cmd_providers(args: argparse.Namespace) -> int:
    specs = [cas.get_connector(slug).definition for slug in cas.list_providers()]
    if args.json:
        fields = {"slug", "name", "description", "protocol", "endpoint", "license", "citation"}
        providers = [
            {**spec.model_dump(mode="json", include=fields), "datasets": _ids(spec)}
            for spec in specs
        ]
        print(json.dumps(providers, indent=2))
        return 0
    rows = [[s.slug, s.protocol.value, str(len(s.datasets)), s.name] for s in specs]
    _print_table(("provider", "protocol", "datasets", "name"), rows)
    return 0


def _ids(spec: Any) -> list[str]:
    return [f"{spec.slug}:{d.name}" for d in spec.datasets]


def _dataset_row(ds: Dataset) -> list[str]:
    resolution = "-" if ds.resolution_m is None else f"{ds.resolution_m:g} m"
    return [
        ds.id,
        ", ".join(v.units for v in ds.variables),
        ", ".join(v.data_type.value for v in ds.variables),
        ds.temporal.temporal_type.value,
        resolution,
        ds.license or "-",
    ]


def _cmd_datasets(args: argparse.Namespace) -> int:
    datasets = cas.list_datasets(args.provider)
    if args.json:
        print(json.dumps([ds.model_dump(mode="json") for ds in datasets], indent=2))
        return 0
    header = ("id", "units", "data type", "temporal", "resolution", "license")
    _print_table(header, (_dataset_row(ds) for ds in datasets))
    return 0


# -- demo ---------------------------------------------------------------------------------

_DEMO_YEAR = ("2022-01-01", "2022-12-31")
_DEMO_RUNS: tuple[tuple[AggregationMethod, tuple[str, ...], tuple[str, str] | None], ...] = (
    (AggregationMethod.MEAN, ("sample:elevation", "sample:clay_0-5cm"), None),
    (AggregationMethod.DISTRIBUTION, ("sample:land_cover",), None),
    (AggregationMethod.MAJORITY, ("sample:land_cover",), None),
    (AggregationMethod.MEAN, ("sample:precipitation",), _DEMO_YEAR),
)


def _format_distribution(value: Mapping[str, float]) -> str:
    """The largest classes that fit ``_VALUE_WIDTH`` characters, and how many more there are."""
    ranked = [f"{name} {share:.0%}" for name, share in sorted(value.items(), key=lambda kv: -kv[1])]
    for n in range(min(len(ranked), _TOP_CLASSES), 0, -1):
        top, rest = ", ".join(ranked[:n]), len(ranked) - n
        for text in (f"{top}, +{rest} more", f"{top}, +{rest}") if rest else (top,):
            if len(text) <= _VALUE_WIDTH:
                return text
    return ranked[0]  # the largest class alone, however long its name


def _format_value(result: AttributeResult, class_names: Mapping[int, str] | None) -> str:
    value = result.value
    if value is None:
        return "n/a"
    if isinstance(value, dict):
        return _format_distribution(value)
    if class_names is not None and result.aggregation in (
        AggregationMethod.MAJORITY,
        AggregationMethod.MINORITY,
    ):
        return f"{class_names.get(int(value), '?')} ({value:g})"
    return f"{value:.2f}"


_DEMO_HEADER = ("catchment", "dataset", "statistic", "units", "quality", "cover", "value")


def _demo_row(label: str, result: AttributeResult, names: Mapping[int, str] | None) -> list[str]:
    return [
        label,
        result.dataset_id,
        result.aggregation.value,
        result.units,
        result.quality.value,
        f"{result.coverage_fraction:.2f}",
        _format_value(result, names),
    ]


def _quality_counts(results: Iterable[AttributeResult]) -> str:
    counts: dict[str, int] = {}
    for result in results:
        counts[result.quality.value] = counts.get(result.quality.value, 0) + 1
    return ", ".join(f"{flag} {n}" for flag, n in sorted(counts.items()))


def _demo_runs(features: Sequence[Mapping[str, Any]]) -> Iterator[BatchAttributeResponse]:
    """The response of each demo run, computed as it is asked for."""
    for aggregation, ids, time_range in _DEMO_RUNS:
        request = {
            "geometries": features,
            "dataset_ids": ids,
            "aggregation": aggregation,
            "time_range": time_range,
        }
        yield cas.batch_extract_sync(BatchAttributeRequest.model_validate(request))


def _demo_widths(labels: Sequence[str], units: Iterable[str]) -> list[int]:
    """Column widths known before any result (the value, last, is not padded)."""
    known = [
        labels,
        [i for _, ids, _ in _DEMO_RUNS for i in ids],
        [aggregation.value for aggregation, _, _ in _DEMO_RUNS],
        list(units),
        [flag.value for flag in QualityFlag],
        ["1.00"],
        [],
    ]
    return [
        max(map(len, [title, *cells])) for title, cells in zip(_DEMO_HEADER, known, strict=True)
    ]


#: The kernel family of every sample raster (uint8, int16 and float32 values).
_DEMO_FAMILY = "float32"


def _cmd_demo(args: argparse.Namespace) -> int:
    features = json.loads(sample_catchments_path().read_text("utf-8"))["features"]
    labels = [_label(i, f) for i, f in enumerate(features)]
    print(f"cas_xr demo: {len(features)} sample catchments (synthetic data, offline)\n", flush=True)
    from cas_xr.zonal._kernel import prepare  # after the first line: it imports xarray

    datasets = cas.list_datasets("sample")
    class_names = {(ds.id, v.name): v.class_names for ds in datasets for v in ds.variables}
    widths = _demo_widths(labels, (v.units for ds in datasets for v in ds.variables))
    _print_row(_DEMO_HEADER, widths)
    _print_row(["-" * w for w in widths], widths)
    prepare(_DEMO_FAMILY)  # compiled (on a first run) while the engine opens the rasters
    started = time.perf_counter()
    flat: list[AttributeResult] = []
    warned: list[list[str]] = [[] for _ in features]
    for run in _demo_runs(features):
        for label, response, notes in zip(labels, run.responses, warned, strict=True):
            for r in response.results:
                _print_row(_demo_row(label, r, class_names.get((r.dataset_id, r.variable))), widths)
            flat += response.results
            notes += response.warnings
    elapsed = time.perf_counter() - started
    print(f"\n{len(flat)} results in {elapsed:.1f} s; quality: {_quality_counts(flat)}")
    print(f"precipitation: the mean of the monthly totals {_DEMO_YEAR[0]}..{_DEMO_YEAR[1]}")
    _report_warnings(labels, warned)
    return 0


# -- service and client -------------------------------------------------------------------


def _cmd_serve(args: argparse.Namespace) -> int:
    from cas_xr.service import create_app  # first: names the extra when it is missing

    handler = logging.StreamHandler()  # the service's own lines, in uvicorn's format
    handler.setFormatter(logging.Formatter("%(levelname)s:     %(message)s"))
    service_logger = logging.getLogger("cas_xr.service")
    service_logger.addHandler(handler)
    service_logger.setLevel(args.log_level.upper())
    service_logger.propagate = False
    factory = "create_testing_app" if args.testing else "create_app"
    app: Any = f"cas_xr.service._app:{factory}" if args.workers > 1 else None
    if app is None:
        app = create_app(testing=args.testing)
    import uvicorn

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CasWarning)  # the responses carry them
        logging.captureWarnings(True)  # other warnings go to the server log
        # X-Forwarded-For counts only from the trusted_proxies setting (the app reads it)
        uvicorn.run(
            app,
            factory=args.workers > 1,
            host=args.host,
            port=args.port,
            workers=args.workers,
            log_level=args.log_level,
            proxy_headers=False,
        )
    return 0


def _positive(text: str) -> int:
    """Parse a positive integer (argparse ``type``)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return value


def _input(text: str) -> tuple[str, Any]:
    """Parse ``--input NAME=VALUE`` (VALUE as JSON, else as a string)."""
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=VALUE, e.g. duration=2")
    try:
        return name, json.loads(value)
    except json.JSONDecodeError:
        return name, value


def _read_inputs(text: str | None) -> dict[str, Any]:
    try:
        inputs = json.loads(text) if text else {}
    except json.JSONDecodeError as err:
        raise UsageError(f"--inputs is not valid JSON: {err}") from None
    if not isinstance(inputs, dict):
        raise UsageError("--inputs must be a JSON object, e.g. '{\"duration\": 2}'")
    return inputs


def _cmd_client(args: argparse.Namespace) -> int:
    from cas_xr.client import Client

    fields: dict[str, Any] = {} if args.url is None else {"api_url": args.url}
    if args.api_key is not None:
        fields |= {"auth_type": "api-key", "api_key": args.api_key}
    elif args.token is not None:
        fields |= {"auth_type": "token", "token": args.token, "use_bearer": True}
    with Client(**fields) as client:
        operation = args.operation
        if operation == "execute":
            inputs = _read_inputs(args.inputs)
            status = client.execute_process(args.id, {"inputs": {**inputs, **dict(args.input)}})
            result: Any = client.wait_for_job(status.jobID) if args.wait else status
        elif operation == "jobs":
            result = client.get_jobs(limit=args.limit, status=args.status, process_id=args.process)
        elif operation in ("process", "job", "results", "dismiss"):
            method = {
                "process": client.get_process,
                "job": client.get_job,
                "results": client.get_job_results,
                "dismiss": client.dismiss_job,
            }
            result = method[operation](args.id)  # fmt: skip
        else:
            result = getattr(client, f"get_{operation}")()
    print(repr(result))
    return 0


def _add_service(sub: argparse._SubParsersAction[_Parser], common: _Parser) -> None:
    p = sub.add_parser(
        "serve",
        parents=[common],
        help="run the OGC API - Processes service (uvicorn)",
        description="Run the OGC API - Processes service with uvicorn. It needs the 'service' "
        "extra: pip install 'cas-xr[service]' (from a clone: pip install '.[service]').",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8008, help="port (default: 8008)")
    p.add_argument(
        "--workers",
        type=_positive,
        default=1,
        help="worker processes (default: 1); with several, set rate_limit_storage_url to a "
        "Redis server so that they share one rate-limit budget",
    )
    p.add_argument(
        "--testing",
        action="store_true",
        help="also offer the demo processes sleep_a_while and primes_between",
    )
    p.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )
    p.set_defaults(run=_cmd_serve)

    p = sub.add_parser(
        "client",
        parents=[common],
        help="talk to a cas_xr (or any OGC API - Processes) service",
        description="Prints the service's answers as JSON.",
    )
    p.add_argument("--url", help="the service (default: $CAS_CLIENT_API_URL or port 8008 here)")
    auth = p.add_mutually_exclusive_group()
    auth.add_argument("--api-key", help="send this API key")
    auth.add_argument("--token", help="send this bearer token")
    ops = p.add_subparsers(dest="operation", required=True, metavar="OPERATION")
    for name, text in (
        ("capabilities", "the landing page"),
        ("conformance", "the conformance classes"),
        ("processes", "the processes"),
    ):
        ops.add_parser(name, help=text)
    for name, text in (
        ("process", "a process description"),
        ("job", "the status of a job"),
        ("results", "the results of a job"),
        ("dismiss", "cancel a job, or remove a finished one"),
    ):
        ops.add_parser(name, help=text).add_argument("id", metavar="ID")
    q = ops.add_parser("execute", help="start a job of a process")
    q.add_argument("id", metavar="PROCESS_ID")
    q.add_argument(
        "-i", "--input", type=_input, action="append", default=[], metavar="NAME=VALUE",
        help="an input (VALUE is JSON, else a string); repeat for several",
    )  # fmt: skip
    q.add_argument("--inputs", metavar="JSON", help="all inputs as one JSON object")
    q.add_argument("--wait", action="store_true", help="wait for the job; print its final status")
    q = ops.add_parser("jobs", help="the jobs")
    q.add_argument("--limit", type=int)
    q.add_argument("--status", action="append", help="only jobs with this status (repeatable)")
    q.add_argument("--process", action="append", help="only jobs of this process (repeatable)")
    p.set_defaults(run=_cmd_client)


# -- versions -----------------------------------------------------------------------------


def _cmd_version(args: argparse.Namespace) -> int:
    print(f"cas-xr {cas.__version__}")
    return 0


def _cmd_show_versions(args: argparse.Namespace) -> int:
    cas.show_versions()
    return 0


# -- parser -------------------------------------------------------------------------------


def _add_extract(sub: argparse._SubParsersAction[_Parser], common: _Parser) -> None:
    p = sub.add_parser(
        "extract",
        parents=[common],
        help="statistics of geometries for one or more datasets, as a table",
        description=(
            "Statistics of geometries (GeoJSON, GeoPackage, Shapefile, GeoParquet, "
            "FlatGeobuf, or any file GDAL reads) as a table: one row per geometry, in input "
            "order, with the input's properties and per dataset d the columns d_<statistic>, "
            "d_coverage_fraction, d_pixel_count and d_quality. With a temporal dataset the "
            "table is long: one row per geometry and time step."
        ),
    )
    p.add_argument(
        "geometry",
        metavar="GEOMETRY",
        help="a vector file (GeoJSON, GeoPackage, Shapefile, GeoParquet...), @file, or "
        "inline GeoJSON",
    )
    p.add_argument(
        "-d",
        "--dataset",
        dest="dataset_ids",
        metavar="DATASET_ID",
        action="append",
        required=True,
        help="a dataset id such as sample:elevation (repeat for several)",
    )
    p.add_argument(
        "-s",
        "--stat",
        "--aggregation",
        dest="aggregation",
        action="append",
        metavar="STATISTIC",
        help="a statistic (default: mean): mean, median, min, max, std, sum, count, majority, "
        "minority, unique, distribution, or a quantile such as p90; repeat it or separate "
        "names with commas for several",
    )
    p.add_argument(
        "--time-range",
        type=_time_range,
        metavar="START/END",
        help="ISO dates or datetimes, e.g. 2022-01-01/2022-12-31 (temporal datasets; an end "
        "date alone means through that day)",
    )
    add_table_options(
        p,
        format_help="output format (default: from the --output suffix, else json): json (rows "
        "and metadata), geojson (EPSG:4326), csv (rows), parquet (GeoParquet, with metadata)",
        output_help="write here, not to stdout",
        strict_help="exit with status 3 when any result is not GOOD (partial, suspect... too)",
    )
    p.set_defaults(run=_cmd_extract)


def _build_parser() -> _Parser:
    common = _Parser(add_help=False)
    common.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show tracebacks and Python warnings",
    )
    parser = _Parser(
        prog="cas-xr",
        parents=[common],
        description="Catchment attributes from remote geodata.",
        epilog=(
            "Exit status: 0 success; 1 run-time failure; 2 invalid arguments or input; "
            "extract: 3 some results missing or degraded (--strict: not good), 4 all missing; "
            "health: 3 some providers not healthy, 4 none answered."
        ),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {cas.__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_extract(sub, common)
    add_attributes(
        sub, common, time_range=_time_range, read_geometries=_read_geometries,
        labels_of=_labels, write_table=_write_table,
    )  # fmt: skip
    add_raster(sub, common, time_range=_time_range)
    p = sub.add_parser("providers", parents=[common], help="list the providers")
    p.add_argument("--json", action="store_true", help="as JSON, with each provider's dataset ids")
    p.set_defaults(run=_cmd_providers)
    p = sub.add_parser("datasets", parents=[common], help="list the datasets")
    p.add_argument("--provider", metavar="SLUG", help="only this provider's datasets")
    p.add_argument("--json", action="store_true", help="the full metadata as JSON")
    p.set_defaults(run=_cmd_datasets)
    add_health(sub, common, print_table=_print_table)
    p = sub.add_parser(
        "demo", parents=[common], help="every sample dataset for the sample catchments (offline)"
    )
    p.set_defaults(run=_cmd_demo)
    _add_service(sub, common)
    p = sub.add_parser("version", parents=[common], help="print the cas-xr version")
    p.set_defaults(run=_cmd_version)
    p = sub.add_parser(
        "show-versions", parents=[common], help="versions of Python, GDAL and dependencies"
    )
    p.set_defaults(run=_cmd_show_versions)
    return parser


def _echo_python_warnings(caught: Sequence[warnings.WarningMessage]) -> None:
    for w in caught:
        print(f"python warning: {w.category.__name__}: {w.message}", file=sys.stderr)


def _silence_stdout() -> None:
    """Point stdout at devnull so that the flush at exit does not fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def main(argv: list[str] | None = None) -> int:
    """Run the ``cas-xr`` command line.

    Parameters
    ----------
    argv
        The arguments after the program name; None for ``sys.argv[1:]``.

    Returns
    -------
    int
        The exit status: 0 on success, 1 for run-time failures, 2 for input errors; for
        ``extract``, 3 when some results are MISSING or DEGRADED (``--strict``: not GOOD)
        and 4 when every result is MISSING.

    Examples
    --------
    >>> from cas_xr.cli import main
    >>> main(["version"])  # doctest: +ELLIPSIS
    cas-xr ...
    0
    """
    try:
        args = _build_parser().parse_args(argv)
    except UsageError as err:
        return _fail(err, debug=False)
    except SystemExit as exit_:  # --help and --version print, then exit
        return int(exit_.code or 0)
    debug: bool = getattr(args, "debug", False)
    run: Callable[[argparse.Namespace], int] = args.run
    # the responses carry every cas_xr warning; Python warnings are recorded, shown with --debug
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        try:
            return run(args)
        except BrokenPipeError:  # the reader closed the pipe (`cas-xr datasets | head`)
            _silence_stdout()
            return 141
        except KeyboardInterrupt:
            print("error: interrupted", file=sys.stderr)
            return 130
        except Exception as err:
            return _fail(err, debug=debug)
        finally:
            if debug:
                _echo_python_warnings(caught)
