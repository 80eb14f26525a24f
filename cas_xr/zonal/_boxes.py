"""Boxes of cells gathered into few reads, without reading much that nothing needs.

A box is ``(r0, r1, c0, c1)``: rows ``r0:r1`` and columns ``c0:c1``. Reading the box
around two boxes costs one request instead of two, and the cells between them: boxes are
merged while the box around them holds at most :data:`WASTE` more cells than they do.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

__all__ = ["WASTE", "Box", "around", "merged"]

#: A read may cover at most this much more than the boxes it serves.
WASTE = 0.2

Box = tuple[int, int, int, int]


def around(boxes: Sequence[Box]) -> Box:
    """The box around ``boxes``."""
    return (
        min(b[0] for b in boxes), max(b[1] for b in boxes),
        min(b[2] for b in boxes), max(b[3] for b in boxes),
    )  # fmt: skip


def _area(box: Box) -> int:
    return (box[1] - box[0]) * (box[3] - box[2])


def merged(
    boxes: Sequence[Box], most: int | None = None, whole: float = WASTE
) -> list[tuple[Box, list[int]]]:
    """``boxes`` gathered into reads: each read's box and the indices of the boxes it serves.

    Parameters
    ----------
    boxes
        The boxes needed (overlapping ones count their shared cells twice).
    most
        At most this many cells a side per read (None: no limit).
    whole
        The box around all is one read when it holds at most this much more than the
        boxes (a denser set is cheaper in one request than in many).

    Returns
    -------
    list of (box, indices)
        Every box is served by exactly one read. Pairs are merged greedily while the box
        around them fits (side and :data:`WASTE`); the box around all is tried first.
    """

    def fits(box: Box, cells: int, waste: float = WASTE) -> bool:
        side = max(box[1] - box[0], box[3] - box[2])
        return (most is None or side <= most) and _area(box) <= (1 + waste) * cells

    groups = [(box, _area(box), [k]) for k, box in enumerate(boxes)]
    if fits(around(boxes), sum(cells for _, cells, _ in groups), whole):
        return [(around(boxes), list(range(len(boxes))))]
    joined = True
    while joined:
        joined = False
        for i, j in itertools.combinations(range(len(groups)), 2):
            box = around([groups[i][0], groups[j][0]])
            cells = groups[i][1] + groups[j][1]
            if fits(box, cells):
                groups[i] = (box, cells, groups[i][2] + groups[j][2])
                del groups[j]
                joined = True
                break
    return [(box, members) for box, _, members in groups]
