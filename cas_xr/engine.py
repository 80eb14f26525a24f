"""The async engine behind ``extract`` and ``batch_extract``.

Requests are validated and every dataset id resolved before any work. Each dataset then
runs in a worker thread (blocking reads never run on the event loop): it is opened
lazily once for the box around all geometries, and each geometry reads only its window.
A dataset or geometry that fails at run time yields a MISSING result with ``error`` and a
warning; the response always has one result per (geometry, dataset).
"""

from __future__ import annotations

import asyncio
import time
import uuid
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from cas_xr._cache import SettingsBoundCache
from cas_xr._quality import assess_quality
from cas_xr.catalog import Connector, resolve
from cas_xr.config import Settings, get_settings
from cas_xr.errors import (
    LimitExceededError,
    QualityWarning,
    RequestTimeoutError,
    SourceError,
    SourceWarning,
)
from cas_xr.models import (
    AggregationMethod,
    AttributeRequest,
    AttributeResponse,
    AttributeResult,
    BatchAttributeRequest,
    BatchAttributeResponse,
    DataType,
    Geometry,
    OutputMode,
    QualityFlag,
    ResultError,
    TimeRange,
    Variable,
)
from cas_xr.zonal import cells_under, summarize

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["batch_extract", "extract"]

_RESULTS: SettingsBoundCache[tuple[AttributeResult, list[str]]] = SettingsBoundCache(
    lambda s: (s.result_cache_ttl_s, s.result_cache_max_entries)
)


# Blocking reads run here, never on the event loop. Not the loop's default executor, so a
# timed-out request returns at once instead of waiting for its threads at loop shutdown.
_EXECUTOR = ThreadPoolExecutor(thread_name_prefix="cas_xr-engine")

_BBOX_PAD_DEG = 1e-6

# statistics of the classes present: over several time steps they pool every step's cells
_CLASS_STATS = {
    AggregationMethod.MAJORITY,
    AggregationMethod.MINORITY,
    AggregationMethod.UNIQUE,
    AggregationMethod.DISTRIBUTION,
}

_NUMERIC = {
    AggregationMethod.MEAN,
    AggregationMethod.MEDIAN,
    AggregationMethod.STD,
    AggregationMethod.SUM,
}


@dataclass(frozen=True)
class _Job:
    geometries: Sequence[Geometry]
    dataset_ids: Sequence[str]
    time_range: TimeRange | None
    aggregation: AggregationMethod
    geometry_crs: str


def _check_limits(job: _Job, settings: Settings) -> None:
    if len(job.dataset_ids) > settings.max_datasets_per_request:
        raise LimitExceededError(
            f"{len(job.dataset_ids)} datasets requested, more than max_datasets_per_request "
            f"({settings.max_datasets_per_request}); split the request or raise the setting"
        )
    for i, geom in enumerate(job.geometries):
        if geom.n_vertices > settings.max_polygon_vertices:
            raise LimitExceededError(
                f"geometry {i} has {geom.n_vertices} vertices, more than max_polygon_vertices "
                f"({settings.max_polygon_vertices}); simplify it (e.g. shapely "
                "simplify) or raise the setting"
            )


def _to_shapely(job: _Job, crs: Any) -> list[Any]:
    import pyproj
    import shapely

    shapes = [g.to_shapely() for g in job.geometries]
    source = pyproj.CRS.from_user_input(job.geometry_crs)
    target = pyproj.CRS.from_user_input(crs)
    if source.equals(target, ignore_axis_order=True):
        return shapes
    transformer = pyproj.Transformer.from_crs(source, target, always_xy=True)
    return [
        shapely.transform(s, lambda xy: np.column_stack(transformer.transform(xy[:, 0], xy[:, 1])))
        for s in shapes
    ]


def _cache_key(dataset_id: str, geom_hash: str, job: _Job, settings: Settings) -> tuple[Any, ...]:
    tr = job.time_range
    return (
        dataset_id,
        geom_hash,
        job.geometry_crs,
        job.aggregation.value,
        None if tr is None else (tr.start.isoformat(), tr.end.isoformat()),
        settings.zonal_weights,
    )


def _failure(
    dataset_id: str, connector: Connector, name: str, job: _Job, err: Exception
) -> tuple[AttributeResult, list[str]]:
    kind = err.kind if isinstance(err, SourceError) else type(err).__name__
    message = str(err) or type(err).__name__
    variable = connector.definition_of(name).variables[0]
    result = AttributeResult(
        dataset_id=dataset_id,
        variable=variable.name,
        value=None,
        units=variable.units,
        aggregation=job.aggregation,
        quality=QualityFlag.MISSING,
        coverage_fraction=0.0,
        pixel_count=0,
        provider=connector.slug,
        valid_range=variable.valid_range,
        error=ResultError(
            provider=connector.slug, dataset_id=dataset_id, kind=kind, message=message
        ),
    )
    return result, [f"{dataset_id}: failed ({kind}): {message}"]


def _window(da: xr.DataArray, geometry: Any) -> xr.DataArray:
    """The cells of ``da`` around ``geometry`` (bounds snapped outward, plus one cell)."""
    affine = da.odc.geobox.affine
    xmin, ymin, xmax, ymax = geometry.bounds
    cols = sorted(((~affine) @ (x, y))[0] for x in (xmin, xmax) for y in (ymin, ymax))
    rows = sorted(((~affine) @ (x, y))[1] for x in (xmin, xmax) for y in (ymin, ymax))
    c0, c1 = max(int(np.floor(cols[0])) - 1, 0), int(np.ceil(cols[-1])) + 1
    r0, r1 = max(int(np.floor(rows[0])) - 1, 0), int(np.ceil(rows[-1])) + 1
    return da.isel(x=slice(c0, c1), y=slice(r0, r1))


def _geometry_stats(
    da: xr.DataArray, geometry: Any, variable: Variable, job: _Job, settings: Settings
) -> tuple[float | dict[str, float] | None, float, int, Any]:
    """Value, coverage fraction, pixel count and timestamp of one geometry."""
    window = _window(da, geometry)
    if "time" in window.dims and job.time_range is None:
        window = window.isel(time=[-1])
    values = np.asarray(window.values)
    steps = values if "time" in window.dims else values[np.newaxis]
    times = list(window["time"].values) if "time" in window.dims else [None]
    affine = window.odc.geobox.affine if window.size else da.odc.geobox.affine
    cell_area = abs(affine.a * affine.e)
    nodata = da.attrs.get("nodata")
    per_step = [
        cells_under(s, affine, geometry, nodata=nodata, mode=settings.zonal_weights) for s in steps
    ]

    def coverage(weights: np.ndarray) -> float:
        if geometry.geom_type == "Point":
            return float(weights.size > 0)
        return min(float(weights.sum()) * cell_area / geometry.area, 1.0) if geometry.area else 0.0

    cover = float(np.mean([coverage(w) for _, w in per_step]))
    pixels = max(int(np.count_nonzero(w > 0)) for _, w in per_step)
    pooled = variable.data_type is DataType.CATEGORICAL or job.aggregation in _CLASS_STATS
    if pooled or len(per_step) == 1:
        v = np.concatenate([v for v, _ in per_step])
        w = np.concatenate([w for _, w in per_step])
        value = summarize(v, w, job.aggregation, class_names=variable.class_names)
        used = [t for (vals, _), t in zip(per_step, times, strict=True) if vals.size]
    else:
        step_values = [summarize(v, w, job.aggregation) for v, w in per_step]
        valid = [(x, t) for x, t in zip(step_values, times, strict=True) if x is not None]
        value = float(np.mean([x for x, _ in valid])) if valid else None
        used = [t for _, t in valid]
    timestamp = None if not used or used[-1] is None else _as_datetime(used[-1])
    return value, cover, pixels, timestamp


def _as_datetime(value: Any) -> Any:
    import pandas as pd

    return pd.Timestamp(value).tz_localize("UTC").to_pydatetime()


def _dataset_results(
    dataset_id: str,
    connector: Connector,
    name: str,
    job: _Job,
    hashes: list[str],
    settings: Settings,
) -> list[tuple[AttributeResult, list[str]]]:
    """Results of one dataset for every geometry (runs in a worker thread)."""
    cache = _RESULTS.current()
    keys = [_cache_key(dataset_id, h, job, settings) for h in hashes]
    out: list[tuple[AttributeResult, list[str]] | None] = [cache.get(k) for k in keys]
    todo = [i for i, hit in enumerate(out) if hit is None]
    if not todo:
        return [r for r in out if r is not None]
    definition = connector.definition_of(name)
    variable = definition.variables[0]
    lonlat = _to_shapely(job, "EPSG:4326")
    try:
        import odc.geo.xr  # noqa: F401  (registers the .odc accessor)
        import shapely

        x0, y0, x1, y1 = shapely.total_bounds([lonlat[i] for i in todo])
        # pad so that cells east/south of an edge-touching point (the point rule) are read
        pad = _BBOX_PAD_DEG
        bounds = (float(x0) - pad, float(y0) - pad, float(x1) + pad, float(y1) + pad)
        da = connector.open(name, bbox=bounds, time_range=job.time_range)
        native = _to_shapely(job, da.odc.crs)
    except Exception as err:  # any failure of a source becomes MISSING + error, not a lost result
        failed = _failure(dataset_id, connector, name, job, err)
        return [hit if hit is not None else failed for hit in out]
    provenance = {"dataset": dataset_id, **da.attrs.get("cas_provenance", {})}
    valid_range = variable.valid_range
    for i in todo:
        t0 = time.perf_counter()
        try:
            value, cover, pixels, timestamp = _geometry_stats(
                da, native[i], variable, job, settings
            )
        except Exception as err:  # one bad geometry must not sink the others
            out[i] = _failure(dataset_id, connector, name, job, err)
            continue
        flag, reason = assess_quality(
            value, cover, aggregation=job.aggregation, valid_range=valid_range, settings=settings
        )
        result = AttributeResult(
            dataset_id=dataset_id,
            variable=variable.name,
            value=value,
            units=variable.units,
            aggregation=job.aggregation,
            quality=flag,
            coverage_fraction=cover,
            pixel_count=pixels,
            timestamp=timestamp,
            provider=connector.slug,
            elapsed_ms=(time.perf_counter() - t0) * 1000,
            provenance={
                **provenance,
                "license": definition.license or connector.definition.license,
            },
            valid_range=valid_range,
        )
        notes = [] if reason is None else [f"{dataset_id}: {flag.value}: {reason}"]
        if variable.data_type is DataType.CATEGORICAL and job.aggregation in _NUMERIC:
            notes.append(
                f"{dataset_id}: the {job.aggregation.value} of class codes of categorical data "
                "is rarely meaningful; use majority, minority, unique or distribution"
            )
        out[i] = (result, notes)
        cache.set(keys[i], out[i])  # type: ignore[arg-type]
    return [r for r in out if r is not None]


async def _run(job: _Job) -> list[AttributeResponse]:
    settings = get_settings()
    _check_limits(job, settings)
    resolved = {ds: resolve(ds) for ds in job.dataset_ids}  # unknown ids fail before any work
    hashes = [g.geometry_hash() for g in job.geometries]
    started = time.perf_counter()
    try:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(settings.request_timeout_s):
            per_dataset = await asyncio.gather(
                *(
                    loop.run_in_executor(
                        _EXECUTOR, _dataset_results, ds, conn, name, job, hashes, settings
                    )
                    for ds, (conn, name) in resolved.items()
                )
            )
    except TimeoutError:
        raise RequestTimeoutError(
            f"the request took longer than request_timeout_s ({settings.request_timeout_s} s); "
            "request fewer geometries or datasets, or raise the setting"
        ) from None
    elapsed = (time.perf_counter() - started) * 1000
    responses = []
    for i, geom_hash in enumerate(hashes):
        pairs = [results[i] for results in per_dataset]
        responses.append(
            AttributeResponse(
                request_id=uuid.uuid4().hex,
                geometry_hash=geom_hash,
                results=[r.model_copy() for r, _ in pairs],
                warnings=[w for _, ws in pairs for w in ws],
                elapsed_ms=elapsed,
            )
        )
    _warn_summary(responses)
    return responses


def _warn_summary(responses: list[AttributeResponse]) -> None:
    results = [r for resp in responses for r in resp.results]
    failed = [r for r in results if r.error is not None]
    if failed:
        warnings.warn(
            f"{len(failed)} of {len(results)} results failed at run time: "
            + "; ".join(sorted({f"{r.dataset_id} ({r.error.kind})" for r in failed if r.error})),
            SourceWarning,
            stacklevel=3,
        )
    flagged = [r for r in results if r.quality is not QualityFlag.GOOD and r.error is None]
    if flagged:
        counts: dict[str, int] = {}
        for r in flagged:
            counts[r.quality.value] = counts.get(r.quality.value, 0) + 1
        summary = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))
        warnings.warn(
            f"{len(flagged)} of {len(results)} results are not GOOD ({summary}); "
            "see each response's warnings",
            QualityWarning,
            stacklevel=3,
        )


def _job(request: AttributeRequest | BatchAttributeRequest) -> _Job:
    geometries = (
        request.geometries if isinstance(request, BatchAttributeRequest) else [request.geometry]
    )
    return _Job(
        geometries=geometries,
        dataset_ids=request.dataset_ids,
        time_range=request.time_range,
        aggregation=request.aggregation,
        geometry_crs=request.geometry_crs,
    )


async def extract(request: AttributeRequest | dict[str, Any]) -> AttributeResponse:
    """Statistics of one geometry for one or more datasets.

    Parameters
    ----------
    request
        An :class:`~cas_xr.models.AttributeRequest` (or a dict validated as one) with
        ``output="stats"``.

    Returns
    -------
    AttributeResponse
        One :class:`~cas_xr.models.AttributeResult` per dataset, in request order.

    Raises
    ------
    pydantic.ValidationError
        If the request is malformed (the message names the field).
    InvalidDatasetIdError, UnknownProviderError, UnknownDatasetError
        If a dataset id is malformed or not in the catalog (before any work).
    LimitExceededError
        If the request exceeds ``max_datasets_per_request`` or ``max_polygon_vertices``.
    RequestTimeoutError
        If the request takes longer than ``request_timeout_s``.
    """
    request = AttributeRequest.model_validate(request)
    if request.output is OutputMode.RASTER:
        raise ValueError(
            "extract() computes statistics; for output='raster' call "
            "cas_xr.extract_raster(dataset_id, bbox, output_dir) instead"
        )
    (response,) = await _run(_job(request))
    return response


async def batch_extract(request: BatchAttributeRequest | dict[str, Any]) -> BatchAttributeResponse:
    """Statistics of up to 1,000 geometries for one or more datasets.

    Parameters
    ----------
    request
        A :class:`~cas_xr.models.BatchAttributeRequest` (or a dict validated as one).

    Returns
    -------
    BatchAttributeResponse
        One response per geometry, in request order, each with one result per dataset.

    Raises
    ------
    pydantic.ValidationError, InvalidDatasetIdError, UnknownProviderError,
    UnknownDatasetError, LimitExceededError, RequestTimeoutError
        As for :func:`extract`.
    """
    request = BatchAttributeRequest.model_validate(request)
    started = time.perf_counter()
    responses = await _run(_job(request))
    return BatchAttributeResponse(
        request_id=uuid.uuid4().hex,
        responses=responses,
        total_geometries=len(responses),
        total_results=sum(len(r.results) for r in responses),
        elapsed_ms=(time.perf_counter() - started) * 1000,
    )
