"""Derived datasets: a source computed per cell from another dataset's source.

A provider file declares one with ``derive: {function: slope, dataset: elevation}``; its
id (e.g. ``copernicus_dem:slope``) then works wherever a dataset id does. The base is
opened over the requested box widened by a few cells, so that cells at the edge of the
box have their neighbours (the halo of :mod:`cas_xr.attributes._terrain`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cas_xr.attributes._terrain import TERRAIN
from cas_xr.sources._footprints import FOOTPRINTS, widened

if TYPE_CHECKING:
    import xarray as xr

    from cas_xr.models import TimeRange
    from cas_xr.sources import Source

__all__ = ["DerivedSource"]

_METRES_PER_DEGREE = 111_320.0
_HALO_CELLS = 3
_DEFAULT_PAD_DEG = 0.01  # when the base dataset declares no resolution


@dataclass(frozen=True)
class DerivedSource:
    """The source of a derived dataset (see the module docstring).

    Parameters
    ----------
    base
        The source of the dataset it is computed from.
    function
        A name of :data:`~cas_xr.attributes._terrain.TERRAIN`.
    resolution_m
        The base's cell size in metres (how far to widen the box), if known.
    base_id
        The base dataset's id, recorded in the provenance.
    nodata
        The value that marks cells without a value (the derived variable's
        ``nodata_value``); None or NaN keeps NaN.
    """

    base: Source
    function: str
    resolution_m: float | None = None
    base_id: str = ""
    nodata: float | None = None

    @property
    def _pad_deg(self) -> float:
        """How far (degrees of latitude) the cells of the base a cell needs may lie."""
        if self.resolution_m is None:
            return _DEFAULT_PAD_DEG
        return _HALO_CELLS * self.resolution_m / _METRES_PER_DEGREE

    def _padded(self, bbox: tuple[float, float, float, float]) -> tuple[float, ...]:
        x0, y0, x1, y1 = bbox
        dy = self._pad_deg
        cos = max(math.cos(math.radians(max(abs(y0), abs(y1)) + dy)), 0.01)
        dx = dy / cos
        return (max(x0 - dx, -180.0), max(y0 - dy, -90.0), min(x1 + dx, 180.0), min(y1 + dy, 90.0))

    def open(
        self,
        *,
        bbox: tuple[float, float, float, float] | None = None,
        time_range: TimeRange | None = None,
        chunks: int | None = None,
    ) -> xr.DataArray:
        """Open the base around ``bbox`` (widened) and compute the derived variable, lazily.

        Returns
        -------
        xarray.DataArray
            On the base's grid, float64, cells without a value set to ``nodata`` (attr
            ``nodata``),
            ``cas_provenance`` (the base's, plus what was derived from what) and the base's
            ``cas_failed_chunks`` (the chunking is the base's).
        """
        padded: Any = None if bbox is None else self._padded(bbox)
        dem = self.base.open(bbox=padded, time_range=time_range, chunks=chunks)
        out = TERRAIN[self.function](dem)
        if self.nodata is not None and not math.isnan(self.nodata):
            out = out.fillna(self.nodata).rio.write_nodata(self.nodata, encoded=False)
            out.attrs["nodata"] = self.nodata
        out.attrs["cas_provenance"] = {
            **dem.attrs.get("cas_provenance", {}),
            "derived": {"function": self.function, "from": self.base_id, "method": "Horn 1981"},
        }
        if FOOTPRINTS in dem.attrs:  # a geometry uses the base's cells this far around it
            out.attrs[FOOTPRINTS] = widened(dem.attrs[FOOTPRINTS], self._pad_deg)
        if "cas_failed_chunks" in dem.attrs:
            out.attrs["cas_failed_chunks"] = dem.attrs["cas_failed_chunks"]
        return out
