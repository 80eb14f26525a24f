"""The provenance of each result: what its own geometry's read touched.

A source says what it read for a unit (a batch of geometries over one dataset): its
``cas_provenance`` (protocol, endpoint, the items or files opened for the box around the
whole batch) and, under ``cas_footprints``, where each item or file lies (see
:mod:`cas_xr.sources._footprints`). That :class:`Record` is kept in the result cache
beside the values it gave, each value naming its record, so a value served from the
cache has the provenance of the computation that made it.

A result lists, of its record's items or files, those whose footprint its own geometry
touches (their interiors meet; a point on an edge touches both sides), whatever the other
geometries of its unit, of its call or of other callers needed, and however the
geometries were grouped. A call's provenance (the cube's and the table's metadata) unites
those of its results.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from cas_xr.engine._entries import Block
from cas_xr.sources._footprints import FOOTPRINTS, Footprint

if TYPE_CHECKING:
    import geopandas as gpd

__all__ = ["Provenance", "Record", "provenance_of", "provenance_within"]

_SEGMENTS = 32  # points per edge of a footprint drawn in another CRS
_BROADCAST = 1_000_000  # geometries x footprints compared at once; beyond, an STRtree
_PREPARE_FROM = 16  # exact tests from which the footprints are prepared


@dataclass(frozen=True)
class Record:
    """What a source said of one read: its provenance and where each name in it lies."""

    provenance: dict[str, Any]
    footprints: dict[str, dict[str, Footprint]]

    @classmethod
    def read(cls, attrs: Mapping[str, Any], prefix: bytes) -> tuple[bytes, Record]:
        """The record of a source's DataArray ``attrs``, and its key in the result cache.

        The key is a digest of ``prefix`` (the dataset's in the cache) and the record,
        so units that read the same items (listed in the same order) share one entry.
        The record is as the cache gives it back (JSON's types), so a result reads the
        same computed or cached. A user's cube may carry its ``cas_provenance`` as JSON
        text (a cube written by cas_xr and read back).
        """
        provenance = attrs.get("cas_provenance", {})
        if isinstance(provenance, str):
            try:
                provenance = json.loads(provenance)
            except ValueError:
                provenance = {"source": provenance}
        if not isinstance(provenance, Mapping):
            provenance = {"source": provenance}
        footprints = attrs.get(FOOTPRINTS)
        footprints = dict(footprints) if isinstance(footprints, Mapping) else {}
        raw = Record(dict(provenance), footprints).dumps()
        key = hashlib.blake2b(prefix + b"provenance" + raw, digest_size=16).digest()
        return key, cls.loads(raw)

    def dumps(self) -> bytes:
        """The record as the result cache keeps it (the source's order of entries kept)."""
        value = {"provenance": self.provenance, "footprints": self.footprints}
        return json.dumps(value, default=str).encode()

    @classmethod
    def loads(cls, raw: bytes) -> Record:
        """A record :meth:`dumps` wrote."""
        value = json.loads(raw)
        return cls(value["provenance"], value["footprints"])


def _shown(value: Any, names: Sequence[str]) -> Any:
    """What a provenance entry shows of the ``names`` touched: them, or how many."""
    if isinstance(value, int) and not isinstance(value, bool):
        return len(names)
    return sorted(names, key=str)


@dataclass(frozen=True)
class Provenance:
    """The provenance of one dataset's results in a call: per geometry, and as a whole.

    Attributes
    ----------
    records
        The records of the call's results, in order of their first geometry.
    which
        ``(n,)`` the record of each geometry (position in the input), -1 for none (a
        failed result).
    touched
        Per footprint key (``"items"``, ``"files"``, ``"tiles"``), the names whose
        footprint each geometry touches: ``names[starts[p]:starts[p + 1]]`` for the
        geometry at position ``p``, as ``(starts, names)``.
    """

    records: list[Record]
    which: npt.NDArray[np.intp]
    touched: dict[str, tuple[npt.NDArray[np.intp], npt.NDArray[np.object_]]]

    def _names(self, key: str, position: int) -> list[str]:
        starts, names = self.touched[key]
        return list(names[starts[position] : starts[position + 1]])

    def of(self, position: int) -> dict[str, Any]:
        """The provenance of the result of the geometry at ``position`` ({} for none)."""
        k = int(self.which[position])
        if k < 0:
            return {}
        record = self.records[k]
        out: dict[str, Any] = {}
        for key, value in record.provenance.items():
            if key in record.footprints:
                out[key] = _shown(value, self._names(key, position))
            else:
                out[key] = sorted(value, key=str) if isinstance(value, list) else value
        return out

    def whole(self) -> dict[str, Any]:
        """The call's provenance: lists united (and sorted), other entries the first's."""
        out: dict[str, Any] = {}
        for record in self.records:
            for key, value in record.provenance.items():
                if key in record.footprints:
                    out.setdefault(key, value)
                elif isinstance(value, list):
                    out[key] = sorted({*out.get(key, []), *value}, key=str)
                else:
                    out.setdefault(key, value)
        for key, (_, names) in self.touched.items():
            if key in out:
                out[key] = _shown(out[key], sorted(set(names.tolist()), key=str))
        return out


@functools.lru_cache(maxsize=64)
def _crs(text: str) -> Any:
    import pyproj

    return pyproj.CRS.from_user_input(text)


@functools.lru_cache(maxsize=4096)
def _outline(footprint: tuple[Any, ...], target: str) -> tuple[Any, bool]:
    """A footprint's outline in the geometries' CRS ``target``, and whether it is a box.

    In another CRS the box's edges are densified before they are transformed, so the
    outline follows their curves; None where the transform fails (outside the CRS's area).
    """
    import pyproj
    import shapely

    crs, x0, y0, x1, y1 = footprint
    box = shapely.box(x0, y0, x1, y1)
    if _crs(crs).equals(_crs(target), ignore_axis_order=True):
        return shapely.get_coordinates(box), True
    transformer = pyproj.Transformer.from_crs(_crs(crs), _crs(target), always_xy=True)
    ring = shapely.get_coordinates(shapely.segmentize(box, max(x1 - x0, y1 - y0) / _SEGMENTS))
    xy = np.column_stack(transformer.transform(ring[:, 0], ring[:, 1]))
    ok = bool(np.isfinite(xy).all()) and bool(shapely.is_valid(shapely.polygons(xy)))
    return (xy if ok else None), False


def _touching(
    geometries: npt.NDArray[np.object_], footprints: Sequence[Footprint], target: str
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Pairs ``(i, j)``: geometry ``i`` touches footprint ``j`` (vectorised).

    Touching is meeting the footprint's interior (a point on its edge touches it too). A
    footprint that is unknown (None), or cannot be drawn in the geometries' CRS, is taken
    to lie under every geometry. Boxes are compared first; only a geometry whose box
    crosses a footprint's edge (or meets a footprint that is not a box in its CRS) is
    tested exactly.
    """
    import shapely

    drawn = [(None, False) if fp is None else _outline(tuple(fp[:5]), target) for fp in footprints]
    anywhere = np.array([j for j, (xy, _) in enumerate(drawn) if xy is None], dtype=np.intp)
    known = np.array([j for j, (xy, _) in enumerate(drawn) if xy is not None], dtype=np.intp)
    n = len(geometries)
    rows, cols = [np.repeat(np.arange(n), anywhere.size)], [np.tile(anywhere, n)]
    if known.size:
        outlines = [drawn[j][0] for j in known]
        exact = np.array([drawn[j][1] for j in known], dtype=bool)
        fb = np.array([[*xy.min(axis=0), *xy.max(axis=0)] for xy in outlines])
        gb = shapely.bounds(geometries)  # NaN for an empty geometry: meets nothing
        if n * known.size <= _BROADCAST:
            i, j = np.nonzero(
                (gb[:, None, 0] <= fb[None, :, 2]) & (fb[None, :, 0] <= gb[:, None, 2])
                & (gb[:, None, 1] <= fb[None, :, 3]) & (fb[None, :, 1] <= gb[:, None, 3])
            )  # fmt: skip
        else:
            i, j = shapely.STRtree(shapely.box(*fb.T)).query(geometries)
        g, f = gb[i], fb[j]
        inside = exact[j] & (
            (g[:, 0] > f[:, 0]) & (g[:, 1] > f[:, 1]) & (g[:, 2] < f[:, 2]) & (g[:, 3] < f[:, 3])
        )  # inside the box's interior, surely touching it
        keep = inside.copy()
        check = np.flatnonzero(~inside)
        if check.size:  # shapes made for this call: preparing shared ones would race
            shapes = np.array([shapely.polygons(xy) for xy in outlines], dtype=object)
            if check.size > _PREPARE_FROM:
                shapely.prepare(shapes)
            a, b = geometries[i[check]], shapes[j[check]]
            edge_only = shapely.touches(b, a) & (shapely.area(a) > 0)
            keep[check] = shapely.intersects(b, a) & ~edge_only
        rows.append(i[keep])
        cols.append(known[j[keep]])
    return np.concatenate(rows).astype(np.intp), np.concatenate(cols).astype(np.intp)


def _one(
    geometries: npt.NDArray[np.object_],
    blocks: Sequence[Block],
    records: Mapping[bytes, Record],
    target: str,
) -> Provenance:
    groups: dict[bytes, list[npt.NDArray[np.intp]]] = {}
    for block in blocks:
        if block.positions.size and block.source in records:
            groups.setdefault(block.source, []).append(block.positions)
    which = np.full(len(geometries), -1, dtype=np.intp)
    found: list[Record] = []
    pairs: dict[str, list[tuple[npt.NDArray[np.intp], npt.NDArray[np.object_]]]] = {}
    for source, parts in sorted(groups.items(), key=lambda kv: min(int(p.min()) for p in kv[1])):
        positions = np.concatenate(parts)
        which[positions] = len(found)
        record = records[source]
        found.append(record)
        for key, footprints in record.footprints.items():
            names = np.asarray(list(footprints), dtype=object)
            i, j = _touching(geometries[positions], list(footprints.values()), target)
            pairs.setdefault(key, []).append((positions[i], names[j]))
    touched = {}
    for key, found_pairs in pairs.items():
        at = np.concatenate([p for p, _ in found_pairs])
        order = np.argsort(at, kind="stable")
        starts = np.searchsorted(at[order], np.arange(len(geometries) + 1))
        touched[key] = (starts, np.concatenate([nm for _, nm in found_pairs])[order])
    return Provenance(found, which, touched)


def provenance_of(
    series: gpd.GeoSeries,
    blocks: Mapping[str, Sequence[Block]],
    records: Mapping[str, Mapping[bytes, Record]],
) -> dict[str, Provenance]:
    """The provenance of each dataset's results of a run, per geometry and as a whole.

    Parameters
    ----------
    series
        The geometries (the plan's).
    blocks
        Per dataset id, the values of the run (each block names its record).
    records
        Per dataset id, the records the blocks name.
    """
    target = series.crs.srs or series.crs.to_wkt()  # srs: what it was made from, cheaply
    geometries = series.to_numpy()
    return {d: _one(geometries, blocks[d], records.get(d, {}), target) for d in blocks}


def provenance_within(attrs: Mapping[str, Any], bbox: Sequence[float]) -> dict[str, Any]:
    """A source's provenance with its items, files or tiles cut to those in ``bbox``.

    Parameters
    ----------
    attrs
        The source DataArray's attrs (``cas_provenance`` and ``cas_footprints``).
    bbox
        ``(min_lon, min_lat, max_lon, max_lat)`` (EPSG:4326).

    Returns
    -------
    dict
        The provenance, its lists holding the names whose footprint meets ``bbox``.
    """
    import shapely

    _, record = Record.read(attrs, b"")
    box = np.array([shapely.box(*bbox)], dtype=object)
    out = dict(record.provenance)
    for key, footprints in record.footprints.items():
        if key in out:
            names = list(footprints)
            _, j = _touching(box, list(footprints.values()), "EPSG:4326")
            out[key] = _shown(out[key], [names[k] for k in j])
    return out
