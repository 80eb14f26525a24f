"""Few rectangles that cover a union of boxes, reading at most a set share more cells.

A reader that can fetch any box (a WCS) pays for each request (a round trip, the server's
work on it) and for each cell. The boxes a computation needs (the geometries' windows,
cut by the chunks) overlap and leave gaps; reading each box apart reads the overlaps
twice and takes many requests, reading the box around them all reads the gaps.
:func:`cover` reads every needed cell once, in as few disjoint rectangles as it can
while the cells read stay within ``budget`` times the cells needed.

How: the area is cut into squares of ``most`` cells a side (so no rectangle is longer);
in each square, the union of the boxes is cut in two, again and again, along the row or
column that leaves the least area in the two halves' bounding boxes, down to rectangles
that hold only needed cells. Every node of that tree is a candidate rectangle (its
bounding box). For a price ``lam`` per cell, the cheapest cover of a node is its own
rectangle (one request and its cells) or the cheapest covers of its two halves; the
smallest price whose covers fit the budget, over all squares together, gives the fewest
requests (the cells budget goes where it saves the most requests). Rectangles side by
side with the same rows (or columns) are joined at the end. Edges are compressed to
those of the boxes, so the work grows with the number of boxes, not their cells.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from cas_xr.zonal._boxes import Box

__all__ = ["cover"]

#: Steps of the bisection on log2 of the price of a cell (a request costs 1), from 2^-40.
_STEPS, _CHEAPEST = 20, -40.0


class _Nodes:
    """Candidate rectangles, each node after its parent (so children come later).

    ``kids[i]`` is empty for a leaf: a rectangle of needed cells only.
    """

    def __init__(self) -> None:
        self.boxes: list[Box] = []
        self.areas: list[int] = []
        self.kids: list[list[int]] = []
        self.roots: list[int] = []
        self.needed = 0

    def add(self, box: Box, parent: int | None) -> int:
        node = len(self.boxes)
        self.boxes.append(box)
        self.areas.append((box[1] - box[0]) * (box[3] - box[2]))
        self.kids.append([])
        if parent is None:
            self.roots.append(node)
        else:
            self.kids[parent].append(node)
        return node


def _cut_areas(
    grid: npt.NDArray[np.bool_], along: npt.NDArray[np.int64], across: npt.NDArray[np.int64]
) -> npt.NDArray[np.int64]:
    """Area of the two halves' bounding boxes for each cut between rows ``k`` and ``k + 1``.

    ``grid`` is a block of compressed cells with needed cells in its first and last row
    and column; ``along``/``across`` are the edges of its rows and columns (cells).
    """
    n = grid.shape[0]
    filled = grid.any(axis=1)
    first = np.where(filled, grid.argmax(axis=1), grid.shape[1])
    last = np.where(filled, grid.shape[1] - 1 - grid[:, ::-1].argmax(axis=1), -1)
    rows = np.arange(n)
    # the upper half is rows 0..k: its box ends at its last filled row
    upper_last = np.maximum.accumulate(np.where(filled, rows, -1))
    upper = (along[upper_last + 1] - along[0]) * (
        across[np.maximum.accumulate(last) + 1] - across[np.minimum.accumulate(first)]
    )
    # the lower half is rows k+1..n-1: its box starts at its first filled row
    lower_first = np.minimum.accumulate(np.where(filled, rows, n - 1)[::-1])[::-1]
    lower_to = np.maximum.accumulate(last[::-1])[::-1]
    lower_from = np.minimum.accumulate(first[::-1])[::-1]
    lower = (along[n] - along[lower_first]) * (across[lower_to + 1] - across[lower_from])
    out: npt.NDArray[np.int64] = upper[:-1] + lower[1:]
    return out


def _grow(nodes: _Nodes, boxes: Sequence[Box]) -> None:
    """Add the candidate rectangles of ``boxes`` (all inside one square) to ``nodes``."""
    rows = np.unique([v for b in boxes for v in b[:2]])
    cols = np.unique([v for b in boxes for v in b[2:]])
    grid = np.zeros((len(rows) - 1, len(cols) - 1), dtype=bool)
    for r0, r1, c0, c1 in boxes:
        grid[np.searchsorted(rows, r0) : np.searchsorted(rows, r1),
             np.searchsorted(cols, c0) : np.searchsorted(cols, c1)] = True  # fmt: skip
    needed = grid * np.diff(rows)[:, None] * np.diff(cols)[None, :]
    nodes.needed += int(needed.sum())
    todo: list[tuple[int, int, int, int, int | None]] = [(0, grid.shape[0], 0, grid.shape[1], None)]
    while todo:
        i0, i1, j0, j1, parent = todo.pop()
        block = grid[i0:i1, j0:j1]
        filled_rows, filled_cols = np.flatnonzero(block.any(1)), np.flatnonzero(block.any(0))
        i0, i1 = i0 + int(filled_rows[0]), i0 + int(filled_rows[-1]) + 1
        j0, j1 = j0 + int(filled_cols[0]), j0 + int(filled_cols[-1]) + 1
        node = nodes.add((int(rows[i0]), int(rows[i1]), int(cols[j0]), int(cols[j1])), parent)
        if int(needed[i0:i1, j0:j1].sum()) == nodes.areas[node]:
            continue  # a leaf: every cell is needed
        cuts = []
        for axis in (0, 1):
            block = grid[i0:i1, j0:j1] if axis == 0 else grid[i0:i1, j0:j1].T
            if block.shape[0] > 1:
                along, across = (rows[i0 : i1 + 1], cols[j0 : j1 + 1])[:: 1 - 2 * axis]
                areas = _cut_areas(block, along, across)
                k = int(areas.argmin())
                cuts.append((int(areas[k]), axis, k + 1))
        _, axis, k = min(cuts)
        if axis == 0:
            todo += [(i0, i0 + k, j0, j1, node), (i0 + k, i1, j0, j1, node)]
        else:
            todo += [(i0, i1, j0, j0 + k, node), (i0, i1, j0 + k, j1, node)]


def _choice(nodes: _Nodes, price: float) -> tuple[list[bool], int]:
    """Which nodes are read whole at ``price`` per cell (a request costs 1), and the cells."""
    n = len(nodes.boxes)
    cost, cells, whole = [0.0] * n, [0] * n, [True] * n
    areas, kids = nodes.areas, nodes.kids
    for i in range(n - 1, -1, -1):  # children before their parents
        own = 1.0 + price * areas[i]
        if kids[i]:
            left, right = kids[i]
            split = cost[left] + cost[right]
            if split < own:
                cost[i], cells[i], whole[i] = split, cells[left] + cells[right], False
                continue
        cost[i], cells[i] = own, areas[i]
    return whole, sum(cells[r] for r in nodes.roots)


def _joined(rects: list[Box], most: int) -> list[Box]:
    """``rects`` with neighbours on the same rows (then columns) joined, at most ``most`` long."""
    for axis in (0, 1):
        key = (lambda b: (b[0], b[1], b[2])) if axis == 0 else (lambda b: (b[2], b[3], b[0]))
        out: list[Box] = []
        for box in sorted(rects, key=key):
            if out:
                r0, r1, c0, c1 = out[-1]
                if axis == 0 and (r0, r1, c1) == box[:3] and box[3] - c0 <= most:
                    out[-1] = (r0, r1, c0, box[3])
                    continue
                if axis == 1 and (c0, c1, r1) == (box[2], box[3], box[0]) and box[1] - r0 <= most:
                    out[-1] = (r0, box[1], c0, c1)
                    continue
            out.append(box)
        rects = out
    return rects


def cover(boxes: Sequence[Box], most: int, budget: float) -> list[Box]:
    """Disjoint rectangles covering the cells of ``boxes``: few, within a cells budget.

    Parameters
    ----------
    boxes
        The boxes needed, ``(r0, r1, c0, c1)`` each, on one grid; they may overlap.
    most
        At most this many cells a side per rectangle.
    budget
        The rectangles hold at most this many times the cells of the union of ``boxes``
        (1: exactly the needed cells).

    Returns
    -------
    list of Box
        The fewest rectangles the method finds (see the module) within the budget.
    """
    squares: dict[tuple[int, int], list[Box]] = {}
    for r0, r1, c0, c1 in boxes:
        if r1 <= r0 or c1 <= c0:
            continue
        for i in range(r0 // most, (r1 - 1) // most + 1):
            for j in range(c0 // most, (c1 - 1) // most + 1):
                squares.setdefault((i, j), []).append(
                    (max(r0, i * most), min(r1, (i + 1) * most),
                     max(c0, j * most), min(c1, (j + 1) * most))
                )  # fmt: skip
    nodes = _Nodes()
    for part in squares.values():
        _grow(nodes, part)
    whole, cells = _choice(nodes, 0.0)
    if cells > budget * nodes.needed:
        low, high = _CHEAPEST, 1.0  # at 2 per cell, any waste costs more than a request
        for _ in range(_STEPS):
            middle = (low + high) / 2
            if _choice(nodes, 2.0**middle)[1] <= budget * nodes.needed:
                high = middle
            else:
                low = middle
        whole, _ = _choice(nodes, 2.0**high)
    rects: list[Box] = []
    todo = list(nodes.roots)
    while todo:
        node = todo.pop()
        if whole[node]:
            rects.append(nodes.boxes[node])
        else:
            todo += nodes.kids[node]
    return _joined(rects, most)
