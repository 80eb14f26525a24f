"""Where each item or file a source read lies, so provenance can be told per geometry.

A source lists in its ``cas_provenance`` the items (STAC) or files (a glob of GeoTIFF
tiles) it opened for a box around some geometries. Beside it, under the attribute
:data:`FOOTPRINTS`, it records the footprint of each: ``{key: {name: footprint}}``, where
``key`` is the provenance list the name belongs to (``"items"``, ``"files"``) and a
footprint is ``[crs, xmin, ymin, xmax, ymax]`` (the bounds in that CRS), or None when
the source cannot tell (the name is then taken to lie under every geometry read with it).
The engine keeps this internal attribute with each result and lists, for each geometry,
only the names whose footprint the geometry touches.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

__all__ = ["FOOTPRINTS", "Footprint", "widened"]

#: The attribute a source's DataArray carries the footprints under.
FOOTPRINTS = "cas_footprints"

#: ``[crs, xmin, ymin, xmax, ymax]``, or None for "anywhere the source read".
Footprint = list[Any] | None

_METRES_PER_DEGREE = 111_320.0


def _widen(footprint: Footprint, pad_deg: float) -> Footprint:
    if footprint is None:
        return None
    import pyproj

    crs, x0, y0, x1, y1 = footprint
    parsed = pyproj.CRS.from_user_input(crs)
    if parsed.is_geographic:
        cos = max(math.cos(math.radians(max(abs(y0), abs(y1)) + pad_deg)), 0.01)
        dx, dy = pad_deg / cos, pad_deg
    else:  # the pad in the CRS's linear unit
        factor = parsed.axis_info[0].unit_conversion_factor if parsed.axis_info else 1.0
        dx = dy = pad_deg * _METRES_PER_DEGREE / (factor or 1.0)
    return [crs, x0 - dx, y0 - dy, x1 + dx, y1 + dy]


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
