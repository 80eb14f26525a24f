"""The affine transform of a raster cube, read from its cell-centre coordinates.

The coordinates are read as rioxarray reads them (``rio.transform(recalc=True)``): they
are the centres of the cells, the first and last give the grid's extent, and either axis
may run either way (x descending, y ascending). Unlike rioxarray, the coordinates must be
evenly spaced: an irregular axis (Gaussian latitudes, a gap, longitudes wrapped to
-180..180 without sorting) has no affine transform, and its mean step would put cells in
the wrong place without a word. An axis of one cell cannot tell its cell size: it takes
it from the transform the cube carries (``rio.write_transform``, GDAL's GeoTransform), as
does an axis without coordinates. Anything else raises :class:`UnsupportedGridError`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from cas_xr.errors import UnsupportedGridError

if TYPE_CHECKING:
    import xarray as xr
    from affine import Affine

__all__ = ["grid_transform"]

#: How far, in cells, a coordinate may lie from the evenly spaced axis through the first
#: and last ones: rounding, not an irregular grid. Coordinates stored as float32 are also
#: allowed their own rounding, up to half a cell.
TOLERANCE = 1e-3
_AXES = {"x": "x (east-west)", "y": "y (north-south)"}


def _step(values: np.ndarray[Any, Any], dim: str) -> float:
    """The constant step of an axis's coordinates (at least two), or an error."""
    if values.dtype.kind not in "iuf":
        raise UnsupportedGridError(
            f"the raster's {_AXES[dim]} coordinates are not numbers (dtype {values.dtype}); "
            "give the cell centres in the CRS's units"
        )
    first, last, n = float(values[0]), float(values[-1]), values.size
    step = (last - first) / (n - 1)
    departure = float(np.max(np.abs(values - (first + step * np.arange(n)))))  # NaN: NaN
    if step != 0.0 and departure <= TOLERANCE * abs(step):
        return step
    return _rounded_step(values, dim, step, departure)


def _rounded_step(values: np.ndarray[Any, Any], dim: str, step: float, departure: float) -> float:
    """``step`` when float rounding of the coordinates explains ``departure``, else an error."""
    coords = values.astype(np.float64)
    steps = np.diff(coords)
    if not np.isfinite(coords).all():
        bad = np.flatnonzero(~np.isfinite(coords))[:5].tolist()
        problem = f"hold NaN or infinity (at positions {bad})"
    elif not (np.all(steps > 0) or np.all(steps < 0)):
        at = int(np.flatnonzero((np.sign(steps) != np.sign(steps[0])) | (steps == 0))[0])
        problem = (
            f"do not run one way (position {at}: {coords[at]:g}, then {coords[at + 1]:g}); "
            "sort the cube along it (obj.sortby(...), e.g. after wrapping longitudes) and drop "
            "repeated cells"
        )
    else:
        eps = float(np.finfo(values.dtype).eps) if values.dtype.kind == "f" else 0.0
        rounding = 2.0 * eps * float(np.max(np.abs(coords))) / abs(step)  # in cells
        if departure / abs(step) <= min(rounding, 0.5):
            return step
        worst = int(np.argmax(np.abs(coords - (coords[0] + step * np.arange(coords.size)))))
        problem = (
            f"are not evenly spaced (steps from {steps.min():g} to {steps.max():g}; the "
            f"coordinate at position {worst} lies {departure / abs(step):.3g} cells off the "
            "regular grid)"
        )
    raise UnsupportedGridError(
        f"the raster's {_AXES[dim]} coordinates {problem}; zonal statistics need an affine "
        "grid (evenly spaced cell centres): regrid the cube first (e.g. rio.reproject or "
        "xESMF), or, if it is regular and only its coordinates are rounded, give exact ones "
        "(e.g. obj.assign_coords(x=x0 + step * np.arange(n)))"
    )


def _axis(coordinate: Any, dim: str, kept: tuple[float, float] | None) -> tuple[float, float]:
    """``(edge, step)`` of one axis: the outer edge of its first cell and the signed step."""
    if coordinate is not None and coordinate.size >= 2:
        values = np.asarray(coordinate.values)
        step = _step(values, dim)
        return float(values[0]) - step / 2.0, step
    if kept is None:
        what = "one cell" if coordinate is not None else "no coordinates"
        raise UnsupportedGridError(
            f"the raster has {what} along {_AXES[dim]} and no transform, so the size of its "
            "cells is unknown; give the grid's transform (obj.rio.write_transform(...), e.g. "
            "from the cube it was cut from) or cut a range of cells rather than one"
        )
    origin, step = kept
    if coordinate is None:
        return origin, step
    return float(np.asarray(coordinate.values)[0]) - step / 2.0, step


def grid_transform(obj: xr.DataArray | xr.Dataset) -> Affine:
    """The affine transform of a cube with ``y``/``x`` dims, from its coordinates.

    What ``obj.rio.transform(recalc=True)`` gives for evenly spaced coordinates (the same
    arithmetic, without rioxarray's dozen lookups through xarray), and an error where it
    would guess.

    Parameters
    ----------
    obj
        A DataArray or Dataset with dims ``y`` and ``x``.

    Returns
    -------
    affine.Affine
        The transform of the cell edges: ``x = c + a * col``, ``y = f + e * row``.

    Raises
    ------
    UnsupportedGridError
        For a rotated grid, coordinates that are not evenly spaced, sorted and finite, or
        an axis of one cell or without coordinates when the cube carries no transform (or
        one that does not match the coordinates of the other axis).
    """
    from affine import Affine

    kept = obj.rio._cached_transform()
    if kept is not None and (not kept.is_rectilinear or kept.b or kept.d):
        raise UnsupportedGridError("rotated grids are not supported; reproject the raster first")
    variables = obj.coords.variables
    x, y = variables.get("x"), variables.get("y")
    left, res_x = _axis(x, "x", None if kept is None else (kept.c, kept.a))
    top, res_y = _axis(y, "y", None if kept is None else (kept.f, kept.e))
    if kept is not None and _measured(x) != _measured(y):  # one axis from the kept transform
        dim, measured, kept_step = ("x", res_x, kept.a) if _measured(x) else ("y", res_y, kept.e)
        if not np.isclose(abs(measured), abs(kept_step), rtol=TOLERANCE, atol=0.0):
            raise UnsupportedGridError(
                f"the raster's transform (GeoTransform) has cells {abs(kept_step):g} apart along "
                f"{_AXES[dim]} but its coordinates are {abs(measured):g} apart: it belongs to "
                "another grid (a resampled or coarsened cube keeps its source's); write this "
                "cube's transform (obj.rio.write_transform(...)) before computing statistics"
            )
    return Affine(res_x, 0.0, left, 0.0, res_y, top)


def _measured(coordinate: Any) -> bool:
    """Whether an axis's step comes from its coordinates (two or more of them)."""
    return coordinate is not None and coordinate.size >= 2
