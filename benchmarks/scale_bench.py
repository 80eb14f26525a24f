"""Scale benchmark (issue 6): extract_table over many catchments x 3 datasets.

Usage: python benchmarks/scale_bench.py [--size smoke|full] [--data DIR] [--skip TOOL ...]

Three float32 COGs on one grid (N x N cells, 512 x 512 tiles, DEFLATE, nodata holes),
served by a provider YAML of protocol ``local``, and jittered quadrilateral catchments
tessellating them (100,000 at full size). Tools, each in a fresh process: cas_xr
``extract_table`` on the threaded scheduler and on a 2-worker ``distributed.LocalCluster``
(processes), a cold and a warm run with the persistent result cache, one
``exact_extract`` call per dataset over all polygons (both strategies) and xvec's
``zonal_stats`` (exactextract method) per dataset. Throughput is geometries per second;
memory is the peak RSS of the measuring process and, on the cluster, of the busiest worker.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _harness import Measurement, measure, print_table, size_parser
from zonal_bench import CRS, NODATA, RES, X0, Y0, _tessellation

SIZES = {
    "smoke": {"cells": 1000, "catchments": 2_500},
    "full": {"cells": 10_000, "catchments": 100_000},
}
DATASETS = ("relief", "wetness", "soil")
PROVIDER = "bench"


# -- data -------------------------------------------------------------------------------


def _cog(path: Path, n: int, k: int) -> None:
    """A float32 COG of n x n cells; each dataset ``k`` has its own smooth field and noise."""
    import rasterio
    import rasterio.shutil
    from affine import Affine

    rng = np.random.default_rng(100 + k)
    profile = {
        "driver": "GTiff", "dtype": "float32", "count": 1, "width": n, "height": n, "crs": CRS,
        "transform": Affine(RES, 0, X0, 0, -RES, Y0), "nodata": NODATA, "tiled": True,
        "blockxsize": 512, "blockysize": 512, "BIGTIFF": "IF_SAFER",
    }  # fmt: skip
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        staging = Path(tmp) / "staging.tif"
        with rasterio.open(staging, "w", **profile) as dst:
            for r0 in range(0, n, 1024):
                rows = min(1024, n - r0)
                yy, xx = np.mgrid[r0 : r0 + rows, 0:n].astype(np.float32)
                scale = 600.0 * (k + 1)
                field = 100 * (k + 1) + 50 * np.sin(xx / scale + k) * np.cos(yy / (scale * 0.7))
                block = (field + rng.normal(0, 2 + k, size=field.shape)).astype("float32")
                block[rng.random(block.shape) < 0.001 * (k + 1)] = NODATA
                dst.write(block, 1, window=((r0, r0 + rows), (0, n)))
        rasterio.shutil.copy(
            staging, path, driver="COG", COMPRESS="DEFLATE", PREDICTOR="3", BLOCKSIZE="512",
            BIGTIFF="IF_SAFER",
        )  # fmt: skip


def prepare(data: Path, size: str) -> dict[str, Any]:
    """Create (or reuse) the COGs, the catchments and the provider YAML of one size."""
    import geopandas as gpd

    s = SIZES[size]
    data.mkdir(parents=True, exist_ok=True)
    rasters = {}
    for k, name in enumerate(DATASETS):
        path = data / f"scale_{name}_{s['cells']}.tif"
        if not path.exists():
            _cog(path, s["cells"], k)
        rasters[name] = str(path)
    geoms = data / f"scale_catchments_{s['catchments']}_{s['cells']}.parquet"
    if not geoms.exists():
        side = int(np.ceil(np.sqrt(s["catchments"])))
        polygons = _tessellation(s["cells"], side, seed=6)[: s["catchments"]]
        frame = gpd.GeoDataFrame(
            {"catchment": [f"C{i:06d}" for i in range(len(polygons))]}, geometry=polygons, crs=CRS
        )
        frame.set_index("catchment").to_parquet(geoms)
    provider = data / f"scale_provider_{s['cells']}.yaml"
    lines = [f"slug: {PROVIDER}", "protocol: local", f"endpoint: {data}", "license: CC0-1.0"]
    lines.append("datasets:")
    for name in DATASETS:
        lines += [
            f"  - name: {name}",
            f"    path: {Path(rasters[name]).name}",
            f"    crs: {CRS}",
            "    variables:",
            f"      - {{name: {name}, units: '1', nodata_value: {NODATA}}}",
        ]
    provider.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {"rasters": rasters, "geoms": str(geoms), "provider": str(provider)}


# -- tools (each runs in its own process) -----------------------------------------------


def _peak_rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _table(provider: str, geoms: str, cache_dir: str | None) -> dict[str, Any]:
    import warnings

    import geopandas as gpd

    frame = gpd.read_parquet(geoms)
    ids = [f"{PROVIDER}:{name}" for name in DATASETS]
    # from `import cas_xr` on: what it loads at import in one version and on first use in
    # another (xarray, the catalog, the engine: 0.3 s) counts the same for both
    started = time.perf_counter()
    import cas_xr as cas

    cas.configure(provider_files=[provider], progress=False, result_cache_dir=cache_dir)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PARTIAL/MISSING flags of catchments on nodata holes
        table = cas.extract_table(frame, ids, aggregation="mean")
    seconds = time.perf_counter() - started
    summary = table.attrs["cas_xr"]["summary"]
    return {
        "values": table[[f"{d}_mean" for d in ids]].to_numpy(),
        "seconds": seconds,
        "computed": summary["computed"],
        "scheduler": summary["scheduler"],
    }


def run_threads(provider: str, geoms: str, cache_dir: str | None = None) -> dict[str, Any]:
    out = _table(provider, geoms, cache_dir)
    out["worker_peak_mb"] = _peak_rss_mb()  # the threads are the workers
    return out


def run_cluster(provider: str, geoms: str) -> dict[str, Any]:
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as client,
    ):
        client.run(_warm_worker)
        out = _table(provider, geoms, None)
        out["worker_peak_mb"] = max(client.run(_peak_rss_mb).values())
    return out


def _warm_worker() -> None:
    """Load the compiled kernel on a worker, as the harness does for the measuring process."""
    sys.path.insert(0, str(Path(__file__).parent))
    from _harness import _warm_up

    _warm_up()


def run_exactextract(rasters: dict[str, str], geoms: str, strategy: str) -> dict[str, Any]:
    import geopandas as gpd
    from exactextract import exact_extract

    frame = gpd.read_parquet(geoms)
    columns = []
    for name in DATASETS:
        df = exact_extract(rasters[name], frame, ["mean"], strategy=strategy, output="pandas")
        columns.append(df["mean"].to_numpy())
    return {"values": np.column_stack(columns)}


def run_xvec(rasters: dict[str, str], geoms: str) -> dict[str, Any]:
    import geopandas as gpd
    import rioxarray
    import xvec  # noqa: F401

    frame = gpd.read_parquet(geoms)
    columns = []
    for name in DATASETS:
        opened = rioxarray.open_rasterio(rasters[name], chunks={"x": 2048, "y": 2048})
        da = opened.squeeze("band", drop=True)  # type: ignore[union-attr]
        da = da.where(da != NODATA)
        out = da.xvec.zonal_stats(
            frame.geometry.values, x_coords="x", y_coords="y", stats=["mean"],
            method="exactextract",
        )  # fmt: skip
        columns.append(np.asarray(out.values, dtype=float).ravel())
    return {"values": np.column_stack(columns)}


# -- runner -----------------------------------------------------------------------------


def _agreement(ours: Any, ref: Any) -> float:
    if ours is None or ref is None:
        return float("nan")
    a, b = np.asarray(ours, float).ravel(), np.asarray(ref, float).ravel()
    if int((np.isnan(a) != np.isnan(b)).sum()):
        return float("inf")
    both = ~np.isnan(a)
    return float(np.max(np.abs(a[both] - b[both]) / np.maximum(np.abs(b[both]), 1e-12)))


def _row(m: Measurement, catchments: int, best_rate: float, reference: Any) -> dict[str, Any]:
    result = m.result or {}
    seconds = result.get("seconds", m.seconds)
    rate = catchments / seconds
    return {
        "tool": m.tool,
        "wall_s": seconds,
        "geoms_per_s": rate,
        "x_exactextract": rate / best_rate,
        "peak_rss_mb": m.peak_rss_mb,
        "peak_worker_mb": result.get("worker_peak_mb", m.peak_rss_mb),
        "computed": result.get("computed"),
        "max_rel_diff_mean": _agreement(result.get("values"), reference),
        "error": m.error_line,
    }


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = size_parser(__doc__, SIZES, "xvec cluster exactextract")
    args = parser.parse_args(argv)
    paths = prepare(args.data, args.size)
    rasters, geoms, provider = paths["rasters"], paths["geoms"], paths["provider"]
    s = SIZES[args.size]
    work = f"{s['catchments']:,} catchments x {len(DATASETS)} datasets of {s['cells']:,}^2 cells"

    ee = [
        measure(work, f"exactextract ({strategy})", run_exactextract, rasters, geoms, strategy)
        for strategy in ("feature-sequential", "raster-sequential")
        if "exactextract" not in args.skip
    ]
    runs = [*ee, measure(work, "cas_xr extract_table (threads)", run_threads, provider, geoms)]
    if "cluster" not in args.skip:
        runs.append(
            measure(work, "cas_xr extract_table (LocalCluster 2x1)", run_cluster, provider, geoms)
        )
    with tempfile.TemporaryDirectory(dir=args.data) as cache:
        for label in ("cold", "warm"):
            tool = f"cas_xr threads, persistent cache {label}"
            runs.append(measure(work, tool, run_threads, provider, geoms, cache))
    if "xvec" not in args.skip:
        runs.append(measure(work, "xvec zonal_stats (exactextract)", run_xvec, rasters, geoms))

    best = min((m for m in ee if m.error is None), key=lambda m: m.seconds, default=None)
    best_rate = s["catchments"] / best.seconds if best else float("nan")
    reference = (best.result or {}).get("values") if best else None
    rows = [_row(m, s["catchments"], best_rate, reference) for m in runs]
    print_table(f"batch extraction, size={args.size} ({work}), {os.cpu_count()} cores", rows)
    return rows


if __name__ == "__main__":
    main()
