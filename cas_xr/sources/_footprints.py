"""Where each item or file a source read lies, so provenance can be told per geometry.

A source lists in its ``cas_provenance`` the items (STAC) or files (a glob of GeoTIFF
tiles) it opened for a box around some geometries. Beside it, under the attribute
:data:`FOOTPRINTS`, it records the footprint of each: ``{key: {name: footprint}}``, where
``key`` is the provenance list the name belongs to (``"items"``, ``"files"``) and a
footprint is ``[crs, xmin, ymin, xmax, ymax]`` (the bounds in that CRS), followed for an
item of a time step by ``start, end`` (ISO 8601, UTC), or None when the source cannot
tell (the name is then taken to lie under every geometry read with it).
The engine keeps this internal attribute with each result and lists, for each geometry,
only the names whose footprint the geometry touches.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["FOOTPRINTS", "Footprint", "at_step", "latest_step", "widened"]

#: The attribute a source's DataArray carries the footprints under.
FOOTPRINTS = "cas_footprints"

#: ``[crs, xmin, ymin, xmax, ymax(, start, end)]``, or None for "anywhere the source read".
Footprint = list[Any] | None

_METRES_PER_DEGREE = 111_320.0


def _widen(footprint: Footprint, pad_deg: float) -> Footprint:
    if footprint is None:
        return None
    import pyproj

    crs, x0, y0, x1, y1 = footprint[:5]
    parsed = pyproj.CRS.from_user_input(crs)
    if parsed.is_geographic:
        cos = max(math.cos(math.radians(max(abs(y0), abs(y1)) + pad_deg)), 0.01)
        dx, dy = pad_deg / cos, pad_deg
    else:  # the pad in the CRS's linear unit
        factor = parsed.axis_info[0].unit_conversion_factor if parsed.axis_info else 1.0
        dx = dy = pad_deg * _METRES_PER_DEGREE / (factor or 1.0)
    return [crs, x0 - dx, y0 - dy, x1 + dx, y1 + dy, *footprint[5:]]


def widened(
    footprints: Mapping[str, Mapping[str, Footprint]], pad_deg: float
) -> dict[str, dict[str, Footprint]]:
    """``footprints`` grown by ``pad_deg`` (degrees; metres at the equator in projected CRSs).

    What a source computed from its neighbours' cells (a slope) needs of its base within
    that distance of each geometry.
    """
    return {
        key: {name: _widen(fp, pad_deg) for name, fp in names.items()}
        for key, names in footprints.items()
    }


def _holds(footprint: Footprint, when: datetime) -> bool:
    """Whether the time of a footprint (none: any) holds ``when``."""
    if footprint is None or len(footprint) < 7:
        return True
    start, end = (datetime.fromisoformat(t) for t in footprint[5:7])
    return start <= when <= end


def at_step(attrs: Mapping[str, Any], step: Any) -> dict[str, Any]:
    """``cas_provenance`` and :data:`FOOTPRINTS` of ``attrs``, kept to one time step.

    What a source read for several steps, of which one is used (the latest): the names
    whose time holds ``step`` (a ``datetime64`` or anything pandas reads, naive as UTC)
    stay, and those without a time (all of them if none holds ``step``). Empty when
    ``attrs`` have no footprints.
    """
    import pandas as pd

    footprints = attrs.get(FOOTPRINTS)
    if not footprints:
        return {}
    stamp = pd.Timestamp(step)
    when = (stamp if stamp.tzinfo else stamp.tz_localize("UTC")).to_pydatetime()
    kept = {
        key: {name: fp for name, fp in names.items() if _holds(fp, when)} or dict(names)
        for key, names in footprints.items()
    }  # (none of the step: the times did not match the source's steps, keep them all)
    provenance = dict(attrs.get("cas_provenance", {}))
    for key, names in kept.items():
        if isinstance(provenance.get(key), list):
            provenance[key] = [name for name in provenance[key] if name in names]
    return {"cas_provenance": provenance, FOOTPRINTS: kept}


def latest_step(da: xr.DataArray) -> xr.DataArray:
    """The CAS rule for a temporal dataset asked without a time range: its latest step.

    A cube with a ``time`` dimension of several steps keeps the last one (as a dimension
    of length 1), with ``cas_provenance`` and :data:`FOOTPRINTS` kept to that step's
    items (:func:`at_step`); any other cube is returned as it is. The one definition of
    the rule: the engine's zonal requests and raster mode both call it.
    """
    if "time" not in da.dims or da.sizes["time"] <= 1:
        return da
    da = da.isel(time=[-1])
    return da.assign_attrs(at_step(da.attrs, da["time"].values[0]))
