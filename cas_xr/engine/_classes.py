"""Class statistics from class shares: labels, majority, minority, unique, distribution."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from cas_xr.models import AggregationMethod

__all__ = ["CLASS_STATISTICS", "class_label", "class_value"]

CLASS_STATISTICS = frozenset(
    {
        AggregationMethod.MAJORITY,
        AggregationMethod.MINORITY,
        AggregationMethod.UNIQUE,
        AggregationMethod.DISTRIBUTION,
    }
)
_TIE_RTOL = 1e-9  # class shares this close are tied (majority/minority: smallest code wins)


def class_label(code: float, class_names: dict[int, str] | None) -> str:
    """The class name of ``code``, else the code as text (``"10"``, not ``"10.0"``)."""
    key = int(code) if float(code).is_integer() else code
    if class_names and isinstance(key, int) and key in class_names:
        return class_names[key]
    return str(key)


def class_value(
    fractions: npt.NDArray[np.float64],
    classes: npt.NDArray[np.float64],
    method: AggregationMethod,
    class_names: dict[int, str] | None,
) -> float | dict[str, float]:
    """The value of class statistic ``method`` from the area fraction of each class.

    ``classes`` are sorted, so the first of tied shares is the smallest code; shares that
    differ by rounding only (summed in another order, e.g. over another window) are ties.
    """
    present = fractions > 0
    if method is AggregationMethod.DISTRIBUTION:
        return {
            class_label(c, class_names): float(f)
            for c, f in zip(classes[present], fractions[present], strict=True)
        }
    if method is AggregationMethod.UNIQUE:
        return float(present.sum())
    shares = fractions[present]
    best = shares.max() if method is AggregationMethod.MAJORITY else shares.min()
    pick = np.flatnonzero(np.abs(shares - best) <= _TIE_RTOL * best)[0]
    return float(classes[present][pick])
