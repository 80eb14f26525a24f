"""Blocking twins of the async API."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from cas_xr.errors import EventLoopError
from cas_xr.frontends._raster import extract_raster
from cas_xr.frontends._responses import batch_extract, extract_blocking
from cas_xr.models import (
    AttributeRequest,
    AttributeResponse,
    BatchAttributeRequest,
    BatchAttributeResponse,
    BoundingBox,
    RasterResult,
)

T = TypeVar("T")

__all__ = ["batch_extract_sync", "extract_raster_sync", "extract_sync", "run_sync"]


def run_sync(coro: Coroutine[Any, Any, T], *, awaitable: str) -> T:
    """Run ``coro`` to completion with :func:`asyncio.run`.

    Parameters
    ----------
    coro
        The coroutine to run.
    awaitable
        The name of the async function to suggest inside a running event loop.

    Raises
    ------
    RuntimeError
        When called from a running event loop (e.g. Jupyter), naming ``await <awaitable>``.
    """
    try:
        _no_running_loop(awaitable)
    except EventLoopError:
        coro.close()
        raise
    return asyncio.run(coro)


def _no_running_loop(awaitable: str) -> None:
    """Raise :class:`EventLoopError` in a running event loop, naming ``await <awaitable>``."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise EventLoopError(
        f"{awaitable}_sync() cannot run inside a running event loop (Jupyter, FastAPI, "
        f"asyncio code); use `await cas_xr.{awaitable}(...)` instead"
    )


def extract_sync(request: AttributeRequest | dict[str, Any]) -> AttributeResponse:
    """Blocking :func:`~cas_xr.extract`; raises RuntimeError inside a running event loop."""
    _no_running_loop("extract")
    return extract_blocking(request)


def batch_extract_sync(request: BatchAttributeRequest | dict[str, Any]) -> BatchAttributeResponse:
    """Blocking :func:`~cas_xr.batch_extract`; raises RuntimeError inside a running event loop."""
    return run_sync(batch_extract(request), awaitable="batch_extract")


def extract_raster_sync(
    dataset_id: str,
    bbox: BoundingBox | tuple[float, float, float, float] | list[float] | dict[str, float],
    output_dir: str | Path,
    **kwargs: Any,
) -> RasterResult:
    """Blocking :func:`~cas_xr.extract_raster`; raises RuntimeError inside a running event loop."""
    return run_sync(
        extract_raster(dataset_id, bbox, output_dir, **kwargs), awaitable="extract_raster"
    )
