"""Boxes of cells: ``(r0, r1, c0, c1)`` is rows ``r0:r1`` and columns ``c0:c1``.

Reads are planned on boxes: the geometries' windows, the parts of chunks under them, and
the rectangles a reader fetches (see :func:`cas_xr.zonal._cover.cover`).
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["Box", "around"]

Box = tuple[int, int, int, int]


def around(boxes: Sequence[Box]) -> Box:
    """The box around ``boxes``."""
    return (
        min(b[0] for b in boxes), max(b[1] for b in boxes),
        min(b[2] for b in boxes), max(b[3] for b in boxes),
    )  # fmt: skip
