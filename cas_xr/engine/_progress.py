"""Progress bars for long jobs: tqdm (terminal or notebook), off with ``progress=False``."""

from __future__ import annotations

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
    bar: ProgressBar = tqdm(
        total=total, desc=desc, unit=unit, unit_scale=total >= 10_000, smoothing=0.1
    )
    return bar
