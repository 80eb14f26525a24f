"""Provider health, as CAS has it: each provider's test read, timed and judged.

A provider whose definition has a ``health`` test (a geometry, maybe a dataset, an
expected range and a time range) is checked by reading that dataset's cells around the
geometry, as an extraction would (same source, same retries and deadlines, no result
cache), and reducing them to one value: the mean, or the majority class of categorical
data. The states:

- ``healthy``: the value came, inside the expected range, within ``health_slow_ms``;
- ``degraded``: it came, but slower than ``health_slow_ms``, outside the expected range,
  without any valid cell, from valid cells covering less than ``quality_partial_below``
  of the geometry, or with some chunks unreadable;
- ``auth_gated``: the provider answered 401 or 403;
- ``down``: any other failure (unreachable, timeout, HTTP error, bad answer);
- ``unknown``: the definition has no ``health`` test.

``response_time_ms`` covers what the provider is asked (metadata and the cells' reads),
not the statistics computed on the cells afterwards (nor numba's first-run compilation,
nor Python's imports). Within one process, what the sources cache for
``metadata_cache_ttl_s`` (STAC items, COG headers and their decoded tiles) may serve a
later check; ``cas-xr health`` starts afresh each time.
"""

from __future__ import annotations

import asyncio
import importlib
import re
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from cas_xr.catalog import Connector, get_connector, list_providers
from cas_xr.config import Settings, get_settings
from cas_xr.engine import Target
from cas_xr.frontends._sync import run_sync
from cas_xr.models import DataType, HealthCheckResult, ProviderStatus

if TYPE_CHECKING:
    import xarray as xr

    from cas_xr.sources._definitions import HealthTest

__all__ = ["check_providers", "check_providers_sync", "http_status"]

_AUTH_STATUSES = (401, 403)
#: what the sources import on first use (odc-stac alone takes a second): imported before
#: the clock starts, since Python's imports are not the provider's time
_SOURCE_LIBRARIES = ("odc.stac", "pystac", "rasterio", "rioxarray", "xarray")
#: how HTTP statuses are spelled in messages: ours ("HTTP 403: ..."), GDAL's ("HTTP
#: response code: 403") and urllib's ("HTTP Error 403: Forbidden")
_STATUS_IN_MESSAGE = re.compile(r"\bHTTP(?: response code:| Error)? ?([45]\d\d)\b")


def _chain(err: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def http_status(err: BaseException) -> int | None:
    """The HTTP error status (4xx/5xx) behind an exception, if one caused it.

    Looks through the exception and its causes for a ``status_code``, ``status`` or
    ``code`` attribute (requests, aiohttp, urllib) or an HTTP status in the message
    (cas_xr's sources, GDAL).

    Parameters
    ----------
    err
        The exception.

    Returns
    -------
    int or None
    """
    for item in _chain(err):
        for name in ("status_code", "status", "code"):
            value = getattr(item, name, None)
            if isinstance(value, int) and 400 <= value < 600:
                return value
        response = getattr(item, "response", None)
        value = getattr(response, "status_code", None)
        if isinstance(value, int) and 400 <= value < 600:
            return value
    for item in _chain(err):
        found = _STATUS_IN_MESSAGE.search(str(item))
        if found:
            return int(found.group(1))
    return None


def _read(target: Target, test: HealthTest) -> tuple[xr.DataArray, int]:
    """The cells of the test box, read, and how many chunks failed (raised if all did)."""
    import dask

    bounds = test.geometry.to_shapely().bounds
    da = target.open(bounds, test.time_range, latest_step=test.time_range is None)
    flags = da.attrs.get("cas_failed_chunks")
    loaded, errors = dask.compute(da, flags, scheduler="threads")
    loaded.attrs.pop("cas_failed_chunks", None)
    failed = [] if errors is None else [e for e in np.ravel(errors) if e is not None]
    if failed and len(failed) == np.size(errors):
        raise failed[0]
    return loaded, len(failed)


def _value(
    target: Target, da: xr.DataArray, test: HealthTest, settings: Settings
) -> tuple[float | None, float]:
    """The test geometry's mean (majority class for categorical data) and valid coverage.

    The mean of the steps read (the latest step's class); the coverage is the smallest of
    the steps'. Computed by the engine's unit step (the one caller of the zonal kernel)
    on the cells already read.
    """
    import geopandas as gpd

    from cas_xr.engine._units import Member, Recipe, Unit, compute_unit, to_blocks

    categorical = target.variable.data_type is DataType.CATEGORICAL
    recipe = Recipe(
        ["majority" if categorical else "mean"], settings.zonal_weights, settings.area_weighted,
        scheduler="sync", small_cells=da.size,
    )  # fmt: skip
    geometries = gpd.GeoSeries([test.geometry.to_shapely()], crs="EPSG:4326")
    unit = Unit(np.array([0], dtype=np.intp), geometries, [Member(target, da)])
    ((_, block),) = to_blocks(unit, recipe, *compute_unit(unit, recipe))
    values = np.asarray(block.stats, dtype="float64").ravel()  # one per step
    values = values[np.isfinite(values)]
    coverage = float(np.min(block.coverage))
    if values.size == 0:
        return None, coverage
    return float(values[-1] if categorical else values.mean()), coverage


def _judge(
    value: float | None,
    coverage: float,
    failed_chunks: int,
    elapsed_ms: float,
    test: HealthTest,
    settings: Settings,
) -> list[str]:
    """Why a provider that answered is degraded (empty: it is healthy)."""
    problems = []
    if failed_chunks:
        problems.append(f"{failed_chunks} chunk(s) around the test geometry could not be read")
    if value is None:
        problems.append("no valid cell at the test geometry")
    elif coverage < settings.quality_partial_below:
        problems.append(
            f"valid cells cover {coverage:.0%} of the test geometry (quality_partial_below="
            f"{settings.quality_partial_below:g})"
        )
    if value is not None and test.expected_range is not None:
        low, high = test.expected_range
        if not low <= value <= high:
            problems.append(
                f"test value {value:g} is outside the expected range [{low:g}, {high:g}]"
            )
    slow_ms = settings.health_slow_ms
    if elapsed_ms > slow_ms:
        problems.append(f"answered in {elapsed_ms:.0f} ms, slower than health_slow_ms={slow_ms:g}")
    return problems


def _check(connector: Connector, settings: Settings) -> HealthCheckResult:
    definition = connector.definition
    common: dict[str, Any] = {
        "provider": connector.slug,
        "last_checked": datetime.now(UTC),
        "datasets_available": len(definition.datasets),
    }
    test, dataset = definition.health, definition.health_dataset
    if test is None or dataset is None:
        return HealthCheckResult(
            status=ProviderStatus.UNKNOWN,
            error="no test geometry (add a 'health' block to the provider definition)",
            **common,
        )
    common["expected_range"] = test.expected_range
    target = Target(f"{connector.slug}:{dataset.name}", connector, dataset.name)
    for library in _SOURCE_LIBRARIES:
        importlib.import_module(library)
    started = time.perf_counter()
    elapsed_ms: float | None = None
    try:
        da, failed_chunks = _read(target, test)
        elapsed_ms = (time.perf_counter() - started) * 1000
        value, coverage = _value(target, da, test, settings)
    except Exception as err:  # any failure is the provider's state, reported, not raised
        status = http_status(err)
        return HealthCheckResult(
            status=ProviderStatus.AUTH_GATED if status in _AUTH_STATUSES else ProviderStatus.DOWN,
            response_time_ms=elapsed_ms or (time.perf_counter() - started) * 1000,
            error=f"{type(err).__name__}: {err}",
            **common,
        )
    problems = _judge(value, coverage, failed_chunks, elapsed_ms, test, settings)
    return HealthCheckResult(
        status=ProviderStatus.DEGRADED if problems else ProviderStatus.HEALTHY,
        response_time_ms=elapsed_ms,
        test_value=value,
        error="; ".join(problems) or None,
        **common,
    )


async def check_providers(providers: str | Sequence[str] | None = None) -> list[HealthCheckResult]:
    """Check providers by reading each one's test geometry (concurrently).

    Parameters
    ----------
    providers
        A provider slug or several; None for every registered provider.

    Returns
    -------
    list of HealthCheckResult
        One per provider, in the order asked (sorted by slug for all): ``status`` is
        ``healthy``, ``degraded`` (slower than ``health_slow_ms``, value outside
        ``expected_range``, no valid cell, or chunks unreadable), ``auth_gated`` (HTTP 401
        or 403), ``down`` (any other failure; ``error`` says which) or ``unknown`` (no
        ``health`` test in the provider definition).

    Raises
    ------
    UnknownProviderError
        For a slug that is not registered (before any check).

    Examples
    --------
    >>> import cas_xr as cas
    >>> [r.status.value for r in cas.check_providers_sync("sample")]
    ['healthy']
    """
    slugs = [providers] if isinstance(providers, str) else list(providers or list_providers())
    connectors = [get_connector(slug) for slug in slugs]
    settings = get_settings()
    return list(await asyncio.gather(*(asyncio.to_thread(_check, c, settings) for c in connectors)))


def check_providers_sync(providers: str | Sequence[str] | None = None) -> list[HealthCheckResult]:
    """Blocking :func:`check_providers`; raises RuntimeError inside a running event loop."""
    return run_sync(check_providers(providers), awaitable="check_providers")
