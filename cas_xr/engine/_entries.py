"""Computed zonal values of one dataset, and their form in the result cache.

A :class:`Block` holds the values of some geometries for one dataset, along its time
steps (one for static data) and layers (the other dimensions of a user's cube; one for
catalog datasets). In the cache each geometry is one entry: a small header and
the raw arrays (no pickle), so a persistent cache can be read safely and quickly.
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["Block", "decode", "encode"]

# version, has time, steps, layers, statistics, classes, class outputs (bit 0: dist, 1:
# wdist), the key of the provenance record
_HEADER = struct.Struct("<BBIIIIB16s")
_VERSION = 5


@dataclass(frozen=True)
class Block:
    """Zonal values of the geometries at ``positions`` (input order) for one dataset.

    Axis 1 of the arrays runs over (time step, layer) pairs, step by step: ``rows`` is
    ``steps x layers`` (``layers`` flattens the other dimensions of a user's cube, in its
    order; 1 for catalog datasets).

    Attributes
    ----------
    positions
        ``(n,)`` positions in the input.
    stats
        ``(n, rows, statistics)`` values (NaN where no valid cell).
    coverage
        ``(n, rows)`` valid covered fraction of each geometry.
    pixels
        ``(n, rows)`` valid cells with weight > 0.
    dist
        ``(n, rows, classes)`` area fraction of each class (``classes`` may be 0; the
        last axis is empty when the distribution is not asked).
    times
        ``(steps,)`` ``datetime64[ns]``, or None for static data (one step).
    classes
        ``(classes,)`` class codes of ``dist``.
    degraded
        Whether some source chunks could not be read (treated as nodata).
    computed_ms
        ``(n,)`` milliseconds the call that computed each value took until it had it
        (kept in the cache, so a cached result can say what its computation cost).
    wdist
        ``(n, rows, classes)`` weighted share of each class (exactextract's
        ``weighted_frac``), or None when not asked.
    source
        The key of the provenance record of the read that gave the values (see
        :class:`~cas_xr.engine._provenance.Record`).
    layers
        The layers of each step (1 but for a user's cube with other dimensions).
    """

    positions: npt.NDArray[np.intp]
    stats: npt.NDArray[np.float64]
    coverage: npt.NDArray[np.float64]
    pixels: npt.NDArray[np.int64]
    dist: npt.NDArray[np.float64]
    times: npt.NDArray[np.datetime64] | None
    classes: npt.NDArray[np.float64]
    degraded: bool = False
    computed_ms: npt.NDArray[np.float64] | None = None
    wdist: npt.NDArray[np.float64] | None = None
    source: bytes = b""
    layers: int = 1


def encode(block: Block) -> list[bytes]:
    """The cache entry of each geometry of ``block``, in its order."""
    n, rows, nstats = block.stats.shape
    has_time = block.times is not None
    outputs = int(block.dist.shape[-1] > 0) | (block.wdist is not None) << 1
    steps = rows // block.layers
    sizes = (steps, block.layers, nstats, block.classes.size)
    prefix = [_HEADER.pack(_VERSION, has_time, *sizes, outputs, block.source)]
    if block.times is not None:
        prefix.append(block.times.astype("datetime64[ns]").view(np.int64).tobytes())
    prefix.append(block.classes.astype(np.float64).tobytes())
    head = b"".join(prefix)
    computed = block.computed_ms if block.computed_ms is not None else np.zeros(n)
    columns = (
        block.stats.astype(np.float64),
        block.coverage.astype(np.float64),
        block.pixels.astype(np.int64),
        block.dist.astype(np.float64),
        *(() if block.wdist is None else (block.wdist.astype(np.float64),)),
        np.asarray(computed, dtype=np.float64),
    )
    rows = np.concatenate(
        [np.ascontiguousarray(c).reshape(n, -1).view(np.uint8) for c in columns], axis=1
    )
    return [head + row.tobytes() for row in rows]


def decode(positions: Sequence[int], payloads: Sequence[bytes]) -> list[Block]:
    """Blocks of cache entries, one per distinct time axis, class list and provenance record.

    Raises
    ------
    ValueError
        If an entry was written by an incompatible version of cas_xr.
    """
    groups: dict[bytes, tuple[list[int], list[bytes]]] = {}
    for position, payload in zip(positions, payloads, strict=True):
        version, has_time, steps, _, _, ncls, _, _ = _HEADER.unpack_from(payload)
        if version != _VERSION:
            raise ValueError(f"cache entry of version {version}; expected {_VERSION}")
        signature = payload[: _HEADER.size + 8 * (steps * has_time + ncls)]
        members = groups.setdefault(signature, ([], []))
        members[0].append(position)
        members[1].append(payload[len(signature) :])
    return [_block(sig, pos, bodies) for sig, (pos, bodies) in groups.items()]


def _block(signature: bytes, positions: list[int], bodies: list[bytes]) -> Block:
    _, has_time, steps, layers, nstats, ncls, outputs, source = _HEADER.unpack_from(signature)
    offset = _HEADER.size
    times = None
    if has_time:
        times = np.frombuffer(signature, np.int64, steps, offset).view("datetime64[ns]")
        offset += 8 * steps
    classes = np.frombuffer(signature, np.float64, ncls, offset)
    n = len(bodies)
    flat = np.frombuffer(b"".join(bodies), np.uint8).reshape(n, -1)
    ndist = ncls if outputs & 1 else 0
    rows = steps * layers
    sizes = [rows * nstats, rows, rows, rows * ndist]
    if outputs & 2:
        sizes.append(rows * ncls)
    cuts = np.cumsum([0, *sizes, 1]) * 8
    columns = [flat[:, a:b] for a, b in itertools.pairwise(cuts)]
    return Block(
        positions=np.asarray(positions, dtype=np.intp),
        stats=columns[0].copy().view(np.float64).reshape(n, rows, nstats),
        coverage=columns[1].copy().view(np.float64).reshape(n, rows),
        pixels=columns[2].copy().view(np.int64).reshape(n, rows),
        dist=columns[3].copy().view(np.float64).reshape(n, rows, ndist),
        times=times,
        classes=classes.copy(),
        computed_ms=columns[-1].copy().view(np.float64).reshape(n),
        wdist=columns[4].copy().view(np.float64).reshape(n, rows, ncls) if outputs & 2 else None,
        source=source,
        layers=layers,
    )
