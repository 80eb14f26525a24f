"""A small map of geometries coloured by value, drawn as SVG by the service (no web tiles).

Geometries far apart (catchments in two regions) would shrink to dots on one map, so
they are grouped (geometries closer than a few times their typical size share a group)
and each group gets a panel of its own, with one colour scale for all panels.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["MapPanel", "MapShape", "SvgMap", "svg_map"]

# viridis at 0, 0.25, 0.5, 0.75, 1
_RAMP = ((68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37))
_NO_VALUE = "#bbbbbb"
_MAX_PANELS = 4
_GAP = 3.0  # geometries closer than this many typical sizes share a panel


def _colour(t: float) -> str:
    t = min(max(t, 0.0), 1.0) * (len(_RAMP) - 1)
    i = min(int(t), len(_RAMP) - 2)
    a, b = _RAMP[i], _RAMP[i + 1]
    mix = [round(x + (y - x) * (t - i)) for x, y in zip(a, b, strict=True)]
    return "#{:02x}{:02x}{:02x}".format(*mix)


@dataclass(frozen=True)
class MapShape:
    """One geometry on the map: an SVG path (or a point), its fill and its tooltip."""

    path: str
    point: tuple[float, float] | None
    fill: str
    title: str


@dataclass(frozen=True)
class MapPanel:
    """One SVG drawing: a group of geometries near each other."""

    width: int
    height: int
    shapes: list[MapShape]


@dataclass(frozen=True)
class SvgMap:
    """What the template draws: panels and a legend of ``(colour, label)``."""

    panels: list[MapPanel]
    legend: list[tuple[str, str]]


def _rings(geometry: Mapping[str, Any]) -> list[list[Sequence[float]]]:
    kind, coords = geometry.get("type"), geometry.get("coordinates") or []
    if kind == "Polygon":
        return list(coords)
    if kind == "MultiPolygon":
        return [ring for polygon in coords for ring in polygon]
    if kind == "Point":
        return [[coords]]
    return []


def _groups(boxes: np.ndarray) -> list[list[int]]:
    """Positions of the boxes (minx, miny, maxx, maxy) that lie near each other."""
    import shapely

    size = float(np.median(np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])))
    pad = _GAP * max(size, 1e-9)
    padded = shapely.box(boxes[:, 0] - pad, boxes[:, 1] - pad, boxes[:, 2] + pad, boxes[:, 3] + pad)
    parent = list(range(len(boxes)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in shapely.STRtree(padded).query(padded, predicate="intersects").T:
        parent[root(int(i))] = root(int(j))
    groups: dict[int, list[int]] = {}
    for i in range(len(boxes)):
        groups.setdefault(root(i), []).append(i)
    return sorted(groups.values(), key=lambda g: boxes[g, 0].min())


def _panel(
    members: Sequence[int],
    rings: Sequence[list[list[Sequence[float]]]],
    styles: Sequence[tuple[str, str]],
    *,
    geographic: bool,
    width: int,
    height: int,
    margin: int = 10,
) -> MapPanel:
    points = np.array([p[:2] for i in members for ring in rings[i] for p in ring], dtype=float)
    (x0, y0), (x1, y1) = points.min(axis=0), points.max(axis=0)
    stretch = math.cos(math.radians((y0 + y1) / 2)) if geographic else 1.0
    span_x, span_y = max((x1 - x0) * stretch, 1e-9), max(y1 - y0, 1e-9)
    scale = min((width - 2 * margin) / span_x, (height - 2 * margin) / span_y)
    height = min(height, round(span_y * scale + 2 * margin))

    def at(p: Sequence[float]) -> tuple[float, float]:
        x = margin + (p[0] - x0) * stretch * scale
        return round(x, 1), round(height - margin - (p[1] - y0) * scale, 1)

    tolerance = 0.5 / (scale * min(stretch, 1.0))  # half a pixel, in coordinate units
    shapes = []
    for i in members:
        fill, title = styles[i]
        if len(rings[i]) == 1 and len(rings[i][0]) == 1:  # a point
            shapes.append(MapShape("", at(rings[i][0][0]), fill, title))
            continue
        path = " ".join(
            "M " + " L ".join(f"{x} {y}" for x, y in map(at, ring)) + " Z"
            for ring in _simplified(rings[i], tolerance)
        )
        shapes.append(MapShape(path, None, fill, title))
    return MapPanel(width, height, shapes)


def _simplified(rings: Sequence[Sequence[Sequence[float]]], tolerance: float) -> list[Any]:
    """The rings without the vertices a drawing this size cannot show."""
    import shapely

    lines = shapely.linestrings([np.asarray(ring, dtype=float)[:, :2] for ring in rings])
    return [shapely.get_coordinates(line) for line in shapely.simplify(lines, tolerance)]


def svg_map(
    geometries: Sequence[tuple[str, Mapping[str, Any]]],
    values: Mapping[int, float | None],
    *,
    geographic: bool = True,
    width: int = 640,
    height: int = 400,
) -> SvgMap:
    """Draw ``geometries`` coloured by value, in one panel per group of nearby geometries.

    Parameters
    ----------
    geometries
        ``(label, GeoJSON geometry)`` pairs.
    values
        Geometry position -> value (None or missing: grey).
    geographic
        Whether coordinates are longitude/latitude (then x is scaled by cos(latitude)).
    width, height
        The size of the whole drawing, in pixels.
    """
    rings = [_rings(g) for _, g in geometries]
    drawn = [i for i, shape in enumerate(rings) if any(len(p) >= 2 for r in shape for p in r)]
    known = [v for v in values.values() if isinstance(v, int | float) and math.isfinite(v)]
    low, high = (min(known), max(known)) if known else (0.0, 0.0)
    styles = []
    for i, (label, _) in enumerate(geometries):
        value = values.get(i)
        if isinstance(value, int | float) and math.isfinite(value):
            t = (value - low) / (high - low) if high > low else 0.5
            styles.append((_colour(t), f"{label}: {value:.4g}"))
        else:
            styles.append((_NO_VALUE, f"{label}: no value"))
    if not drawn:
        return SvgMap([], [])
    boxes = np.array(
        [
            [*np.min(pts, axis=0), *np.max(pts, axis=0)]
            for pts in (np.array([p[:2] for r in rings[i] for p in r], dtype=float) for i in drawn)
        ]
    )
    groups = [[drawn[k] for k in g] for g in _groups(boxes)]
    if len(groups) > _MAX_PANELS:
        groups = [drawn]
    panel_width = (width - 10 * (len(groups) - 1)) // len(groups)
    panels = [
        _panel(g, rings, styles, geographic=geographic, width=panel_width, height=height)
        for g in groups
    ]
    steps = 5 if high > low else 1
    legend = [
        (_colour(k / max(steps - 1, 1)), f"{low + (high - low) * k / max(steps - 1, 1):.4g}")
        for k in range(steps)
    ] if known else []  # fmt: skip
    return SvgMap(panels, legend)
