"""Saying what a first run waits for: numba compiling the statistics kernels.

Nothing is said when the kernels come from numba's cache. When numba does compile one of
cas_xr's functions, one line is logged (logger ``cas_xr.zonal``) and, with the
``progress`` setting on, a tqdm bar of the compiled functions runs on stderr, out of the
number the caller expects (so it shows what remains, and for how long); should fewer
need compiling (some were cached), the bar ends where they did, and should more, it
grows.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from cas_xr.config import get_settings

__all__ = ["ANNOUNCEMENT", "announced_compilation"]

ANNOUNCEMENT = "preparing the statistics kernels, first run only"

_log = logging.getLogger("cas_xr.zonal")


def _is_ours(event: Any) -> bool:
    dispatcher = (event.data or {}).get("dispatcher")
    module = getattr(getattr(dispatcher, "py_func", None), "__module__", "") or ""
    return module.startswith("cas_xr.")


def _counter(total: int | None) -> Any:
    """A tqdm bar on stderr (or a notebook widget), or None with ``progress=False``."""
    if not get_settings().progress:
        return None
    try:
        with warnings.catch_warnings():
            # tqdm.auto warns when a notebook lacks ipywidgets, then falls back to text
            warnings.simplefilter("ignore")
            from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(desc=ANNOUNCEMENT, unit=" functions", total=total, leave=True)


class _Announcer:
    """Listens to numba's compile events: announces the first of ours, counts them all."""

    def __init__(self, total: int | None) -> None:
        self.total = total
        self.started: float | None = None
        self.compiled = 0
        self.bar: Any = None

    def on_start(self, event: Any) -> None:
        if self.started is None and _is_ours(event):
            self.started = time.perf_counter()
            _log.info("%s (numba is compiling them; later runs load them from its cache)",
                      ANNOUNCEMENT)  # fmt: skip
            self.bar = _counter(self.total)

    def on_end(self, event: Any) -> None:
        if self.started is not None and _is_ours(event):
            self.compiled += 1
            if self.bar is not None:
                if self.bar.total is not None and self.bar.n >= self.bar.total:
                    self.bar.total = self.bar.n + 1  # more than expected: one more to go
                self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            if self.bar.total is not None and self.bar.n != self.bar.total:
                self.bar.total = self.bar.n  # fewer than expected (some were cached): done
                self.bar.refresh()
            self.bar.close()
        if self.started is not None:
            elapsed = time.perf_counter() - self.started
            _log.info("statistics kernels ready (%d compiled in %.1f s)", self.compiled, elapsed)


@contextmanager
def announced_compilation(total: int | None = None) -> Iterator[None]:
    """Announce numba compiling cas_xr's functions within this block (once), with progress.

    ``total`` is how many of them are expected to compile (None: unknown).
    """
    from numba.core import event

    announcer = _Announcer(total)

    class Listener(event.Listener):
        def on_start(self, ev: Any) -> None:
            announcer.on_start(ev)

        def on_end(self, ev: Any) -> None:
            announcer.on_end(ev)

    try:
        with event.install_listener("numba:compile", Listener()):
            yield
    finally:
        announcer.close()
