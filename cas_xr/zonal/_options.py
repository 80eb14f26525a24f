"""The options of :func:`~cas_xr.zonal.zonal` beyond the statistics, checked and prepared.

exactextract's options (``weights_raster``, ``min_coverage_frac``, ``coverage_weight``,
``default_value``, ``default_weight``) and cas_xr's ``quantile_dtype``: each is checked
here once, with an error that says what to change, and turned into what the kernel takes.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from cas_xr.errors import ArgumentTypeError, InvalidArgumentError, InvalidStatisticError
from cas_xr.zonal import _codes as K

if TYPE_CHECKING:
    import xarray as xr
    from affine import Affine

    from cas_xr.zonal._inputs import Stats

__all__ = [
    "COVERAGE_WEIGHTS",
    "QUANTILE_DTYPES",
    "check_weights_mode",
    "cover_factors",
    "kernel_options",
    "weights_raster_of",
]

#: exactextract's ``coverage_weight`` values: what multiplies each cell's value.
COVERAGE_WEIGHTS = ("fraction", "none", "area_cartesian", "area_spherical_m2", "area_spherical_km2")
#: ``quantile_dtype``: quantiles in float64 (interpolated), or in the raster's integer dtype
#: (rounded down, as exactextract returns them).
QUANTILE_DTYPES = ("float64", "raster")
#: exactextract's sphere for ``area_spherical_*`` (the WGS84 semi-major axis, in metres).
_SPHERE_RADIUS_M = 6_378_137.0


def check_weights_mode(weights: Any, modes: Any) -> None:
    """Raise unless ``weights`` names a weight mode (an array belongs in ``weights_raster=``)."""
    if isinstance(weights, str):
        if weights not in modes:
            raise InvalidArgumentError(f"weights must be one of {sorted(modes)}, got {weights!r}")
        return
    raise ArgumentTypeError(
        f"weights= is the coverage mode ({', '.join(sorted(modes))}), got a "
        f"{type(weights).__name__}; pass a raster of weights as weights_raster= (a DataArray "
        "on the same grid) for weighted_mean, weighted_sum, weighted_stdev, "
        "weighted_variance and weighted_frac"
    )


def kernel_options(
    *,
    min_coverage_frac: float,
    coverage_weight: str,
    area_weighted: bool,
    default_value: float | None,
    default_weight: float | None,
    quantile_dtype: str,
) -> npt.NDArray[np.float64]:
    """The kernel's option array (:func:`cas_xr.zonal._codes.options`), after checks."""
    if coverage_weight not in COVERAGE_WEIGHTS:
        raise InvalidArgumentError(
            f"coverage_weight must be one of {', '.join(COVERAGE_WEIGHTS)}, got {coverage_weight!r}"
        )
    if coverage_weight != "fraction" and area_weighted:
        raise InvalidArgumentError(
            f"coverage_weight={coverage_weight!r} and area_weighted=True both weight cells by "
            "area; use one: coverage_weight (exactextract's, changes sum and count too) or "
            "area_weighted (averages only)"
        )
    if quantile_dtype not in QUANTILE_DTYPES:
        raise InvalidArgumentError(
            f"quantile_dtype must be one of {', '.join(QUANTILE_DTYPES)}, got {quantile_dtype!r}"
        )
    number = _number("min_coverage_frac", min_coverage_frac)
    if not 0.0 <= number <= 1.0:
        raise InvalidArgumentError(
            f"min_coverage_frac must lie in 0..1 (a fraction of a cell), got {min_coverage_frac}"
        )
    for name, value in (("default_value", default_value), ("default_weight", default_weight)):
        if value is not None and math.isnan(_number(name, value)):
            raise InvalidArgumentError(f"{name} must be a number, not NaN (None: no default)")
    return K.options(
        min_coverage_frac=number,
        unit_cover=coverage_weight == "none",
        default_value=None if default_value is None else float(default_value),
        default_weight=None if default_weight is None else float(default_weight),
    )


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        raise ArgumentTypeError(f"{name} must be a number, got {value!r}")
    return float(value)


def cover_factors(
    coverage_weight: str, transform: Affine, rows: int, crs: Any
) -> npt.NDArray[np.float64]:
    """The per-row factor of every weight: a cell's area (``area_*``), else 1."""
    if coverage_weight in ("fraction", "none"):
        return np.ones(rows)
    if coverage_weight == "area_cartesian":
        return np.full(rows, abs(transform.a * transform.e))
    if not crs.is_geographic:
        raise InvalidArgumentError(
            f"coverage_weight={coverage_weight!r} needs a geographic (lon/lat) grid; on a "
            "projected grid use 'area_cartesian' (cell area in the CRS's units)"
        )
    edges = np.radians(transform.f + transform.e * np.arange(rows + 1))
    band = np.abs(np.sin(edges[:-1]) - np.sin(edges[1:]))
    area = _SPHERE_RADIUS_M**2 * abs(math.radians(transform.a)) * band
    return np.asarray(area / 1e6 if coverage_weight == "area_spherical_km2" else area)


def weights_raster_of(
    weights_raster: Any, obj: xr.DataArray | xr.Dataset, spec: Stats, *, layers: int
) -> xr.DataArray | None:
    """The weights raster on ``obj``'s grid (``y``/``x`` last), or None when not needed.

    Raises
    ------
    InvalidStatisticError
        When a ``weighted_*`` statistic is asked without a weights raster.
    ArgumentTypeError, InvalidArgumentError
        When the weights raster is not a DataArray on the same grid, with one layer or as
        many as the values.
    """
    import xarray as xr

    from cas_xr.zonal._dims import on_grid

    if not spec.needs_weights:
        return None
    if weights_raster is None:
        raise InvalidStatisticError(
            "weighted_mean, weighted_sum, weighted_stdev, weighted_variance and weighted_frac "
            "need a weights raster: pass weights_raster=<DataArray on the same grid>"
        )
    if not isinstance(weights_raster, xr.DataArray):
        raise ArgumentTypeError(
            f"weights_raster must be a DataArray on the grid of the values, got "
            f"{type(weights_raster).__name__}"
        )
    weights: xr.DataArray = on_grid(weights_raster)  # type: ignore[assignment]
    for dim in ("y", "x"):
        ours, theirs = np.asarray(obj[dim].values), np.asarray(weights[dim].values)
        if ours.shape != theirs.shape or not np.allclose(ours, theirs, rtol=0, atol=1e-9):
            raise InvalidArgumentError(
                f"weights_raster is not on the grid of the values (its {dim} coordinates "
                "differ); resample it first, e.g. weights.rio.reproject_match(values)"
            )
    crs, theirs_crs = obj.rio.crs, weights.rio.crs
    if theirs_crs is not None and crs is not None and theirs_crs != crs:
        raise InvalidArgumentError(
            f"weights_raster has CRS {theirs_crs} but the values {crs}; reproject it first"
        )
    count = int(np.prod(weights.shape[:-2]))
    if count not in (1, layers):
        raise InvalidArgumentError(
            f"weights_raster has {count} layers (dims {weights.dims}); give one (y, x) layer "
            f"for every layer of the values, or exactly as many layers as they have ({layers})"
        )
    return weights
