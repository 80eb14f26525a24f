"""The exit status of ``cas-xr extract``: what the quality flags of the results say."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING

from cas_xr._cli._common import EXIT_ALL_MISSING, EXIT_OK, EXIT_SOME_MISSING

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["exit_status", "quality_counts"]

_NO_VALUE = ("missing", "degraded")  # DEGRADED: part of the source could not be read


def quality_counts(table: pd.DataFrame, dataset_ids: Iterable[str]) -> Counter[str]:
    """How many results (geometry, dataset and time step) carry each quality flag."""
    counts: Counter[str] = Counter()
    for dataset_id in dataset_ids:
        counts.update(table[f"{dataset_id}_quality"].astype(str))
    return counts


def exit_status(counts: Counter[str], *, strict: bool = False) -> int:
    """0 when every result has a value, 3 when some do not, 4 when none does.

    Parameters
    ----------
    counts
        Results per quality flag (:func:`quality_counts`).
    strict
        Any flag but GOOD gives 3 (4 still when every result is MISSING).
    """
    total = sum(counts.values())
    if total and counts["missing"] == total:
        return EXIT_ALL_MISSING
    flagged = total - counts["good"] if strict else sum(counts[f] for f in _NO_VALUE)
    return EXIT_SOME_MISSING if flagged else EXIT_OK
