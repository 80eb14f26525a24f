"""Blocks of values into the xvec vector data cube, with quality flags and metadata.

Per dataset ``d`` the cube holds ``d`` (statistics along ``zonal_statistics``),
``d_distribution`` and ``d_weighted_distribution`` (along ``d_class``, when asked),
``d_coverage_fraction``,
``d_pixel_count`` and ``d_quality`` (CF flags), along ``geometry``, for temporal
datasets ``time`` (the union of the steps of every temporal dataset; a dataset's coverage
is NaN at the steps it does not have), and for a user's cube its other dimensions, kept
under their names and in their order (``band``, ``member`` ...; labelled by their
coordinates, else ``0..n-1``; two cubes sharing a dimension share its labels, the union
of theirs, with NaN coverage where a cube has no layer). Every attribute is
a string, a number or a list, so the cube encodes to Zarr and netCDF as it is.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from cas_xr._version import __version__
from cas_xr.engine._classes import class_label
from cas_xr.engine._entries import Block
from cas_xr.engine._plan import Plan
from cas_xr.engine._quality import assess_quality
from cas_xr.engine._run import Failure, Outcome
from cas_xr.engine._targets import Target
from cas_xr.models import AggregationMethod, QualityFlag

if TYPE_CHECKING:
    import pandas as pd
    import xarray as xr

__all__ = ["FLAGS", "assemble"]

#: Quality flags in code order: ``d_quality`` holds the position of the flag here.
FLAGS = list(QualityFlag)
_CODES = {flag: code for code, flag in enumerate(FLAGS)}
_MISSING = _CODES[QualityFlag.MISSING]
_METHODS = {m.value: m for m in AggregationMethod}


@dataclass
class _Values:
    """One dataset's values over every geometry (input order), step and layer.

    The layers are the cells of the dataset's other dimensions ``dims`` (of ``sizes``: the
    labels all its cubes share), flattened in their order.
    """

    stats: npt.NDArray[np.float64]  # (n, steps, layers, statistics)
    coverage: npt.NDArray[np.float64]  # (n, steps, layers)
    pixels: npt.NDArray[np.int64]  # (n, steps, layers)
    dist: npt.NDArray[np.float64]  # (n, steps, layers, classes)
    wdist: npt.NDArray[np.float64]  # (n, steps, layers, classes): weighted_frac
    classes: npt.NDArray[np.float64]
    degraded: npt.NDArray[np.bool_]  # (n,)
    failed: npt.NDArray[np.bool_]  # (n,)
    temporal: bool
    dims: tuple[str, ...] = ()
    sizes: tuple[int, ...] = ()


def _is_temporal(target: Target, blocks: list[Block]) -> bool:
    if blocks:
        return blocks[0].times is not None
    return target.is_temporal


def _time_axis(outcome: Outcome) -> npt.NDArray[np.datetime64]:
    steps = [b.times for blocks in outcome.blocks.values() for b in blocks if b.times is not None]
    if not steps:
        return np.array(["NaT"], dtype="datetime64[ns]")  # temporal, but nothing computed
    return np.unique(np.concatenate(steps))


def _layer_axes(targets: Sequence[Target]) -> dict[str, pd.Index]:
    """The labels of each other dimension of the cubes: the union of theirs, in order."""
    import pandas as pd

    axes: dict[str, pd.Index] = {}
    for target in targets:
        for dim, labels in target.layers:
            index = pd.Index(labels)
            axes[dim] = index if dim not in axes else axes[dim].append(index).unique()
    return axes


def _layer_map(target: Target, axes: dict[str, pd.Index]) -> npt.NDArray[np.intp]:
    """Where each of ``target``'s layers lies among the layers of its dims on ``axes``."""
    if not target.layers:
        return np.zeros(1, dtype=np.intp)
    at = [axes[dim].get_indexer(labels) for dim, labels in target.layers]
    shape = tuple(axes[dim].size for dim, _ in target.layers)
    return np.ravel_multi_index(tuple(np.meshgrid(*at, indexing="ij")), shape).ravel()


def _values(
    plan: Plan,
    target: Target,
    outcome: Outcome,
    times: npt.NDArray[np.datetime64],
    axes: dict[str, pd.Index],
) -> _Values:
    n = len(plan.series)
    blocks = outcome.blocks[target.dataset_id]
    temporal = _is_temporal(target, blocks)
    steps = times.size if temporal else 1
    dims = tuple(dim for dim, _ in target.layers)
    sizes = tuple(axes[dim].size for dim in dims)
    width = int(np.prod(sizes, dtype=np.int64))
    at = _layer_map(target, axes)
    classes = np.unique(np.concatenate([np.empty(0), *(b.classes for b in blocks)]))
    ndist = classes.size if plan.distribution else 0
    nwdist = classes.size if plan.weighted_distribution else 0
    out = _Values(
        stats=np.full((n, steps, width, len(plan.numeric)), np.nan),
        coverage=np.zeros((n, steps, width)),
        pixels=np.zeros((n, steps, width), dtype=np.int64),
        dist=np.zeros((n, steps, width, ndist)),
        wdist=np.full((n, steps, width, nwdist), np.nan),
        classes=classes,
        degraded=np.zeros(n, dtype=bool),
        failed=np.zeros(n, dtype=bool),
        temporal=temporal,
        dims=dims,
        sizes=sizes,
    )
    for b in blocks:
        t = np.searchsorted(times, b.times) if b.times is not None else np.zeros(1, np.intp)
        shape = (b.positions.size, t.size, b.layers)  # a block's rows: (step, layer)
        cells = np.ix_(b.positions, t, at)
        out.stats[cells] = b.stats.reshape(*shape, b.stats.shape[-1])
        out.coverage[cells] = b.coverage.reshape(shape)
        out.pixels[cells] = b.pixels.reshape(shape)
        by_class = np.ix_(b.positions, t, at, np.searchsorted(classes, b.classes))
        if plan.distribution:
            out.dist[by_class] = b.dist.reshape(*shape, b.dist.shape[-1])
        if b.wdist is not None:
            out.wdist[by_class] = b.wdist.reshape(*shape, b.wdist.shape[-1])
        out.degraded[b.positions] |= b.degraded
    if temporal and blocks:  # steps of other datasets only: no coverage to speak of
        own = np.unique(np.concatenate([b.times for b in blocks if b.times is not None]))
        out.coverage[:, ~np.isin(times, own)] = np.nan
    if at.size < width:  # layers of other cubes only: no coverage either
        out.coverage[:, :, np.setdiff1d(np.arange(width), at)] = np.nan
    for failure in outcome.failures:
        if failure.dataset_id in (None, target.dataset_id):
            out.failed[failure.positions] = True
    return out


def _quality(
    plan: Plan, target: Target, values: _Values, reasons: dict[tuple[str, str], list[Any]]
) -> npt.NDArray[np.int8]:
    """Each result's flag (code), by the engine's rules; counts and a reason per flag."""
    primary = plan.numeric[0] if plan.numeric else None
    method = _METHODS.get(primary) if primary else AggregationMethod.DISTRIBUTION
    check = functools.partial(
        assess_quality,
        aggregation=method or AggregationMethod.MEAN,
        valid_range=target.variable.valid_range if method is not None else None,
        settings=plan.settings,
    )
    shape = values.coverage.shape
    valid = values.pixels.ravel() > 0
    if primary:  # the value judged is the first statistic's (None without a valid cell)
        first = values.stats[..., 0].ravel()
        valid &= ~np.isnan(first)
        pairs = zip(first.tolist(), valid.tolist(), strict=True)
        judged: list[Any] = [v if ok else None for v, ok in pairs]
    else:  # a distribution: only whether there is one matters
        judged = [{} if ok else None for ok in valid.tolist()]
    each = int(np.prod(shape[1:]))  # steps x layers of each geometry
    failed = np.repeat(values.failed, each).tolist()
    degraded = np.repeat(values.degraded, each).tolist()
    coverage = values.coverage.ravel().tolist()
    results = [
        None if skip else check(value, cover, degraded=bad)
        for value, cover, bad, skip in zip(judged, coverage, degraded, failed, strict=True)
    ]
    codes = [_MISSING if r is None else _CODES[r[0]] for r in results]
    for result in results:
        if result is not None and result[1] is not None:
            seen = reasons.setdefault((target.dataset_id, result[0].value), [0, result[1]])
            seen[0] += 1
    return np.asarray(codes, dtype=np.int8).reshape(shape)


def _dataset_attrs(target: Target, provenance: dict[str, Any]) -> dict[str, Any]:
    """Attributes every variable of a dataset carries: where the numbers come from."""
    return {
        "dataset_id": target.dataset_id,
        "variable": target.variable.name,
        **target.metadata(),
        "cas_provenance": json.dumps(
            {"dataset": target.dataset_id, "provider": target.provider, **provenance},
            default=str,
        ),
    }


def _failures(plan: Plan, failures: Iterable[Failure]) -> list[dict[str, Any]]:
    """Failures merged by (dataset, kind, message), with the input index labels."""
    merged: dict[tuple[str | None, str, str], list[npt.NDArray[np.intp]]] = {}
    for f in failures:
        merged.setdefault((f.dataset_id, f.kind, f.message), []).append(f.positions)
    index = plan.series.index
    out = []
    for (dataset_id, kind, message), parts in merged.items():
        positions = np.unique(np.concatenate(parts))
        out.append(
            {
                "dataset_id": dataset_id,
                "kind": kind,
                "message": message,
                "count": int(positions.size),
                "index": index[positions].tolist(),
            }
        )
    return out


def _dataset_vars(
    plan: Plan,
    target: Target,
    values: _Values,
    quality: npt.NDArray[np.int8],
    common: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, Any]]:
    d, variable = target.dataset_id, target.variable
    lead = ("geometry", *(("time",) if values.temporal else ()), *values.dims)

    def shaped(a: npt.NDArray[Any]) -> npt.NDArray[Any]:
        a = a.reshape(*a.shape[:2], *values.sizes, *a.shape[3:])
        return a if values.temporal else a[:, 0]

    data: dict[str, Any] = {}
    coords: dict[str, Any] = {}
    if plan.numeric:
        attrs: dict[str, Any] = {"long_name": variable.description or variable.name}
        attrs["units"] = variable.units
        if variable.valid_range is not None:
            attrs["valid_range"] = list(variable.valid_range)
        data[d] = ((*lead, "zonal_statistics"), shaped(values.stats), {**attrs, **common})
    if plan.distribution:
        data[f"{d}_distribution"] = (
            (*lead, f"{d}_class"), shaped(values.dist),
            {"long_name": "area fraction of each class", "units": "1", **common},
        )  # fmt: skip
    if plan.weighted_distribution:
        data[f"{d}_weighted_distribution"] = (
            (*lead, f"{d}_class"), shaped(values.wdist),
            {"long_name": "share of each class, weighted by the weights raster", "units": "1",
             **common},
        )  # fmt: skip
    if plan.distribution or plan.weighted_distribution:
        coords[f"{d}_class"] = values.classes
        labels = [class_label(c, variable.class_names) for c in values.classes]
        coords[f"{d}_class_name"] = (f"{d}_class", np.array(labels, dtype=object))
    data[f"{d}_coverage_fraction"] = (
        lead, shaped(values.coverage),
        {"long_name": "valid covered fraction of the geometry", "units": "1", **common},
    )  # fmt: skip
    data[f"{d}_pixel_count"] = (
        lead, shaped(values.pixels),
        {"long_name": "valid cells with weight > 0", "units": "1", **common},
    )  # fmt: skip
    data[f"{d}_quality"] = (
        lead, shaped(quality),
        {
            "long_name": "quality flag", **common,
            "flag_values": np.arange(len(FLAGS), dtype=np.int8),
            "flag_meanings": " ".join(f.value for f in FLAGS),
        },
    )  # fmt: skip
    return data, coords


def _geometries(plan: Plan) -> npt.NDArray[np.object_]:
    """The input geometries, a missing one (None) as an empty geometry (xvec needs one)."""
    import shapely

    geometries = plan.series.to_numpy().copy()
    geometries[shapely.is_missing(geometries)] = shapely.from_wkt("GEOMETRYCOLLECTION EMPTY")
    return geometries


def _carry(
    target: Target,
    coords: dict[str, Any],
    data: dict[str, Any],
    axes: dict[str, pd.Index],
    times: npt.NDArray[np.datetime64] | None,
) -> None:
    """Add a user cube's coordinates along its kept dims, as :func:`cas_xr.zonal` does.

    Each is placed on the result's axes (the union of the cubes' labels; ``time``, the
    steps kept), missing where this cube has no such label; a name already taken (the
    result's own, another cube's) is left out. See
    :func:`cas_xr.zonal._inputs.carry_coords`.
    """
    import xarray as xr

    from cas_xr.zonal._inputs import coords_along

    if target.cube is None:
        return
    cube = target.cube
    kept = {**axes, **({} if times is None else {"time": times})}
    for name, coord in coords_along(cube, kept):
        dims = [str(d) for d in coord.dims]
        if str(name) in coords or str(name) in data:
            continue
        labels = {d: cube[d].values if d in cube.coords else np.arange(cube.sizes[d]) for d in dims}
        carried = xr.DataArray(np.asarray(coord.values), dims=dims, coords=labels)
        coords[str(name)] = (tuple(dims), carried.reindex({d: kept[d] for d in dims}).values)


def assemble(
    plan: Plan, outcome: Outcome, provenance: dict[str, dict[str, Any]]
) -> tuple[xr.Dataset, dict[tuple[str, str], list[Any]]]:
    """The vector data cube of a run, and ``(dataset, flag) -> [count, a reason]``.

    ``provenance`` is the call's per dataset id (what its geometries' reads touched),
    each variable's ``cas_provenance``.

    Returns
    -------
    tuple
        The cube (attrs ``cas_summary`` and ``cas_failures`` as JSON text) and the
        non-GOOD flags with a sample reason, for the caller's warning.
    """
    from cas_xr.zonal._api import geometry_cube

    times = _time_axis(outcome)
    axes = _layer_axes(plan.targets)
    data: dict[str, Any] = {}
    coords: dict[str, Any] = {"geometry": _geometries(plan)}
    reasons: dict[tuple[str, str], list[Any]] = {}
    counts = dict.fromkeys((f.value for f in FLAGS), 0)
    temporal = False
    for target in plan.targets:
        values = _values(plan, target, outcome, times, axes)
        quality = _quality(plan, target, values, reasons)
        temporal |= values.temporal
        for code, count in zip(*np.unique(quality, return_counts=True), strict=True):
            counts[FLAGS[code].value] += int(count)
        common = _dataset_attrs(target, provenance.get(target.dataset_id, {}))
        more_data, more_coords = _dataset_vars(plan, target, values, quality, common)
        data.update(more_data)
        coords.update(more_coords)
    if plan.numeric:  # text as objects: Zarr v3 stores them as variable-length strings
        coords["zonal_statistics"] = np.array(plan.numeric, dtype=object)
    if temporal:
        coords["time"] = times
    coords.update((dim, labels.to_numpy()) for dim, labels in axes.items())
    index = plan.series.index
    name = index.name if index.name is not None and index.name not in {*data, *coords} else "index"
    coords[name] = ("geometry", index.to_numpy())
    for target in plan.targets:
        _carry(target, coords, data, axes, times if temporal else None)
    failures = _failures(plan, outcome.failures)
    summary = {
        "geometries": len(plan.series),
        "datasets": len(plan.targets),
        "results": len(plan.series) * len(plan.targets),
        "computed": outcome.computed,
        "cached": outcome.cached,
        "failed": sum(f["count"] for f in failures if f["dataset_id"])
        + sum(f["count"] * len(plan.targets) for f in failures if not f["dataset_id"]),
        "quality": counts,
        "scheduler": outcome.scheduler,
    }
    tr = plan.time_range
    cube = geometry_cube(data, coords, plan.series.crs)
    cube.attrs.update(
        title="cas_xr zonal statistics",
        cas_xr_version=__version__,
        aggregation=" ".join([*plan.stats, *(r.name for r in plan.reductions)]),
        time_range="" if tr is None else f"{tr.start.isoformat()}/{tr.end.isoformat()}",
        zonal_weights=plan.settings.zonal_weights,
        weights_raster="" if plan.weights is None else plan.weights.dataset_id,
        zonal_area_weighted=int(plan.settings.area_weighted),
        geometry_crs=plan.series.crs.to_string(),
        cas_summary=json.dumps(summary),
        cas_failures=json.dumps(failures, default=str),
    )
    return cube, reasons
