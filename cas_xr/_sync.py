"""Blocking twins of the async API."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

__all__ = ["run_sync"]


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
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    coro.close()
    raise RuntimeError(
        f"{awaitable}_sync() cannot run inside a running event loop (Jupyter, FastAPI, "
        f"asyncio code); use `await cas_xr.{awaitable}(...)` instead"
    )
