"""Weighted statistics of the cells under one geometry.

Every function takes the values of the valid cells and their weights (the fraction of
each cell covered by the geometry, exactextract semantics) and follows exactextract's
definitions, so results agree with it to floating-point precision.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from cas_xr.models import AggregationMethod

__all__ = ["class_fractions", "summarize", "weighted_quantile"]

FloatArray = npt.NDArray[np.float64]


def weighted_quantile(values: npt.ArrayLike, weights: npt.ArrayLike, q: float) -> float:
    """Weighted quantile, exactextract's definition (weighted Hyndman-Fan type 7).

    Equal values are pooled (their weights summed) and sorted; distinct value ``k``
    (0-based) gets the position
    ``s_k = k * w_k + (n - 1) * sum(w_0 .. w_{k-1})`` and the quantile interpolates
    linearly at ``q * s_{n-1}``. With equal weights and distinct values this is numpy's
    default quantile.

    Parameters
    ----------
    values, weights
        One-dimensional arrays of the same length; weights are positive.
    q
        The quantile, in [0, 1].

    Returns
    -------
    float
        The quantile, NaN when there are no values.
    """
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile q must be within [0, 1], got {q}")
    x = np.asarray(values, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    if x.size == 0:
        return float("nan")
    distinct, inverse = np.unique(x, return_inverse=True)  # sorted distinct values
    w = np.bincount(inverse.ravel(), weights=w).astype(np.float64)  # equal values pool weights
    x = distinct.astype(np.float64)
    n = x.size
    cum_before = np.concatenate(([0.0], np.cumsum(w)[:-1]))
    s = np.arange(n) * w + (n - 1) * cum_before
    h = q * s[-1]
    upper = int(np.searchsorted(s, h, side="right"))
    if upper == 0:
        return float(x[0])
    if upper >= n:
        return float(x[-1])
    lower = upper - 1
    return float(x[lower] + (h - s[lower]) / (s[upper] - s[lower]) * (x[upper] - x[lower]))


def class_fractions(values: npt.ArrayLike, weights: npt.ArrayLike) -> dict[float, float]:
    """Fraction of the covered valid area taken by each distinct value.

    Parameters
    ----------
    values, weights
        One-dimensional arrays of the same length.

    Returns
    -------
    dict
        ``{value: fraction}`` sorted by value; fractions sum to 1 (empty when no cells).
    """
    x = np.asarray(values, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    total = w.sum()
    if x.size == 0 or total <= 0:
        return {}
    classes, inverse = np.unique(x, return_inverse=True)
    sums = np.bincount(inverse, weights=w)
    return {float(c): float(s / total) for c, s in zip(classes, sums, strict=True)}


def _label(code: float, class_names: Mapping[int, str] | None) -> str:
    key = int(code) if float(code).is_integer() else code
    if class_names is not None and isinstance(key, int) and key in class_names:
        return class_names[key]
    return str(key)


def summarize(
    values: npt.ArrayLike,
    weights: npt.ArrayLike,
    method: AggregationMethod | str,
    *,
    class_names: Mapping[int, str] | None = None,
) -> float | dict[str, float] | None:
    """Summarise the valid cells under a geometry with one CAS aggregation method.

    Parameters
    ----------
    values
        Values of the valid cells (nodata and NaN already removed).
    weights
        Coverage weight of each cell (0..1].
    method
        An :class:`~cas_xr.models.AggregationMethod`.
    class_names
        Labels of class codes; ``distribution`` keys use them when given.

    Returns
    -------
    float, dict or None
        The statistic; ``None`` when there is no valid cell. ``distribution`` gives
        ``{label: area fraction}``; ``majority``/``minority`` give the class code (ties go
        to the smallest code); ``unique`` gives the number of distinct values.
    """
    method = AggregationMethod(method)
    x = np.asarray(values, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    if x.shape != w.shape or x.ndim != 1:
        raise ValueError(
            f"values and weights must be 1-D of equal length, got {x.shape}, {w.shape}"
        )
    if x.size == 0 or w.sum() <= 0:
        return None
    match method:
        case AggregationMethod.MEAN:
            return float(np.sum(x * w) / np.sum(w))
        case AggregationMethod.SUM:
            return float(np.sum(x * w))
        case AggregationMethod.MIN:
            return float(x.min())
        case AggregationMethod.MAX:
            return float(x.max())
        case AggregationMethod.MEDIAN:
            return weighted_quantile(x, w, 0.5)
        case AggregationMethod.STD:
            mean = np.sum(x * w) / np.sum(w)
            return float(np.sqrt(np.sum(w * (x - mean) ** 2) / np.sum(w)))
        case AggregationMethod.UNIQUE:
            return float(np.unique(x).size)
    fractions = class_fractions(x, w)
    if method is AggregationMethod.DISTRIBUTION:
        return {_label(code, class_names): frac for code, frac in fractions.items()}
    # dicts keep ascending code order, so max()/min() return the smallest code on ties
    pick = max if method is AggregationMethod.MAJORITY else min
    return pick(fractions, key=fractions.__getitem__)
