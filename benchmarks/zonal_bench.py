"""Zonal statistics benchmark (issue 3): cas_xr vs exactextract, xvec, rasterstats.

Usage: python benchmarks/zonal_bench.py [--size smoke|full] [--data DIR] [--skip TOOL ...]

W1: one float32 GeoTIFF (512 x 512 tiles, DEFLATE, nodata holes), N x N cells, with
(a) 100 large polygons, (b) 10,000 and (c) 100,000 small polygons tessellating it,
(d) 1,000 points. W2: a 12-step cube (12-band GeoTIFF) with 1,000 polygons.
Every tool runs in a fresh process (wall time, peak RSS); agreement is the largest
relative difference of the mean against exactextract's.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _harness import Measurement, measure, print_table, size_parser

SIZES = {
    "smoke": {"w1": 1000, "w2": 500, "a": 16, "b": 400, "c": 2500, "d": 100, "w2_polygons": 100},
    "full": {
        "w1": 10_000,
        "w2": 5_000,
        "a": 100,
        "b": 10_000,
        "c": 100_000,
        "d": 1_000,
        "w2_polygons": 1_000,
    },
}
CRS = "EPSG:32633"
RES = 30.0
X0, Y0 = 500_000.0, 5_000_000.0
NODATA = -9999.0
STATS = ["mean", "min", "max", "count"]
CHUNKS = {"x": 2048, "y": 2048}


# -- data -------------------------------------------------------------------------------


def _raster(path: Path, n: int, bands: int) -> None:
    import rasterio
    from affine import Affine

    rng = np.random.default_rng(42)
    profile = {
        "driver": "GTiff", "dtype": "float32", "count": bands, "width": n, "height": n,
        "crs": CRS, "transform": Affine(RES, 0, X0, 0, -RES, Y0), "nodata": NODATA,
        "tiled": True, "blockxsize": 512, "blockysize": 512, "compress": "deflate",
        "predictor": 3, "BIGTIFF": "IF_SAFER",
    }  # fmt: skip
    tmp = path.with_suffix(".tmp.tif")
    with rasterio.open(tmp, "w", **profile) as dst:
        step = 1024
        for r0 in range(0, n, step):
            rows = min(step, n - r0)
            yy, xx = np.mgrid[r0 : r0 + rows, 0:n].astype(np.float32)
            base = 500 + 200 * np.sin(xx / 900) * np.cos(yy / 700) + 0.01 * xx
            for b in range(bands):
                block = (base + 10 * b + rng.normal(0, 5, size=base.shape)).astype("float32")
                block[rng.random(block.shape) < 0.002] = NODATA  # scattered nodata
                if r0 == 0:
                    block[: min(rows, n // 20), : n // 20] = NODATA  # a nodata hole
                dst.write(block, b + 1, window=((r0, r0 + rows), (0, n)))
    os.replace(tmp, path)


def _tessellation(n_cells: int, k: int, seed: int) -> Any:
    """k x k jittered quadrilaterals tessellating an n_cells x n_cells raster."""
    import shapely

    rng = np.random.default_rng(seed)
    size = n_cells * RES
    xs = np.linspace(X0, X0 + size, k + 1)
    ys = np.linspace(Y0 - size, Y0, k + 1)
    gx, gy = np.meshgrid(xs, ys)
    jitter = 0.3 * size / k
    gx[1:-1, 1:-1] += rng.uniform(-jitter, jitter, size=(k - 1, k - 1))
    gy[1:-1, 1:-1] += rng.uniform(-jitter, jitter, size=(k - 1, k - 1))
    rings = np.stack(
        [
            np.stack([gx[:-1, :-1], gy[:-1, :-1]], -1),
            np.stack([gx[:-1, 1:], gy[:-1, 1:]], -1),
            np.stack([gx[1:, 1:], gy[1:, 1:]], -1),
            np.stack([gx[1:, :-1], gy[1:, :-1]], -1),
            np.stack([gx[:-1, :-1], gy[:-1, :-1]], -1),
        ],
        axis=2,
    ).reshape(k * k, 5, 2)
    return shapely.polygons(rings)


def prepare(data: Path, size: str) -> dict[str, Path]:
    """Create (or reuse) the rasters and geometry files of one size."""
    import geopandas as gpd

    s = SIZES[size]
    data.mkdir(parents=True, exist_ok=True)
    paths = {"w1": data / f"w1_{s['w1']}.tif", "w2": data / f"w2_{s['w2']}.tif"}
    if not paths["w1"].exists():
        _raster(paths["w1"], s["w1"], 1)
    if not paths["w2"].exists():
        _raster(paths["w2"], s["w2"], 12)
    for key, count, n_cells in (
        ("a", s["a"], s["w1"]),
        ("b", s["b"], s["w1"]),
        ("c", s["c"], s["w1"]),
        ("w2p", s["w2_polygons"], s["w2"]),
    ):
        path = data / f"{key}_{count}_{n_cells}.parquet"
        if not path.exists():
            k = round(count**0.5)
            gpd.GeoDataFrame(
                geometry=_tessellation(n_cells, k, seed=len(key) + count), crs=CRS
            ).to_parquet(path)
        paths[key] = path
    path = data / f"d_{s['d']}_{s['w1']}.parquet"
    if not path.exists():
        rng = np.random.default_rng(7)
        origin = np.array([X0, Y0 - s["w1"] * RES])
        xy = rng.uniform(0, s["w1"] * RES, size=(s["d"], 2)) + origin
        gpd.GeoDataFrame(geometry=gpd.points_from_xy(xy[:, 0], xy[:, 1]), crs=CRS).to_parquet(path)
    paths["d"] = path
    return paths


# -- tools (each runs in its own process) -----------------------------------------------


def _open(raster: str) -> Any:
    import rioxarray

    da = rioxarray.open_rasterio(raster, chunks={"band": -1, **CHUNKS}, masked=False)
    return da.squeeze("band", drop=True) if da.sizes["band"] == 1 else da.rename(band="time")


def run_cas_xr(raster: str, geoms: str, weights: str = "exact") -> Any:
    import dask
    import geopandas as gpd

    from cas_xr.zonal import zonal

    gdf = gpd.read_parquet(geoms)
    with dask.config.set(scheduler="threads"):
        cube = zonal(_open(raster).rename("v"), gdf.geometry, STATS, weights=weights).compute()
    return cube["v"].sel(zonal_statistics="mean").values


def user_mean(values: Any, coverage: Any) -> float:
    """A user's reduction (exactextract's form): the coverage-weighted mean, in numpy."""
    return float(np.ma.average(values, weights=coverage))


def run_cas_xr_callable(raster: str, geoms: str) -> Any:
    import dask
    import geopandas as gpd

    from cas_xr.zonal import zonal

    gdf = gpd.read_parquet(geoms)
    with dask.config.set(scheduler="threads"):
        cube = zonal(_open(raster).rename("v"), gdf.geometry, [user_mean]).compute()
    return cube["v"].sel(zonal_statistics="user_mean").values


def callable_rows(
    paths: dict[str, str], read: Measurement, anchor: tuple[float, Any]
) -> list[dict[str, Any]]:
    """W1b with a Python callable (untargeted): the cost of a user reduction per geometry."""
    m = measure("W1b", "cas_xr callable (user mean)", run_cas_xr_callable, paths["w1"], paths["b"])
    return [_row(m, anchor[0], read.seconds, anchor[1])]


def run_exactextract(raster: str, geoms: str, strategy: str) -> Any:
    import geopandas as gpd
    from exactextract import exact_extract

    gdf = gpd.read_parquet(geoms)
    df = exact_extract(raster, gdf, STATS, strategy=strategy, output="pandas")
    cols = [c for c in df.columns if c.endswith("mean")]
    return df[cols].to_numpy() if len(cols) > 1 else df[cols[0]].to_numpy()


def run_xvec(raster: str, geoms: str) -> Any:
    import geopandas as gpd
    import xvec  # noqa: F401

    gdf = gpd.read_parquet(geoms)
    da = _open(raster).rename("v")
    da = da.where(da != NODATA)
    out = da.xvec.zonal_stats(
        gdf.geometry.values, x_coords="x", y_coords="y", stats=STATS, method="exactextract"
    )
    mean = out.sel(zonal_statistics="mean")
    return mean.transpose("geometry", ...).values


def run_rasterstats(raster: str, geoms: str, limit: int | None) -> Any:
    import geopandas as gpd
    from rasterstats import zonal_stats

    gdf = gpd.read_parquet(geoms)
    if limit:
        gdf = gdf.iloc[:limit]
    return np.array(
        [r["mean"] for r in zonal_stats(list(gdf.geometry), raster, stats=STATS, nodata=NODATA)],
        dtype=float,
    )


def run_read(raster: str) -> Any:
    import dask

    with dask.config.set(scheduler="threads"):
        return float(_open(raster).sum().compute())


def run_sel_nearest(raster: str, geoms: str) -> Any:
    import dask
    import geopandas as gpd
    import xarray as xr

    gdf = gpd.read_parquet(geoms)
    da = _open(raster)
    with dask.config.set(scheduler="threads"):
        picked = da.sel(
            x=xr.DataArray(gdf.geometry.x.values),
            y=xr.DataArray(gdf.geometry.y.values),
            method="nearest",
        ).compute()
    values = picked.values.astype(float)
    values[values == NODATA] = np.nan
    return values


# -- runner -----------------------------------------------------------------------------


def _agreement(ours: Any, ref: Any) -> float:
    """Largest relative difference; a tool that ran on a subset is compared on that subset."""
    if ours is None or ref is None or np.ndim(ours) == 0:
        return float("nan")  # nothing to compare (e.g. the read-only run)
    a = np.asarray(ours, float)
    b = np.asarray(ref, float)[: len(a)]
    a, b = a.ravel(), b.ravel()
    both = ~np.isnan(a) & ~np.isnan(b)
    mismatch_nan = int((np.isnan(a) != np.isnan(b)).sum())
    if mismatch_nan:
        return float("inf")
    return (
        float(np.max(np.abs(a[both] - b[both]) / np.maximum(np.abs(b[both]), 1e-12)))
        if both.any()
        else 0.0
    )


def _row(m: Measurement, exactextract_s: float, read_s: float, reference: Any) -> dict[str, Any]:
    return {
        "workload": m.workload,
        "tool": m.tool,
        "wall_s": m.seconds,
        "peak_rss_mb": m.peak_rss_mb,
        "x_exactextract": m.seconds / exactextract_s,
        "x_read": m.seconds / read_s,
        "max_rel_diff_mean": _agreement(m.result, reference),
        "error": m.error_line,
    }


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = size_parser(__doc__, SIZES, "xvec rasterstats exactextract")
    args = parser.parse_args(argv)
    paths = {k: str(v) for k, v in prepare(args.data, args.size).items()}
    rows: list[dict[str, Any]] = []

    read = {key: measure(key, "read+decode", run_read, paths[key]) for key in ("w1", "w2")}
    anchors: dict[str, tuple[float, Any]] = {}
    for workload, raster, geoms in (
        ("W1a", "w1", "a"),
        ("W1b", "w1", "b"),
        ("W1c", "w1", "c"),
        ("W2", "w2", "w2p"),
    ):
        ee = [
            measure(
                workload, f"exactextract ({s})", run_exactextract, paths[raster], paths[geoms], s
            )
            for s in ("feature-sequential", "raster-sequential")
            if "exactextract" not in args.skip
        ]
        best = min((m for m in ee if m.error is None), key=lambda m: m.seconds, default=None)
        runs = [
            measure(workload, "cas_xr exact", run_cas_xr, paths[raster], paths[geoms], "exact"),
            measure(workload, "cas_xr center", run_cas_xr, paths[raster], paths[geoms], "center"),
            *ee,
            read[raster],
        ]
        if "xvec" not in args.skip:
            runs.append(
                measure(workload, "xvec (exactextract)", run_xvec, paths[raster], paths[geoms])
            )
        if "rasterstats" not in args.skip and workload in ("W1a", "W1b"):
            limit = None if workload == "W1a" else 1000
            rs = measure(
                workload,
                f"rasterstats{'' if limit is None else ' (1000)'}",
                run_rasterstats,
                paths[raster],
                paths[geoms],
                limit,
            )
            runs.append(rs)
        ee_s, reference = (best.seconds, best.result) if best else (float("nan"), None)
        anchors[workload] = (ee_s, reference)
        rows += [_row(m, ee_s, read[raster].seconds, reference) for m in runs]
    # points: exactextract returns NaN for points, so the anchor is xarray's .sel(nearest)
    sel = measure("W1d", "xarray .sel(nearest)", run_sel_nearest, paths["w1"], paths["d"])
    ours = measure("W1d", "cas_xr points", run_cas_xr, paths["w1"], paths["d"], "exact")
    rows += [_row(m, float("nan"), read["w1"].seconds, sel.result) for m in (ours, sel)]
    rows += callable_rows(paths, read["w1"], anchors["W1b"])
    size = SIZES[args.size]
    title = f"zonal statistics, size={args.size} (W1 {size['w1']}^2, W2 {size['w2']}^2 x 12)"
    print_table(f"{title}, {os.cpu_count()} cores", rows)
    return rows


if __name__ == "__main__":
    main()
