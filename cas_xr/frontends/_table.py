"""The vector data cube as a table: one row per geometry, or per (geometry, time).

Columns, per dataset ``d``: ``d_<statistic>`` for each statistic, ``d_distribution_<class>``
for a class distribution (``d_weighted_distribution_<class>`` for ``weighted_frac``),
``d_coverage_fraction``, ``d_pixel_count`` and ``d_quality``
(a categorical of flag names). The input frame's index and columns are kept (a result
column replaces an input column of the same name). Static datasets repeat along time in
a long table.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import numpy as np

from cas_xr.engine import FLAGS, Plan

if TYPE_CHECKING:
    import geopandas as gpd
    import xarray as xr

__all__ = ["table_of"]


def _columns(cube: xr.Dataset, d: str, steps: int) -> dict[str, Any]:
    import pandas as pd

    def rows(a: Any, temporal: bool) -> Any:
        a = np.asarray(a)
        if temporal:
            return a.reshape(a.shape[0] * a.shape[1], *a.shape[2:])
        return np.repeat(a, steps, axis=0)

    out: dict[str, Any] = {}
    if d in cube:
        var = cube[d]
        stats = rows(var.values, "time" in var.dims)
        for k, label in enumerate(cube["zonal_statistics"].values):
            out[f"{d}_{label}"] = stats[:, k]
    for output in ("distribution", "weighted_distribution"):
        if f"{d}_{output}" in cube:
            var = cube[f"{d}_{output}"]
            dist = rows(var.values, "time" in var.dims)
            for k, label in enumerate(cube[f"{d}_class_name"].values):
                out[f"{d}_{output}_{label}"] = dist[:, k]
    for suffix in ("coverage_fraction", "pixel_count"):
        var = cube[f"{d}_{suffix}"]
        out[f"{d}_{suffix}"] = rows(var.values, "time" in var.dims)
    var = cube[f"{d}_quality"]
    out[f"{d}_quality"] = pd.Categorical.from_codes(
        rows(var.values, "time" in var.dims), categories=[f.value for f in FLAGS]
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

    temporal = "time" in cube.dims
    steps = cube.sizes["time"] if temporal else 1
    n = len(plan.series)
    base = frame.drop(columns=frame.geometry.name) if isinstance(frame, gpd.GeoDataFrame) else None
    columns: dict[str, Any] = {}
    if base is not None:
        columns.update({c: np.repeat(base[c].to_numpy(), steps) for c in base.columns})
    for target in plan.targets:
        columns.update(_columns(cube, target.dataset_id, steps))
    index: pd.Index = plan.series.index
    if temporal:
        index = pd.MultiIndex.from_arrays(
            [np.repeat(index.to_numpy(), steps), np.tile(cube["time"].values, n)],
            names=[index.name, "time"],
        )
    geometry = np.repeat(plan.series.to_numpy(), steps)
    table = gpd.GeoDataFrame(columns, geometry=geometry, crs=plan.series.crs, index=index)
    if base is not None and frame.geometry.name != "geometry":
        table = table.rename_geometry(frame.geometry.name)
    table.attrs["cas_xr"] = _metadata(plan, cube)
    return table
