"""The pixel grid of a WCS coverage, read from a DescribeCoverage document (1.0.0 or 2.0.1).

GML puts a RectifiedGrid's ``origin`` at the *centre* of cell (0, 0), and WCS 2.0 lists
coordinates in the CRS's own axis order (lat/long for EPSG:4326), while WCS 1.0.0 uses
x/y order. Servers differ in the details (MapServer's 1.0.0 origin is the outer corner;
its 2.0.1 origin and offsets are printed with six decimals), so when the coverage's
envelope spans exactly the grid's cells it fixes the outer corner and cell size, and the
origin with the GML centre convention is used otherwise.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TypeVar

import pyproj
from affine import Affine

__all__ = ["CoverageGrid", "find", "findall", "parse_describe"]

T = TypeVar("T")


@dataclass(frozen=True)
class CoverageGrid:
    """A coverage's native grid.

    Attributes
    ----------
    crs
        The coverage's CRS (the ``crs`` option, else as the server names it).
    request_crs
        The CRS as the server names it, for WCS 1.0.0 requests.
    transform
        Outer corner and cell size, north-up.
    shape
        ``(rows, cols)``.
    x_label, y_label
        Axis labels for WCS 2.0 ``SUBSET``.
    nodata
        The nil/null value the description declares, if any.
    """

    crs: str
    request_crs: str
    transform: Affine
    shape: tuple[int, int]
    x_label: str = "x"
    y_label: str = "y"
    nodata: float | None = None


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def findall(element: ET.Element, name: str) -> Iterator[ET.Element]:
    """Descendants of ``element`` whose local (namespace-free) name is ``name``."""
    return (e for e in element.iter() if _local(e.tag) == name)


def find(element: ET.Element, name: str) -> ET.Element | None:
    """The first descendant of ``element`` with local name ``name``, or None."""
    return next(findall(element, name), None)


def _text(element: ET.Element, name: str) -> str:
    found = find(element, name)
    return (found.text or "").strip() if found is not None else ""


def _numbers(element: ET.Element | None) -> list[float]:
    if element is None or not (element.text or "").strip():
        raise ValueError(f"missing numbers in <{'?' if element is None else _local(element.tag)}>")
    return [float(v) for v in (element.text or "").split()]


def _y_first(crs: str) -> bool:
    try:
        axes = pyproj.CRS.from_user_input(crs).axis_info
    except pyproj.exceptions.CRSError as err:
        raise ValueError(f"unknown CRS {crs!r} (set the crs option): {err}") from None
    return bool(axes) and axes[0].direction.lower() in {"north", "south"}


def _grid(
    origin: list[float],
    vectors: list[list[float]],
    limits: tuple[list[float], list[float]],
    envelope: tuple[float, float, float, float] | None,
) -> tuple[Affine, tuple[int, int]]:
    """North-up transform (outer corner) and shape from GML grid parts given in x/y order."""
    low, high = limits
    if len(vectors) != 2 or any(len(v) != 2 for v in (*vectors, origin, low, high)):
        raise ValueError("expected a 2-D grid: two offset vectors, 2-D origin and limits")
    sizes = [int(h - lo) + 1 for lo, h in zip(low, high, strict=True)]
    col_axis = 0 if abs(vectors[0][0]) > abs(vectors[0][1]) else 1
    (a, d), (b, e) = vectors[col_axis], vectors[1 - col_axis]
    cols, rows = sizes[col_axis], sizes[1 - col_axis]
    if b or d or a <= 0 or e >= 0:
        raise NotImplementedError(
            f"only north-up, unrotated grids are supported (offset vectors {vectors})"
        )
    if envelope is not None:
        xmin, ymin, xmax, ymax = envelope
        width, height = (xmax - xmin) / cols, (ymax - ymin) / rows
        if abs(width - a) * cols < 0.5 * a and abs(height + e) * rows < -0.5 * e:
            # prefer the printed offsets when they agree: fewer rounding steps than a division
            a = a if math.isclose(a, width, rel_tol=1e-9) else width
            e = e if math.isclose(-e, height, rel_tol=1e-9) else -height
            return Affine(a, 0.0, xmin, 0.0, e, ymax), (rows, cols)
    x0 = origin[0] + low[col_axis] * a - a / 2
    y0 = origin[1] + low[1 - col_axis] * e - e / 2
    return Affine(a, 0.0, x0, 0.0, e, y0), (rows, cols)


def _xy(values: list[T], y_first: bool) -> list[T]:
    return values[::-1] if y_first else values


def _nil_20(description: ET.Element, band: int) -> float | None:
    fields = list(findall(description, "field"))
    scope = fields[band - 1] if len(fields) >= band else description
    nil = _text(scope, "nilValue")
    return float(nil) if nil else None


def _parse_20(root: ET.Element, coverage: str, band: int, crs: str | None) -> CoverageGrid:
    description = next(
        (d for d in findall(root, "CoverageDescription") if _text(d, "CoverageId") == coverage),
        None,
    )
    if description is None:
        raise LookupError(f"the description has no coverage {coverage!r}")
    grid = find(description, "RectifiedGrid")
    envelope = find(description, "Envelope")
    if grid is None:
        raise NotImplementedError("only RectifiedGrid coverages are supported")
    point = find(grid, "Point")
    crs = crs or next(
        (e.get("srsName") for e in (grid, point, envelope) if e is not None and e.get("srsName")),
        None,
    )
    if crs is None:
        raise ValueError("the description names no CRS (srsName); set the crs option")
    y_first = _y_first(crs)
    labels = (envelope.get("axisLabels") or "").split() if envelope is not None else []
    x_label, y_label = _xy(labels, y_first) if len(labels) == 2 else ("x", "y")
    bounds = None
    if envelope is not None:
        lower = _xy(_numbers(find(envelope, "lowerCorner")), y_first)
        upper = _xy(_numbers(find(envelope, "upperCorner")), y_first)
        bounds = (lower[0], lower[1], upper[0], upper[1])
    transform, shape = _grid(
        _xy(_numbers(find(grid, "pos")), y_first),
        [_xy(_numbers(v), y_first) for v in findall(grid, "offsetVector")],
        (_numbers(find(grid, "low")), _numbers(find(grid, "high"))),
        bounds,
    )
    nodata = _nil_20(description, band)
    return CoverageGrid(crs, crs, transform, shape, x_label, y_label, nodata)


def _parse_10(root: ET.Element, coverage: str, crs: str | None) -> CoverageGrid:
    offering = next(
        (o for o in findall(root, "CoverageOffering") if _text(o, "name") == coverage), None
    )
    if offering is None:
        raise LookupError(f"the description has no coverage {coverage!r}")
    domain, grid = find(offering, "spatialDomain"), find(offering, "RectifiedGrid")
    if domain is None or grid is None:
        raise NotImplementedError("only RectifiedGrid coverages are supported")
    envelopes = list(findall(domain, "Envelope"))
    native = next(iter(_text(offering, "nativeCRSs").split()), None) or next(
        (e.get("srsName") for e in reversed(envelopes) if e.get("srsName")), None
    )
    crs = crs or native
    if crs is None:
        raise ValueError("the description names no CRS (nativeCRSs or srsName); set the crs option")
    envelope = next((e for e in envelopes if e.get("srsName") == native), None)
    bounds = None
    if envelope is not None:
        (x0, y0), (x1, y1) = (_numbers(p) for p in findall(envelope, "pos"))
        bounds = (x0, y0, x1, y1)
    transform, shape = _grid(
        _numbers(find(grid, "pos")),
        [_numbers(v) for v in findall(grid, "offsetVector")],
        (_numbers(find(grid, "low")), _numbers(find(grid, "high"))),
        bounds,
    )
    nulls = find(offering, "nullValues")
    null = _text(nulls, "singleValue") if nulls is not None else ""
    nodata = float(null) if null else None
    return CoverageGrid(crs, native or crs, transform, shape, nodata=nodata)


def parse_describe(
    root: ET.Element, *, coverage: str, version: str, band: int = 1, crs: str | None = None
) -> CoverageGrid:
    """The grid of ``coverage`` in a parsed DescribeCoverage answer.

    Parameters
    ----------
    root
        The parsed XML document.
    coverage
        Coverage id (2.0.1) or name (1.0.0).
    version
        ``"2.0.1"`` or ``"1.0.0"``.
    band
        1-based band whose nil value is reported (2.0.1).
    crs
        The coverage's CRS, over the description's (which may lack or misstate it).

    Returns
    -------
    CoverageGrid

    Raises
    ------
    LookupError
        If the document does not describe ``coverage``.
    NotImplementedError
        For grids this reader does not handle (referenceable, rotated, south-up).
    ValueError
        If a required element is missing or malformed.
    """
    if version == "1.0.0":
        return _parse_10(root, coverage, crs)
    return _parse_20(root, coverage, band, crs)
