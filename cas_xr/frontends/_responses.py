"""``extract`` and ``batch_extract``: the CAS responses, a view of the engine's cube.

A request becomes a plan (:func:`cas_xr.engine.make_plan`) and is computed in a worker
thread (blocking reads never run on the event loop) under ``request_timeout_s``; each
(geometry, dataset) cell of the cube then becomes an :class:`AttributeResult` by the
contract's temporal rules: without a time range, the latest step; with one, the mean of
the per-step values of continuous data (the timestamp is the last step used) and the
class shares pooled over every step for class statistics.
"""

from __future__ import annotations

import asyncio
import functools
import json
import math
import sys
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from datetime import datetime
from typing import Any

import numpy as np

from cas_xr.config import Settings, get_settings
from cas_xr.engine import (
    CLASS_STATISTICS,
    FLAGS,
    Plan,
    Report,
    Result,
    Target,
    assess_quality,
    class_value,
    compute,
    make_plan,
    warn_summary,
)
from cas_xr.errors import InvalidArgumentError, LimitExceededError, RequestTimeoutError
from cas_xr.frontends._cubes import BATCH_SIZE
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
    validated,
)

__all__ = ["Report", "batch_extract", "batch_extract_reporting", "extract", "extract_together"]

# Blocking reads run here, never on the event loop. Not the loop's default executor, so a
# timed-out request returns at once instead of waiting for its threads at loop shutdown.
_EXECUTOR = ThreadPoolExecutor(thread_name_prefix="cas_xr-engine")

# a reporting batch is computed in about this many groups of geometries (of at least
# _MIN_GROUP), reporting progress in between
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
_DEGRADED = FLAGS.index(QualityFlag.DEGRADED)

_Request = AttributeRequest | BatchAttributeRequest


@functools.lru_cache(maxsize=32)
def _crs(text: str) -> Any:
    """The pyproj CRS of ``geometry_crs``, parsed once (a GeoSeries parses text every time)."""
    import pyproj

    return pyproj.CRS.from_user_input(text)


def _plan(
    request: _Request, geometries: Sequence[Geometry], batch_size: int, settings: Settings
) -> Plan:
    """The request's plan; a geometry over a limit fails the request (as in CAS)."""
    import geopandas as gpd

    method = request.aggregation
    series = gpd.GeoSeries([g.to_shapely() for g in geometries], crs=_crs(request.geometry_crs))
    plan = make_plan(
        series, request.dataset_ids,
        aggregation="distribution" if method in CLASS_STATISTICS else method.value,
        time_range=request.time_range, batch_size=batch_size, settings=settings,
        latest_step=request.time_range is None,
    )  # fmt: skip
    for problem in plan.problems:
        if problem.kind == LimitExceededError.__name__:
            i = int(problem.positions[0])
            raise LimitExceededError(
                f"geometry {i} has {geometries[i].n_vertices} vertices, more than "
                f"max_polygon_vertices ({plan.settings.max_polygon_vertices}); simplify it "
                "(e.g. shapely simplify) or raise the setting"
            )
    return plan


def _timestamp(value: Any) -> datetime:
    import pandas as pd

    stamp = pd.Timestamp(value)
    return (stamp if stamp.tzinfo else stamp.tz_localize("UTC")).to_pydatetime()


def _errors(result: Result) -> dict[tuple[str | None, int], tuple[str, str]]:
    """``(dataset_id or None, position) -> (kind, message)`` of the failed results."""
    out: dict[tuple[str | None, int], tuple[str, str]] = {}
    for failure in json.loads(result.cube.attrs["cas_failures"]):
        for position in failure["index"]:  # the plan's series has a RangeIndex
            out[(failure["dataset_id"], int(position))] = (failure["kind"], failure["message"])
    return out


class _View:
    """The results of one dataset of a computed plan, geometry by geometry."""

    def __init__(self, result: Result, target: Target, method: AggregationMethod) -> None:
        cube, d = result.cube.variables, target.dataset_id  # no DataArray is built
        n = len(result.plan.series)
        self.target, self.method, self.variable = target, method, target.variable
        self.settings = result.plan.settings
        self.coverage = cube[f"{d}_coverage_fraction"].values.reshape(n, -1)
        self.pixels = cube[f"{d}_pixel_count"].values.reshape(n, -1)
        self.degraded = (cube[f"{d}_quality"].values.reshape(n, -1) == _DEGRADED).any(axis=1)
        temporal = "time" in cube[f"{d}_pixel_count"].dims
        self.times = cube["time"].values if temporal else np.array([None])
        if method in CLASS_STATISTICS:
            self.dist = cube[f"{d}_distribution"].values.reshape(n, self.times.size, -1)
            self.classes = cube[f"{d}_class"].values
        else:
            self.steps = cube[d].values.reshape(n, self.times.size)
        self.hits = result.hits.get(d, {})
        self.provenance = result.provenance[d]
        self.license = target.metadata()["license"]

    def value(self, g: int) -> tuple[float | dict[str, float] | None, float, int, Any]:
        """Value, coverage, pixel count and the last step used of geometry ``g``."""
        own = ~np.isnan(self.coverage[g])  # the dataset's own steps
        used = own & (self.pixels[g] > 0)
        coverage = float(np.mean(self.coverage[g][own])) if own.any() else 0.0
        pixels = int(self.pixels[g][own].max()) if own.any() else 0
        if not used.any():
            return None, coverage, pixels, None
        if self.method in CLASS_STATISTICS:
            weights = self.coverage[g][used][:, None] * self.dist[g][used]
            fractions = weights.sum(axis=0) / weights.sum()
            value = class_value(fractions, self.classes, self.method, self.variable.class_names)
        else:
            value = float(np.mean(self.steps[g][used]))
        return value, coverage, pixels, self.times[used][-1]

    def result(self, g: int, elapsed_ms: float) -> tuple[AttributeResult, list[str]]:
        """The result of geometry ``g`` and its notes (why it is not GOOD, what to beware of)."""
        target, variable, method = self.target, self.variable, self.method
        value, coverage, pixels, last = self.value(g)
        flag, reason = assess_quality(
            value, coverage, aggregation=method, valid_range=variable.valid_range,
            settings=self.settings, degraded=bool(self.degraded[g]),
        )  # fmt: skip
        result = AttributeResult(
            dataset_id=target.dataset_id,
            variable=variable.name,
            value=value,
            units=variable.units,
            aggregation=method,
            quality=flag,
            coverage_fraction=min(max(coverage, 0.0), 1.0),
            pixel_count=pixels,
            timestamp=None if last is None else _timestamp(last),
            provider=target.provider,
            elapsed_ms=elapsed_ms,
            provenance={
                "dataset": target.dataset_id,
                "provider": target.provider,
                **self.provenance.of(g),
                "license": self.license,
                **({"computed_elapsed_ms": self.hits[g]} if g in self.hits else {}),
            },
            valid_range=variable.valid_range,
            cached=g in self.hits,
        )
        notes = [] if reason is None else [f"{target.dataset_id}: {flag.value}: {reason}"]
        if variable.data_type is DataType.CATEGORICAL and method in _NUMERIC:
            notes.append(
                f"{target.dataset_id}: the {method.value} of class codes of categorical data "
                "is rarely meaningful; use majority, minority, unique or distribution"
            )
        return result, notes

    def failure(self, kind: str, message: str) -> tuple[AttributeResult, list[str]]:
        """The MISSING result of a failed computation, with its error."""
        target, variable = self.target, self.variable
        result = AttributeResult(
            dataset_id=target.dataset_id,
            variable=variable.name,
            value=None,
            units=variable.units,
            aggregation=self.method,
            quality=QualityFlag.MISSING,
            coverage_fraction=0.0,
            pixel_count=0,
            provider=target.provider,
            valid_range=variable.valid_range,
            error=ResultError(
                provider=target.provider, dataset_id=target.dataset_id, kind=kind, message=message
            ),
        )
        return result, [f"{target.dataset_id}: failed ({kind}): {message}"]


def responses_of(result: Result, method: AggregationMethod) -> list[AttributeResponse]:
    """The CAS responses of a computed plan: one per geometry, one result per dataset.

    Warns (:class:`~cas_xr.errors.BatchFailureWarning`,
    :class:`~cas_xr.errors.QualityWarning`) about failed and non-GOOD results.
    """
    plan = result.plan
    views = [_View(result, t, method) for t in plan.targets]
    errors = _errors(result)
    responses = []
    flagged: dict[tuple[str, str], list[Any]] = {}
    failures = 0
    for g, key in enumerate(plan.keys):
        pairs = []
        for view in views:
            d = view.target.dataset_id
            error = errors.get((d, g)) or errors.get((None, g))
            if error is not None:
                pairs.append(view.failure(*error))
                failures += 1
                continue
            pair = view.result(g, result.elapsed_ms)
            if pair[0].quality is not QualityFlag.GOOD:
                seen = flagged.setdefault((d, pair[0].quality.value), [0, pair[1][0]])
                seen[0] += 1
            pairs.append(pair)
        responses.append(
            AttributeResponse(
                request_id=uuid.uuid4().hex,
                geometry_hash=key,
                results=[r for r, _ in pairs],
                warnings=[w for _, notes in pairs for w in notes],
                elapsed_ms=result.elapsed_ms,
            )
        )
    warn_summary(
        json.loads(result.cube.attrs["cas_failures"]), flagged,
        failed=failures, results=len(plan.keys) * len(plan.targets),
    )  # fmt: skip
    return responses


def _computation(
    request: _Request,
    geometries: Sequence[Geometry],
    report: Report | None,
    desc: str,
    min_bar: int,
) -> tuple[functools.partial[Result], float]:
    """The request's planned computation (to run on ``_EXECUTOR``) and its timeout (s)."""
    settings = get_settings()
    groups = max(_MIN_GROUP, math.ceil(len(geometries) / _PROGRESS_STEPS))
    plan = _plan(request, geometries, BATCH_SIZE if report is None else groups, settings)
    run = functools.partial(compute, plan, report=report, min_bar=min_bar, desc=desc)
    return run, settings.request_timeout_s


def _timed_out(timeout: float) -> RequestTimeoutError:
    return RequestTimeoutError(
        f"the request took longer than request_timeout_s ({timeout} s); "
        "request fewer geometries or datasets, or raise the setting"
    )


async def _responses(
    request: _Request,
    geometries: Sequence[Geometry],
    report: Report | None = None,
    desc: str = "extract",
    *,
    min_bar: int = _BAR_MIN_RESULTS,
) -> list[AttributeResponse]:
    run, timeout = _computation(request, geometries, report, desc, min_bar)
    try:
        async with asyncio.timeout(timeout):
            result = await asyncio.get_running_loop().run_in_executor(_EXECUTOR, run)
    except TimeoutError:
        raise _timed_out(timeout) from None
    return responses_of(result, request.aggregation)


def _extract_request(request: AttributeRequest | dict[str, Any]) -> AttributeRequest:
    request = validated(AttributeRequest, request)
    if request.output is OutputMode.RASTER:
        raise InvalidArgumentError(
            "extract() computes statistics; for output='raster' call "
            "cas_xr.extract_raster(dataset_id, bbox, output_dir) instead"
        )
    return request


def extract_blocking(request: AttributeRequest | dict[str, Any]) -> AttributeResponse:
    """:func:`extract` for a caller without an event loop (``extract_sync``).

    The same plan, computation and timeout, without building and closing an event loop
    for each call: the computation runs on the engine's thread, waited for here.
    """
    request = _extract_request(request)
    run, timeout = _computation(request, [request.geometry], None, "extract", _BAR_MIN_RESULTS)
    future = _EXECUTOR.submit(run)
    if not wait([future], timeout).done:
        raise _timed_out(timeout)
    (response,) = responses_of(future.result(), request.aggregation)
    return response


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
    request = _extract_request(request)
    (response,) = await _responses(request, [request.geometry])
    return response


async def extract_together(requests: Sequence[AttributeRequest]) -> list[AttributeResponse]:
    """:func:`extract` of several requests that differ only in their geometry, as one batch.

    What a service does with many small requests at once: one plan, one run and one
    result-cache lookup for all of them, so each pays a share of the fixed costs. Each
    response holds what :func:`extract` of its request gives, but ``elapsed_ms``, the
    time of the whole call; no progress bar is shown.

    Parameters
    ----------
    requests
        Validated requests (``output="stats"``), equal but for ``geometry``.

    Returns
    -------
    list of AttributeResponse
        One per request, in order.

    Raises
    ------
    InvalidArgumentError
        If the requests differ in anything but their geometry, or ask for a raster.
    LimitExceededError, RequestTimeoutError
        As for :func:`extract`.
    """
    first = requests[0]
    if first.output is OutputMode.RASTER or any(
        r.model_copy(update={"geometry": first.geometry}) != first for r in requests[1:]
    ):
        raise InvalidArgumentError(
            "extract_together() takes statistics requests that differ only in their "
            "geometry; call extract() for each request instead"
        )
    # a service's many small requests: no progress bar
    return await _responses(first, [r.geometry for r in requests], min_bar=sys.maxsize)


async def batch_extract(request: BatchAttributeRequest | dict[str, Any]) -> BatchAttributeResponse:
    """Statistics of up to 1,000 geometries for one or more datasets.

    From 100 results (geometries x datasets) to compute on, a progress bar shows the
    results made (``progress`` setting); the answer is the same with or without it.

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
    return await _batch(validated(BatchAttributeRequest, request), None)


async def batch_extract_reporting(
    request: BatchAttributeRequest, report: Report
) -> BatchAttributeResponse:
    """:func:`batch_extract`, reporting progress as groups of geometries are computed.

    The geometries are computed in about ten spatially compact groups (of at least 25),
    and ``report`` is called in between; the values are those :func:`batch_extract` gives.

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
    responses = await _responses(request, request.geometries, report, "batch_extract")
    return BatchAttributeResponse(
        request_id=uuid.uuid4().hex,
        responses=responses,
        total_geometries=len(responses),
        total_results=sum(len(r.results) for r in responses),
        elapsed_ms=(time.perf_counter() - started) * 1000,
    )
