"""Progress bars for long jobs: tqdm (terminal or notebook), off with ``progress=False``.

While a text bar shows, whatever is written to ``sys.stderr`` (Python warnings, a
library's messages) and the root logger's console lines go through ``tqdm.write``, above
the bar, instead of through it.
"""

from __future__ import annotations

import sys
import warnings
from typing import Any, Protocol

from cas_xr.config import get_settings

__all__ = ["ProgressBar", "Silent", "progress_bar"]


class ProgressBar(Protocol):
    """What the batch code needs from a bar (tqdm's own interface)."""

    def update(self, n: float = 1) -> Any:
        """Advance the bar by ``n``."""
        ...

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> Any:
        """Show ``s`` after the counter."""
        ...

    def close(self) -> Any:
        """Finish the bar."""
        ...


class Silent:
    """A bar that shows nothing (``progress=False``, or tqdm not installed)."""

    def update(self, n: float = 1) -> None:
        """Do nothing."""

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        """Do nothing."""

    def close(self) -> None:
        """Do nothing."""


def progress_bar(total: int, *, desc: str, unit: str = "result") -> ProgressBar:
    """A progress bar over ``total`` units, or a silent one.

    Parameters
    ----------
    total
        The number of units the job will report.
    desc
        What the bar counts, shown before it.
    unit
        The name of one unit.

    Returns
    -------
    ProgressBar
        ``tqdm.auto.tqdm`` (a widget in Jupyter when ipywidgets is installed, else text on
        stderr) when the ``progress`` setting is on and tqdm is installed; else a bar that
        shows nothing.
    """
    if not get_settings().progress or total <= 0:
        return Silent()
    try:
        with warnings.catch_warnings():
            # tqdm.auto warns when a notebook lacks ipywidgets, then falls back to text
            warnings.simplefilter("ignore")
            from tqdm.auto import tqdm
    except ImportError:
        return Silent()
    bar = tqdm(total=total, desc=desc, unit=unit, unit_scale=total >= 10_000, smoothing=0.1)
    if any(c.__module__ == "tqdm.notebook" for c in type(bar).__mro__):
        return bar  # a widget: nothing to write through
    return _WritingAbove(bar)


class _WritingAbove:
    """A text bar; until it closes, stderr and console log lines are written above it."""

    def __init__(self, bar: Any) -> None:
        from tqdm.contrib import DummyTqdmFile
        from tqdm.contrib.logging import logging_redirect_tqdm

        self._bar = bar
        self._stderr = sys.stderr
        self._through: Any = DummyTqdmFile(sys.stderr)
        sys.stderr = self._through
        self._logging = logging_redirect_tqdm(tqdm_class=type(bar))
        self._logging.__enter__()

    def update(self, n: float = 1) -> Any:
        """Advance the bar by ``n``."""
        return self._bar.update(n)

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> Any:
        """Show ``s`` after the counter."""
        return self._bar.set_postfix_str(s, refresh)

    def close(self) -> Any:
        """Finish the bar; stderr and logging write directly again."""
        self._logging.__exit__(None, None, None)
        if sys.stderr is self._through:  # unless someone replaced it meanwhile
            sys.stderr = self._stderr
        self._through = None  # tqdm writes what is left of an unfinished line when it goes
        return self._bar.close()
