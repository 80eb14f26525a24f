"""A small map of geometries coloured by value, drawn as SVG by the service (no web tiles)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["MapShape", "SvgMap", "svg_map"]

# viridis at 0, 0.25, 0.5, 0.75, 1
_RAMP = ((68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37))
_NO_VALUE = "#bbbbbb"


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
class SvgMap:
    """What the template draws."""

    width: int
    height: int
    shapes: list[MapShape]
    legend: list[tuple[str, str]]  # (colour, label)


def _rings(geometry: Mapping[str, Any]) -> list[list[Sequence[float]]]:
    kind, coords = geometry.get("type"), geometry.get("coordinates") or []
    if kind == "Polygon":
        return list(coords)
    if kind == "MultiPolygon":
        return [ring for polygon in coords for ring in polygon]
    if kind == "Point":
        return [[coords]]
    return []


def svg_map(
    geometries: Sequence[tuple[str, Mapping[str, Any]]],
    values: Mapping[int, float | None],
    *,
    geographic: bool = True,
    width: int = 640,
    height: int = 400,
    margin: int = 12,
) -> SvgMap:
    """Project ``geometries`` into a ``width`` x ``height`` box and colour them by value.

    Parameters
    ----------
    geometries
        ``(label, GeoJSON geometry)`` pairs.
    values
        Geometry position -> value (None or missing: grey).
    geographic
        Whether coordinates are longitude/latitude (then x is scaled by cos(latitude)).
    """
    rings = [_rings(g) for _, g in geometries]
    points = [p for shape in rings for ring in shape for p in ring if len(p) >= 2]
    if not points:
        return SvgMap(width, height, [], [])
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    mid = (min(ys) + max(ys)) / 2
    stretch = math.cos(math.radians(mid)) if geographic else 1.0
    span_x = max((max(xs) - min(xs)) * stretch, 1e-9)
    span_y = max(max(ys) - min(ys), 1e-9)
    scale = min((width - 2 * margin) / span_x, (height - 2 * margin) / span_y)
    height = min(height, round(span_y * scale + 2 * margin))

    def at(p: Sequence[float]) -> tuple[float, float]:
        return (
            round(margin + (p[0] - min(xs)) * stretch * scale, 2),
            round(height - margin - (p[1] - min(ys)) * scale, 2),
        )

    known = [v for v in values.values() if isinstance(v, int | float) and math.isfinite(v)]
    low, high = (min(known), max(known)) if known else (0.0, 0.0)
    shapes = []
    for i, ((label, geometry), shape) in enumerate(zip(geometries, rings, strict=True)):
        value = values.get(i)
        if isinstance(value, int | float) and math.isfinite(value):
            fill = _colour((value - low) / (high - low) if high > low else 0.5)
            title = f"{label}: {value:.4g}"
        else:
            fill, title = _NO_VALUE, f"{label}: no value"
        if geometry.get("type") == "Point":
            shapes.append(MapShape("", at(shape[0][0]), fill, title))
            continue
        path = " ".join(
            "M " + " L ".join(f"{x} {y}" for x, y in map(at, ring)) + " Z" for ring in shape
        )
        shapes.append(MapShape(path, None, fill, title))
    steps = 5 if high > low else 1
    legend = [
        (_colour(k / max(steps - 1, 1)), f"{low + (high - low) * k / max(steps - 1, 1):.4g}")
        for k in range(steps)
    ] if known else []  # fmt: skip
    return SvgMap(width, height, shapes, legend)
