"""The async engine behind ``extract`` and ``batch_extract``.

Requests are validated and every dataset id resolved before any work. Each dataset then
runs in a worker thread (blocking reads never run on the event loop): it is opened
lazily once for the box around all geometries, and each geometry reads only its window.
A dataset or geometry that fails at run time yields a MISSING result with ``error`` and a
warning; the response always has one result per (geometry, dataset).

Results are cached in memory (``result_cache_ttl_s``, ``result_cache_max_entries``) and,
when ``result_cache_dir`` is set, on disk (see :mod:`cas_xr.engine._store`); the pixels are
computed on the scheduler :func:`cas_xr.engine._scheduler.current_scheduler` picks.
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from cas_xr.catalog import Connector, resolve
from cas_xr.config import Settings, SettingsBoundCache, get_settings
from cas_xr.engine._aggregate import GeometryValue, failure_kind, open_window, zonal_values
from cas_xr.engine._progress import Silent, progress_bar
from cas_xr.engine._quality import assess_quality
from cas_xr.engine._store import digest, persistent_store
from cas_xr.errors import (
    InvalidGeometryError,
    LimitExceededError,
    QualityWarning,
    RequestTimeoutError,
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

__all__ = ["Report", "batch_extract", "batch_extract_reporting", "extract"]

#: ``report(done, total)``: how many of a request's results (geometry x dataset) are made
Report = Callable[[int, int], None]

_RESULTS: SettingsBoundCache[tuple[AttributeResult, list[str]]] = SettingsBoundCache(
    lambda s: (s.result_cache_ttl_s, s.result_cache_max_entries)
)


# Blocking reads run here, never on the event loop. Not the loop's default executor, so a
# timed-out request returns at once instead of waiting for its threads at loop shutdown.
_EXECUTOR = ThreadPoolExecutor(thread_name_prefix="cas_xr-engine")

_STORE_VERSION = 1  # bump when the stored form of a result changes

# a reporting batch computes each dataset in about this many groups of geometries (of at
# least _MIN_GROUP), all over the one window opened for the batch
_PROGRESS_STEPS = 10
_MIN_GROUP = 25
#: batch_extract shows a progress bar (``progress`` setting) from this many results on
_BAR_MIN_RESULTS = 100

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


def _stored_key(key: tuple[Any, ...], connector: Connector, settings: Settings) -> bytes:
    """The persistent-cache key: the memory key plus what else shapes a stored result."""
    return digest(
        "engine",
        _STORE_VERSION,
        key,
        connector.definition.model_dump_json(),
        settings.area_weighted,
        settings.quality_missing_below,
        settings.quality_partial_below,
    )


def _from_store(
    keys: list[tuple[Any, ...]], connector: Connector, settings: Settings
) -> dict[int, tuple[AttributeResult, list[str]]]:
    """The results of ``keys`` found in the persistent cache, by position."""
    store = persistent_store()
    if store is None or not keys:
        return {}
    stored = [_stored_key(k, connector, settings) for k in keys]
    found = store.get_many(stored)
    out = {}
    for i, key in enumerate(stored):
        if key in found:
            record = json.loads(found[key])
            out[i] = (AttributeResult.model_validate(record["result"]), record["notes"])
    return out


def _to_store(
    items: list[tuple[tuple[Any, ...], tuple[AttributeResult, list[str]]]],
    connector: Connector,
    settings: Settings,
) -> None:
    store = persistent_store()
    if store is None:
        return
    store.put_many(
        (
            _stored_key(key, connector, settings),
            json.dumps({"result": r.model_dump(mode="json"), "notes": notes}).encode(),
        )
        for key, (r, notes) in items
    )


def _failure(
    dataset_id: str, connector: Connector, name: str, job: _Job, err: Exception
) -> tuple[AttributeResult, list[str]]:
    kind = failure_kind(err)
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


class _Progress:
    """Counts the results of a request as they are made, and reports them (thread-safe).

    ``report(done, total)`` runs in the engine's worker threads, under a lock so that the
    counts it sees rise; an exception it raises stops the request.
    """

    def __init__(self, geometries: int, datasets: int, report: Report | None) -> None:
        self.total = geometries * datasets
        self.done = 0
        self._report = report
        self._lock = threading.Lock()
        # how many geometries to compute at a time: all at once unless reporting
        self.group_size = (
            None if report is None else max(_MIN_GROUP, math.ceil(geometries / _PROGRESS_STEPS))
        )

    def add(self, count: int) -> None:
        """Count ``count`` more results made, and report."""
        if self._report is None or count == 0:
            return
        with self._lock:
            self.done += count
            self._report(self.done, self.total)


def _dataset_results(
    dataset_id: str,
    connector: Connector,
    name: str,
    job: _Job,
    hashes: list[str],
    settings: Settings,
    progress: _Progress,
) -> list[tuple[AttributeResult, list[str]]]:
    """Results of one dataset for every geometry (runs in a worker thread)."""
    cache = _RESULTS.current()
    keys = [_cache_key(dataset_id, h, job, settings) for h in hashes]
    out: list[tuple[AttributeResult, list[str]] | None] = [cache.get(k) for k in keys]
    misses = [i for i, hit in enumerate(out) if hit is None]
    for j, hit in _from_store([keys[i] for i in misses], connector, settings).items():
        out[misses[j]] = hit
        cache.set(keys[misses[j]], hit)
    todo = [i for i, hit in enumerate(out) if hit is None]
    progress.add(len(out) - len(todo))
    if not todo:
        return [r for r in out if r is not None]
    definition = connector.definition_of(name)
    variable = definition.variables[0]
    lonlat = _to_shapely(job, "EPSG:4326")
    import shapely

    try:
        import odc.geo.xr  # noqa: F401  (registers the .odc accessor)

        x0, y0, x1, y1 = (float(v) for v in shapely.total_bounds([lonlat[i] for i in todo]))
        da = open_window(connector, name, (x0, y0, x1, y1), job.time_range)
        native = _to_shapely(job, da.odc.crs)
    except Exception as err:  # any failure of a source becomes MISSING + error, not a lost result
        failed = _failure(dataset_id, connector, name, job, err)
        progress.add(len(todo))
        return [hit if hit is not None else failed for hit in out]
    provenance = {
        "dataset": dataset_id,
        **da.attrs.get("cas_provenance", {}),
        "license": definition.license or connector.definition.license,
    }
    if "time" in da.dims and job.time_range is None:
        da = da.isel(time=[-1])  # the latest step
    valid = [i for i in todo if native[i].is_valid]
    for i in set(todo) - set(valid):
        reason = shapely.is_valid_reason(native[i])
        error = InvalidGeometryError(
            f"geometry {i} is invalid ({reason}); repair it, e.g. with shapely.make_valid"
        )
        out[i] = _failure(dataset_id, connector, name, job, error)
    progress.add(len(todo) - len(valid))
    groups = zonal_values(
        da, [native[i] for i in valid], variable, job.aggregation, settings,
        group_size=progress.group_size,
    )  # fmt: skip
    done = 0
    while done < len(valid):
        t0 = time.perf_counter()
        try:
            values = next(groups)
        except Exception as err:  # a failed read becomes MISSING + error for these geometries
            failed = _failure(dataset_id, connector, name, job, err)
            for i in valid[done:]:
                out[i] = failed
            progress.add(len(valid) - done)
            break
        elapsed = (time.perf_counter() - t0) * 1000
        group = valid[done : done + len(values)]
        computed = [
            (
                keys[i],
                _result(dataset_id, connector, variable, job, gv, elapsed, provenance, settings),
            )
            for i, gv in zip(group, values, strict=True)
        ]
        for i, (_, pair) in zip(group, computed, strict=True):
            out[i] = pair
        # a degraded result is not kept: a later request may read every chunk
        fresh = [item for item, gv in zip(computed, values, strict=True) if not gv.degraded]
        for key, pair in fresh:
            cache.set(key, pair)
        _to_store(fresh, connector, settings)
        done += len(values)
        progress.add(len(values))  # outside the try: a cancellation stops the request
    return [r for r in out if r is not None]


def _result(
    dataset_id: str,
    connector: Connector,
    variable: Variable,
    job: _Job,
    gv: GeometryValue,
    elapsed: float,
    provenance: dict[str, Any],
    settings: Settings,
) -> tuple[AttributeResult, list[str]]:
    """The result of one geometry and its notes (why it is not GOOD, what to beware of)."""
    flag, reason = assess_quality(
        gv.value, gv.coverage_fraction, aggregation=job.aggregation,
        valid_range=variable.valid_range, settings=settings, degraded=gv.degraded,
    )  # fmt: skip
    result = AttributeResult(
        dataset_id=dataset_id,
        variable=variable.name,
        value=gv.value,
        units=variable.units,
        aggregation=job.aggregation,
        quality=flag,
        coverage_fraction=gv.coverage_fraction,
        pixel_count=gv.pixel_count,
        timestamp=gv.timestamp,
        provider=connector.slug,
        elapsed_ms=elapsed,
        provenance=provenance,
        valid_range=variable.valid_range,
    )
    notes = [] if reason is None else [f"{dataset_id}: {flag.value}: {reason}"]
    if variable.data_type is DataType.CATEGORICAL and job.aggregation in _NUMERIC:
        notes.append(
            f"{dataset_id}: the {job.aggregation.value} of class codes of categorical data "
            "is rarely meaningful; use majority, minority, unique or distribution"
        )
    return result, notes


async def _run(job: _Job, report: Report | None = None) -> list[AttributeResponse]:
    settings = get_settings()
    _check_limits(job, settings)
    resolved = {ds: resolve(ds) for ds in job.dataset_ids}  # unknown ids fail before any work
    hashes = [g.geometry_hash() for g in job.geometries]
    progress = _Progress(len(hashes), len(resolved), report)
    started = time.perf_counter()
    try:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(settings.request_timeout_s):
            per_dataset = await asyncio.gather(
                *(
                    loop.run_in_executor(
                        _EXECUTOR, _dataset_results, ds, conn, name, job, hashes, settings, progress
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

    From 100 results (geometries x datasets) on, a progress bar shows the results made
    (``progress`` setting); the answer is the same with or without it.

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
    total = len(request.geometries) * len(request.dataset_ids)
    if total < _BAR_MIN_RESULTS:
        return await _batch(request, None)
    bar = progress_bar(total, desc="batch_extract")
    if isinstance(bar, Silent):  # no bar: compute in one go
        return await _batch(request, None)
    shown = 0

    def report(done: int, _: int) -> None:  # under the engine's progress lock
        nonlocal shown
        bar.update(done - shown)
        shown = done

    try:
        return await _batch(request, report)
    finally:
        bar.close()


async def batch_extract_reporting(
    request: BatchAttributeRequest, report: Report
) -> BatchAttributeResponse:
    """:func:`batch_extract`, reporting progress as groups of geometries are computed.

    The answer is the one :func:`batch_extract` gives: each dataset is opened once for the
    whole batch, and only its computation is split into about ten groups (of at least 25
    geometries) so that ``report`` can be called in between.

    Parameters
    ----------
    request
        The batch.
    report
        Called as ``report(done, total)`` with the count of results (geometry x dataset)
        made so far, from worker threads; an exception it raises stops the request and is
        raised here.
    """
    return await _batch(request, report)


async def _batch(request: BatchAttributeRequest, report: Report | None) -> BatchAttributeResponse:
    started = time.perf_counter()
    responses = await _run(_job(request), report)
    return BatchAttributeResponse(
        request_id=uuid.uuid4().hex,
        responses=responses,
        total_geometries=len(responses),
        total_results=sum(len(r.results) for r in responses),
        elapsed_ms=(time.perf_counter() - started) * 1000,
    )
