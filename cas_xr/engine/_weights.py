"""The weights raster of a unit: another dataset, cut to the values' window on their grid.

``weighted_*`` statistics and three-argument reductions weigh each cell by a second
dataset (``weights_raster=`` of the table entry points). It is opened around each batch
like the values, then taken cell for cell on the values' grid: the two must share the
CRS, the cell size and the cell edges (their windows may differ, e.g. a derived dataset
read with a halo). Nothing is ever resampled: another grid raises an error that says so.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from cas_xr.errors import InvalidArgumentError

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["weights_on"]

_TOLERANCE = 1e-6  # of a cell: float noise of transforms computed from coordinates


def _mismatch(weights_id: str, values_id: str, why: str) -> InvalidArgumentError:
    return InvalidArgumentError(
        f"weights_raster {weights_id!r} is not on the grid of {values_id!r} ({why}); cas_xr "
        "never resamples a weights raster: give a weights dataset on the same grid, or "
        "resample it yourself (e.g. weights.rio.reproject_match(values)) and use "
        "cas_xr.zonal.zonal(..., weights_raster=<DataArray>)"
    )


def _static(weights: xr.DataArray, weights_id: str) -> xr.DataArray:
    """``weights`` without a time dimension (one step at most)."""
    if "time" not in weights.dims:
        return weights
    if weights.sizes["time"] != 1:
        raise InvalidArgumentError(
            f"weights_raster {weights_id!r} has {weights.sizes['time']} time steps; a weights "
            "raster must be static (one layer for every step of the values): pass one step "
            "as a DataArray, e.g. cas_xr.open_dataset(id).isel(time=0), or use "
            "cas_xr.zonal.zonal with one weights layer per value layer"
        )
    return weights.isel(time=0, drop=True)


def _span(start: int, size: int, available: int) -> tuple[slice, int]:
    """The part of ``start .. start + size`` within ``0 .. available``, and what lies before."""
    lo = min(max(start, 0), start + size)
    hi = max(min(start + size, available), lo)
    return slice(lo, hi), lo - start


def weights_on(
    weights: xr.DataArray, values: xr.DataArray, *, weights_id: str, values_id: str
) -> xr.DataArray:
    """``weights`` cut (and padded with NaN) to the ``(y, x)`` window of ``values``.

    Parameters
    ----------
    weights, values
        The weights dataset and the values, as opened around a batch (with a CRS).
    weights_id, values_id
        Their dataset ids, for the error message.

    Returns
    -------
    xarray.DataArray
        ``(y, x)`` on the values' coordinates; cells outside the weights dataset are NaN
        (a missing weight). Lazy when ``weights`` is.

    Raises
    ------
    InvalidArgumentError
        When the CRS, the cell size or the cell edges differ, or the weights have more than
        one time step.
    """
    import rioxarray  # noqa: F401  (registers .rio)

    from cas_xr.zonal._dims import on_grid

    w: xr.DataArray = on_grid(_static(weights, weights_id))  # type: ignore[assignment]
    v: xr.DataArray = on_grid(values)  # type: ignore[assignment]
    if w.ndim != 2:
        raise InvalidArgumentError(
            f"weights_raster {weights_id!r} has dimensions {w.dims}; it must be (y, x)"
        )
    if w.rio.crs is None or v.rio.crs is None or w.rio.crs != v.rio.crs:
        raise _mismatch(weights_id, values_id, f"CRS {w.rio.crs} against {v.rio.crs}")
    tw, tv = w.rio.transform(recalc=True), v.rio.transform(recalc=True)
    if not np.allclose([tw.a, tw.b, tw.d, tw.e], [tv.a, tv.b, tv.d, tv.e], rtol=_TOLERANCE, atol=0):
        raise _mismatch(weights_id, values_id, f"cells of {tw.a:g} x {-tw.e:g} against "
                        f"{tv.a:g} x {-tv.e:g}")  # fmt: skip
    col, row = (tv.c - tw.c) / tw.a, (tv.f - tw.f) / tw.e  # the values' origin, in weights cells
    if abs(col - round(col)) > _TOLERANCE or abs(row - round(row)) > _TOLERANCE:
        raise _mismatch(weights_id, values_id, "the cell edges are shifted by a fraction of a cell")
    rows, before_y = _span(round(row), v.sizes["y"], w.sizes["y"])
    cols, before_x = _span(round(col), v.sizes["x"], w.sizes["x"])
    cut = w.isel(y=rows, x=cols)
    pad = {
        "y": (before_y, v.sizes["y"] - before_y - cut.sizes["y"]),
        "x": (before_x, v.sizes["x"] - before_x - cut.sizes["x"]),
    }
    if any(sum(p) for p in pad.values()):  # the values reach beyond the weights: missing
        cut = cut.astype(np.float64).pad(pad, constant_values=np.nan)
    out = cut.drop_vars(["y", "x"]).assign_coords(y=v["y"].values, x=v["x"].values)
    out = out.rio.write_crs(v.rio.crs)
    return out.rio.write_transform(tv)
