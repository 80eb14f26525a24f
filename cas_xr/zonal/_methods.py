"""xvec's string reductions: ``(name, "quantile", {"q": 0.9})`` as cas_xr's statistics.

xvec's ``zonal_stats`` (``method="rasterize"`` or ``"iterate"``) takes ``(name, func,
kwargs)`` tuples whose ``func`` may be a string: the name of an xarray reduction, called
as ``getattr(groups, func)(**kwargs)`` on the cells of each geometry. cas_xr computes
the same statistic with its kernel (:data:`METHODS` maps the names), labelled by the
tuple's name; a statistic name of cas_xr's own (``"p90"``, ``"range"`` ...) works too,
without keyword arguments. Keyword arguments that would change the numbers in a way
cas_xr does not compute raise, naming what is accepted: none is ignored.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from cas_xr.errors import InvalidStatisticError

__all__ = ["METHODS", "statistic_of"]

#: xarray's reductions cas_xr computes: method name -> cas_xr statistic, keywords taken.
METHODS: dict[str, tuple[str, tuple[str, ...]]] = {
    "mean": ("mean", ("skipna",)),
    "sum": ("sum", ("skipna", "min_count")),
    "min": ("min", ("skipna",)),
    "max": ("max", ("skipna",)),
    "median": ("median", ("skipna",)),
    "std": ("std", ("skipna", "ddof")),
    "var": ("variance", ("skipna", "ddof")),
    "count": ("count", ()),
    "quantile": ("quantile", ("q", "method", "interpolation", "skipna")),
}
_CLASS_OUTPUTS = ("distribution", "weighted_distribution", "frac", "weighted_frac")
_LINEAR = "cas_xr's quantiles interpolate linearly (numpy's default, weighted as exactextract's)"
#: Each keyword's values that give cas_xr's numbers, and why the others do not.
_HONOURED: dict[str, tuple[tuple[Any, ...], str]] = {
    "skipna": ((True, None), "cas_xr always leaves missing cells out"),
    "ddof": ((0,), "cas_xr's std and variance are the population ones, coverage-weighted"),
    "min_count": (
        (0, None),
        "cas_xr's sum is 0 for a geometry without a valid cell (as xarray's default); "
        "for NaN there, mask the result: out.where(out.pixel_count > 0)",
    ),
    "method": (("linear",), _LINEAR),
    "interpolation": (("linear",), _LINEAR),
}


def _same(value: Any, accepted: tuple[Any, ...]) -> bool:
    """Whether ``value`` is one of ``accepted`` (``True`` is not ``1``, nor ``0`` ``False``)."""
    for want in accepted:
        if want is None or isinstance(want, bool):
            if value is want or (isinstance(value, np.bool_) and bool(value) is want):
                return True
        elif isinstance(want, str):
            if value == want:
                return True
        elif _real(value) == want:
            return True
    return False


def _real(value: Any) -> float | None:
    """``value`` (a Python or numpy scalar, or a 0-d array) as a float; None if no number."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if isinstance(value, bool | np.bool_):
        return None
    if isinstance(value, int | float | np.integer | np.floating):
        return float(value)
    return None


def _instead(name: str, method: str, key: str, kwargs: Mapping[str, Any]) -> str:
    """A function that computes what ``kwargs`` ask, as advice for an error message."""
    if key == "min_count":
        return ""
    rest = {("method" if k == "interpolation" else k): v for k, v in kwargs.items()}
    func = f"np.nan{method}"
    if key == "skipna":  # NaN-propagating: numpy's plain function
        rest.pop("skipna")
        func = f"np.{method}"
    return (
        f"; or give a function, e.g. ({name!r}, {func}, {rest!r}), which sees the "
        "geometry's cells (NaN where missing), unweighted"
    )


def _quantile(name: str, q: Any) -> str:
    if np.ndim(q) != 0:
        raise InvalidStatisticError(
            f"reduction {name!r} asks for q={q!r}: give one quantile per tuple (several "
            f"would be a dimension of their own), e.g. ('{name}_10', 'quantile', "
            f"{{'q': 0.1}}), ('{name}_90', 'quantile', {{'q': 0.9}})"
        )
    value = _real(q)
    if value is None or not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise InvalidStatisticError(
            f"reduction {name!r} asks for q={q!r}; give a number from 0 to 1, e.g. "
            f"('{name}', 'quantile', {{'q': 0.9}})"
        )
    return f"quantile(q={value!r})"


def statistic_of(name: str, func: str, kwargs: Mapping[str, Any]) -> str:
    """The cas_xr statistic that the reduction ``(name, func, kwargs)`` asks for.

    Parameters
    ----------
    name
        The tuple's name (the result's label).
    func
        The name of an xarray reduction (:data:`METHODS`), or a statistic name of cas_xr's.
    kwargs
        The tuple's keyword arguments, as xarray's method would take them.

    Returns
    -------
    str
        A statistic name for :func:`~cas_xr.zonal._inputs.parse_stats`, e.g.
        ``"quantile(q=0.9)"`` or ``"variance"``.

    Raises
    ------
    InvalidStatisticError
        For a name cas_xr does not compute, a class output, a keyword the method does not
        take, or a value of one that would give other numbers than cas_xr's.
    """
    from cas_xr.zonal._inputs import ALIASES, STATISTICS, _quantile_of

    method = func.strip()
    if method in METHODS:
        statistic, taken = METHODS[method]
        extra = [k for k in kwargs if k not in taken]
        if extra:
            takes = ", ".join(taken) if taken else "no keyword arguments"
            raise InvalidStatisticError(
                f"reduction {name!r} passes {extra[0]}= to {method!r}, which cas_xr does not "
                f"take; {method!r} takes {takes}"
            )
        for key, value in kwargs.items():
            if key == "q":
                continue
            accepted, why = _HONOURED[key]
            if not _same(value, accepted):
                shown = " or ".join(repr(a) for a in accepted if a is not None)
                raise InvalidStatisticError(
                    f"reduction {name!r} passes {key}={value!r} to {method!r}, which cas_xr "
                    f"cannot honour: {why}. Give {key}={shown} or leave it out"
                    + _instead(name, method, key, kwargs)
                )
        if method == "quantile":
            if "q" not in kwargs:
                raise InvalidStatisticError(
                    f"reduction {name!r} asks for a quantile without q; give e.g. "
                    f"({name!r}, 'quantile', {{'q': 0.9}})"
                )
            return _quantile(name, kwargs["q"])
        return statistic
    if method.lower() in _CLASS_OUTPUTS:
        raise InvalidStatisticError(
            f"reduction {name!r} names {method!r}, a variable along 'class' rather than one "
            f"number; ask for {method!r} by name in stats"
        )
    lowered = method.lower()
    meaning = ALIASES.get(lowered, lowered)
    if meaning not in STATISTICS and _quantile_of(meaning) is None:  # raises outside 0..1
        raise InvalidStatisticError(
            f"reduction {name!r} names {func!r}, which cas_xr does not compute; give one of "
            f"xarray's {', '.join(METHODS)} (as xvec calls them), a statistic name of "
            "cas_xr's (e.g. 'p90', 'range'), or a function, e.g. "
            f"({name!r}, np.nanprod)"
        )
    if kwargs:
        raise InvalidStatisticError(
            f"reduction {name!r} passes {', '.join(kwargs)} to cas_xr's statistic "
            f"{method!r}, which takes no keyword arguments; give ({name!r}, {method!r})"
        )
    return method
