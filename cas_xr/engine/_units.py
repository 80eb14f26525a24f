"""Units of work: one batch of geometries over one dataset, or several on the same grid.

Each dataset is opened lazily around the batch (:meth:`Target.open`).
Datasets that open on the very same grid (CRS, transform, shape, time steps, dtype and
nodata) are stacked along a ``layer`` dimension into one :func:`~cas_xr.zonal.zonal`
call, so the geometries are prepared and the cell coverage of each is computed once for
all of them. :func:`compute_unit` builds a unit's graph and computes it in one call, so on a
cluster a unit is one task: the workers build the graphs, the client only plans.
"""

from __future__ import annotations

import functools
from collections.abc import Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from cas_xr.engine._entries import Block
from cas_xr.engine._failures import read_failures
from cas_xr.engine._targets import Target
from cas_xr.errors import LimitExceededError
from cas_xr.models import TimeRange, Variable

if TYPE_CHECKING:
    import geopandas as gpd
    import xarray as xr

    from cas_xr.engine._scheduler import Scheduler
    from cas_xr.zonal._callables import Reduction

__all__ = [
    "Member",
    "Recipe",
    "Unit",
    "class_codes",
    "compute_unit",
    "group",
    "lonlat_bounds",
    "open_member",
    "to_blocks",
]


_MAX_CLASSES = 100_000


@dataclass(frozen=True)
class Member:
    """A dataset opened around a batch."""

    target: Target
    data: xr.DataArray


@dataclass(frozen=True)
class Unit:
    """Geometries (positions in the input, and the shapes) and the datasets computed together.

    ``weights`` is the weights raster on the members' grid (see
    :func:`~cas_xr.engine._weights.weights_on`), when the statistics need one.
    """

    positions: npt.NDArray[np.intp]
    geometries: gpd.GeoSeries
    members: list[Member]
    weights: xr.DataArray | None = None

    @property
    def results(self) -> int:
        """The number of (geometry, dataset) results the unit yields."""
        return self.positions.size * len(self.members)


@functools.cache
def _lonlat() -> Any:
    """EPSG:4326, parsed once."""
    import pyproj

    return pyproj.CRS.from_epsg(4326)


def lonlat_bounds(geometries: gpd.GeoSeries) -> tuple[float, ...]:
    """The lon/lat box around ``geometries``."""
    import pyproj
    import shapely

    x0, y0, x1, y1 = (float(v) for v in shapely.total_bounds(geometries.to_numpy()))
    crs = pyproj.CRS.from_user_input(geometries.crs)
    lonlat = _lonlat()
    if crs.equals(lonlat, ignore_axis_order=True):
        return x0, y0, x1, y1
    transformer = pyproj.Transformer.from_crs(crs, lonlat, always_xy=True)
    return tuple(transformer.transform_bounds(x0, y0, x1, y1, densify_pts=21))


def open_member(
    target: Target, bounds: tuple[float, ...], time_range: TimeRange | None, *, latest_step: bool
) -> Member:
    """Open ``target`` lazily over ``bounds`` (lon/lat) and ``time_range``."""
    return Member(target, target.open(bounds, time_range, latest_step=latest_step))


def class_codes(
    da: xr.DataArray, variable: Variable, scheduler: Scheduler | None = None
) -> npt.NDArray[np.float64]:
    """The class codes of a class statistic: the catalog's, else the distinct values of ``da``.

    Parameters
    ----------
    da
        The dataset's cube.
    variable
        Catalog metadata (class names).
    scheduler
        Where to find the distinct values of ``da`` when they are needed (default: Dask's
        current scheduler).

    Raises
    ------
    LimitExceededError
        If continuous data hold too many distinct values for a class statistic.
    """
    if variable.class_names:
        return np.asarray(sorted(variable.class_names), dtype=np.float64)
    import dask
    import dask.array

    data = da.data
    if dask.is_dask_collection(data):  # the distinct values, found where the chunks are
        lazy = dask.array.unique(data)
        (distinct,) = dask.compute(lazy) if scheduler is None else scheduler.compute(lazy)
    else:
        distinct = np.unique(data)
    values = np.asarray(distinct, dtype=np.float64)
    nodata = da.attrs.get("nodata")
    classes = values[~np.isnan(values) & (values != nodata if nodata is not None else True)]
    if classes.size > _MAX_CLASSES:
        raise LimitExceededError(
            f"{classes.size} distinct values: too many for a class statistic of continuous data "
            f"(at most {_MAX_CLASSES}); use mean, median, min, max, std or sum"
        )
    return classes


def _grid(da: xr.DataArray) -> Hashable:
    """What datasets must share to be stacked as layers of one array."""
    import rioxarray  # noqa: F401  (registers .rio)

    times = da["time"].values.tobytes() if "time" in da.dims else b""
    crs = da.rio.crs
    return (
        crs.to_wkt() if crs is not None else None,
        tuple(da.rio.transform(recalc=True))[:6],
        tuple(da.shape),
        da.dims,
        times,
        str(da.dtype),
        repr(da.attrs.get("nodata")),
    )


def group(members: list[Member], *, distribution: bool) -> list[list[Member]]:
    """Members that can be stacked, together (each alone for class distributions and cubes).

    A user's cube may use any dimension names, order and encoding, which
    :func:`~cas_xr.zonal.zonal` sorts out for it alone.
    """
    if distribution or len(members) < 2:
        return [[m] for m in members]
    groups: dict[Hashable, list[Member]] = {}
    for k, member in enumerate(members):
        key = ("cube", k) if member.target.cube is not None else _grid(member.data)
        groups.setdefault(key, []).append(member)
    return list(groups.values())


@dataclass(frozen=True)
class Recipe:
    """How to compute units: small, so that it travels with each task."""

    stats: list[str]
    weights: str
    area_weighted: bool
    scheduler: str  # the Dask scheduler of a unit's own graph
    small_cells: int = 0  # a unit whose windows hold at most this many cells runs eagerly
    window: int | None = None  # side (cells) of a zonal task's window; None: the chunks'
    reductions: tuple[Reduction, ...] = ()  # the user's functions (in-process requests only)

    @property
    def numeric(self) -> bool:
        """Whether statistics along ``zonal_statistics`` are asked."""
        classes = ("distribution", "weighted_distribution")
        return bool(self.reductions) or any(s not in classes for s in self.stats)

    @property
    def zonal_stats(self) -> list[Any]:
        """``stats`` for :func:`~cas_xr.zonal.zonal`: the names, then the reductions."""
        return [*self.stats, *((r.name, r.func, dict(r.kwargs)) for r in self.reductions)]

    @property
    def distribution(self) -> bool:
        """Whether the class distribution is asked."""
        return "distribution" in self.stats

    @property
    def weighted_distribution(self) -> bool:
        """Whether the weighted class distribution (``weighted_frac``) is asked."""
        return "weighted_distribution" in self.stats


def build(unit: Unit, recipe: Recipe) -> tuple[list[Any], dict[str, Any]]:
    """The unit's lazy arrays and its coordinates.

    The arrays are the coverage fractions and pixel counts, the statistics (if any), the
    class distribution and the weighted one (if asked), each of shape ``(geometry, layer,
    ...)`` with layer ``k`` holding member ``k``, then the count of failed chunks among
    those read (see :func:`~cas_xr.engine._failures.read_failures`) of each member whose
    source reports them.

    Compute the arrays together (``dask.compute(*arrays)``) so that they share the
    kernel's tasks; optimised one by one, each would run the kernel again.
    """
    import rioxarray  # noqa: F401  (registers .rio: a worker process may not have it yet)
    import xarray as xr

    from cas_xr.zonal._api import zonal_run
    from cas_xr.zonal._fusion import no_fusion

    first = unit.members[0]
    # drop_conflicts would compare (so compute) the members' lazy failed-chunk arrays
    layers = [m.data.copy(deep=False) for m in unit.members]
    for layer in layers:
        layer.attrs.pop("cas_failed_chunks", None)
    if len(layers) == 1:  # no layer dim to stack along: the outputs get its axis below
        stacked = layers[0]
    else:
        stacked = xr.concat(
            layers, dim="layer", coords="minimal", compat="override", join="override",
            combine_attrs="drop_conflicts",
        )  # fmt: skip
    key = "v" if "v" not in stacked.dims else "values"  # zonal's cube labels dims and values
    stacked.name = key
    crs = first.data.rio.crs
    by_class = recipe.distribution or recipe.weighted_distribution
    classes = class_codes(first.data, first.target.variable) if by_class else None
    # a source that reports failed chunks is counted over the graph: it stays lazy
    flagged = any("cas_failed_chunks" in m.data.attrs for m in unit.members)
    with no_fusion():  # each window's arrays are optimised as its task is made
        run = zonal_run(
            stacked, unit.geometries, recipe.zonal_stats, weights=recipe.weights,
            weights_raster=unit.weights,
            area_weighted=recipe.area_weighted and bool(crs.is_geographic),
            classes=classes, nodata=first.data.attrs.get("nodata"),
            eager_cells=0 if flagged else recipe.small_cells, chunks=recipe.window,
            checked=True,  # the plan checked each geometry
        )  # fmt: skip
    if run.reductions:  # labelled on the cube
        cube = run.cube()
        data: dict[Hashable, Any] = {k: v.data for k, v in cube.data_vars.items()}
        coords: dict[Hashable, Any] = {
            k: cube[k].values for k in ("time", "class") if k in cube.dims
        }
    else:  # the cube's arrays, without the cube
        labelled, coords = run.labelled()
        data = {k: v[1] for k, v in labelled.items()}
    if len(layers) == 1:  # the layer axis, after the geometry's, as concat would give it
        data = {k: v[:, None] for k, v in data.items()}
    arrays = [data["coverage_fraction"], data["pixel_count"]]
    if recipe.numeric:
        arrays.append(data[key])
    if recipe.distribution:
        arrays.append(data["distribution"])
    if recipe.weighted_distribution:
        arrays.append(data["weighted_distribution"])
    failed = [read_failures(m.data, *arrays) for m in unit.members]
    arrays += [f for f in failed if f is not None]
    meta = {
        "times": np.asarray(coords["time"]) if "time" in coords else None,
        "classes": np.asarray(coords["class"]) if by_class else np.empty(0),
        "failed": [f is not None for f in failed],
    }
    return arrays, meta


def compute_unit(unit: Unit, recipe: Recipe) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Build a unit's graph and compute it (a task: in a local thread or on a worker).

    A unit whose windows hold at most ``recipe.small_cells`` cells is computed while it
    is built, in this thread, without a Dask graph (see :func:`~cas_xr.zonal.zonal`'s
    ``eager_cells``); on a cluster that happens on the worker that runs the unit.

    Returns
    -------
    tuple
        The computed arrays and the coordinates, for :func:`to_blocks`.
    """
    import dask

    from cas_xr.zonal._reads import compute

    arrays, meta = build(unit, recipe)
    if not any(dask.is_dask_collection(a) for a in arrays):  # a small unit: already computed
        return tuple(arrays), meta
    return compute(*arrays, scheduler=recipe.scheduler), meta


def to_blocks(
    unit: Unit, recipe: Recipe, values: tuple[Any, ...], meta: dict[str, Any]
) -> list[tuple[Target, Block]]:
    """The computed arrays of a unit as one block per member dataset (layer).

    A member's outputs run over ``(time, *other dims)`` (:meth:`Target.open` puts time
    first; ``zonal`` keeps the others in the cube's order): flattened, they are the
    block's (step, layer) rows.
    """
    computed = iter(values)
    coverage, pixels = next(computed), next(computed)
    stats = next(computed) if recipe.numeric else None
    dist = next(computed) if recipe.distribution else None
    wdist = next(computed) if recipe.weighted_distribution else None
    failed = [next(computed) if has else 0 for has in meta["failed"]]
    n = unit.positions.size
    times = meta["times"]
    steps = 1 if times is None else times.size
    classes = np.asarray(meta["classes"], dtype=np.float64)
    blocks = []
    for k, member in enumerate(unit.members):
        layers = member.target.layer_count
        rows = steps * layers
        block = Block(
            positions=unit.positions,
            stats=np.empty((n, rows, 0)) if stats is None else stats[:, k].reshape(n, rows, -1),
            coverage=np.asarray(coverage[:, k], dtype=np.float64).reshape(n, rows),
            pixels=np.asarray(pixels[:, k], dtype=np.int64).reshape(n, rows),
            dist=(
                np.empty((n, rows, 0))
                if dist is None
                else dist[:, k].reshape(n, rows, classes.size)
            ),
            times=None if times is None else times.astype("datetime64[ns]"),
            classes=classes,
            degraded=bool(np.sum(failed[k])),
            wdist=None if wdist is None else wdist[:, k].reshape(n, rows, classes.size),
            layers=layers,
        )
        blocks.append((member.target, block))
    return blocks
