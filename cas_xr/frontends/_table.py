"""The vector data cube as a table: one row per geometry, or per (geometry, time, layer).

Columns, per dataset ``d``: ``d_<statistic>`` for each statistic, ``d_distribution_<class>``
for a class distribution (``d_weighted_distribution_<class>`` for ``weighted_frac``),
``d_coverage_fraction``, ``d_pixel_count`` and ``d_quality``
(a categorical of flag names). The input frame's index and columns are kept (a result
column replaces an input column of the same name). A temporal dataset, or a user's cube
with other dimensions (``band``, ``member`` ...), makes the table long: one row per
geometry and label of each of those dimensions, which join the index; a dataset without
one of them repeats along it.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

import numpy as np

from cas_xr.engine import FLAGS, Plan

if TYPE_CHECKING:
    import geopandas as gpd
    import xarray as xr

__all__ = ["table_of"]


def _columns(cube: xr.Dataset, d: str, rows: dict[str, int]) -> dict[str, Any]:
    """The columns of dataset ``d``: each variable along ``rows`` (the table's dims)."""
    import pandas as pd

    count = math.prod(rows.values())

    def along(name: str) -> Any:
        var = cube.variables[name]
        rest = {dim: size for dim, size in var.sizes.items() if dim not in rows}
        flat = var.set_dims({**rows, **rest})  # repeated along the dims it lacks, a view
        return np.asarray(flat.values).reshape(count, *rest.values())

    out: dict[str, Any] = {}
    if d in cube:
        stats = along(d)
        for k, label in enumerate(cube["zonal_statistics"].values):
            out[f"{d}_{label}"] = stats[:, k]
    for output in ("distribution", "weighted_distribution"):
        if f"{d}_{output}" in cube:
            dist = along(f"{d}_{output}")
            for k, label in enumerate(cube[f"{d}_class_name"].values):
                out[f"{d}_{output}_{label}"] = dist[:, k]
    for suffix in ("coverage_fraction", "pixel_count"):
        out[f"{d}_{suffix}"] = along(f"{d}_{suffix}")
    out[f"{d}_quality"] = pd.Categorical.from_codes(
        along(f"{d}_quality"), categories=[f.value for f in FLAGS]
    )
    return out


def _metadata(plan: Plan, cube: xr.Dataset) -> dict[str, Any]:
    datasets = {}
    for target in plan.targets:
        attrs = cube[f"{target.dataset_id}_quality"].attrs
        valid_range = target.variable.valid_range
        datasets[target.dataset_id] = {
            "variable": target.variable.name,
            "units": target.variable.units,
            "valid_range": None if valid_range is None else list(valid_range),
            "license": attrs["license"],
            "citation": attrs["citation"],
            "provenance": json.loads(attrs["cas_provenance"]),
        }
    keys = (
        "cas_xr_version", "aggregation", "time_range", "zonal_weights", "weights_raster",
        "geometry_crs",
    )  # fmt: skip
    return {
        **{k: cube.attrs[k] for k in keys},
        "zonal_area_weighted": bool(cube.attrs["zonal_area_weighted"]),
        "datasets": datasets,
        "summary": json.loads(cube.attrs["cas_summary"]),
        "failures": json.loads(cube.attrs["cas_failures"]),
    }


def table_of(plan: Plan, cube: xr.Dataset, frame: Any) -> gpd.GeoDataFrame:
    """The table of ``cube`` (built from ``plan``), carrying the input ``frame``'s columns.

    The metadata (units, license, citation, provenance per dataset, the summary and the
    failures) is in ``attrs["cas_xr"]``, which GeoParquet files keep.
    """
    import geopandas as gpd
    import pandas as pd

    from cas_xr.zonal._inputs import coords_along

    # the table's dims beyond the geometry: time, then the cubes' other dims in order
    dims = ["time"] if "time" in cube.dims else []
    dims += list(dict.fromkeys(dim for t in plan.targets for dim, _ in t.layers))
    n = len(plan.series)
    rows = {"geometry": n, **{dim: cube.sizes[dim] for dim in dims}}
    each = math.prod(cube.sizes[dim] for dim in dims)
    base = frame.drop(columns=frame.geometry.name) if isinstance(frame, gpd.GeoDataFrame) else None
    columns: dict[str, Any] = {}
    if base is not None:
        columns.update({c: np.repeat(base[c].to_numpy(), each) for c in base.columns})
    results: dict[str, Any] = {}
    for target in plan.targets:
        results.update(_columns(cube, target.dataset_id, rows))
    for name, coord in coords_along(cube, dims):  # a user cube's labels of steps and layers
        if str(name) not in columns and str(name) not in results:
            spread = coord.expand_dims({d: n for d, n in rows.items() if d not in coord.dims})
            columns[str(name)] = spread.transpose(*rows).values.ravel()
    columns.update(results)
    index: pd.Index = plan.series.index
    if dims:
        sizes = list(rows.values())
        levels = [index.to_numpy(), *(cube[dim].values for dim in dims)]
        index = pd.MultiIndex.from_arrays(
            [
                np.tile(np.repeat(labels, math.prod(sizes[j + 1 :])), math.prod(sizes[:j]))
                for j, labels in enumerate(levels)
            ],
            names=[index.name, *dims],
        )
    geometry = np.repeat(plan.series.to_numpy(), each)
    table = gpd.GeoDataFrame(columns, geometry=geometry, crs=plan.series.crs, index=index)
    if base is not None and frame.geometry.name != "geometry":
        table = table.rename_geometry(frame.geometry.name)
    table.attrs["cas_xr"] = _metadata(plan, cube)
    return table
