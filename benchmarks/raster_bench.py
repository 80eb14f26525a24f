"""Raster mode benchmark (issue 5): mosaic a box across 4 of 16 COG tiles into a COG.

Usage: python benchmarks/raster_bench.py [--size smoke|full] [--repeat N] [--data DIR]
       [--skip TOOL ...] [--round-trip-ms MS]

16 float32 COG tiles (4 x 4, EPSG:32633, 30 m, DEFLATE, 512-cell blocks, overviews, a few
nodata holes) make one N x N mosaic; a lon/lat box around the centre of the mosaic covers
parts of the 4 central tiles. Every tool writes the box, on the tiles' grid, to a COG with
the same creation options (DEFLATE with predictor, 512-cell blocks, average overviews, all
CPUs): cas_xr's ``extract_raster`` (through a static STAC catalog of the tiles, from the
disk and over HTTP from ``cas_xr.testing.serve_with_latency`` with ``--round-trip-ms``,
150 by default, per request; ``requests`` and ``mb_read`` are counted at that server),
``gdalbuildvrt`` + ``gdal_translate``, ``rioxarray.merge.merge_arrays``,
``rasterio.merge.merge`` and ``odc.stac.load``. Each runs in a fresh process, ``--repeat``
times, round-robin, and the fastest run is reported: ``wall_s`` is its work after the
process's one-off start-up (imports, pystac's extension registry, cas_xr's catalog
discovery), ``cpu_s`` the CPU time of that work (child processes included; steadier than
wall time on a shared machine), ``with_start_up_s`` the whole run. Agreement is the
number of cells that differ from cas_xr's output.
"""

from __future__ import annotations

import datetime as dt
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from cas_xr import mosaic

sys.path.insert(0, str(Path(__file__).parent))
from _harness import Measurement, measure, print_table, size_parser

SIZES = {"smoke": 1_000, "full": 10_000}  # mosaic side in cells (4 x 4 tiles)
CRS = "EPSG:32633"
RES = 30.0
X0, Y0 = 500_000.0, 5_000_000.0
NODATA = -9999.0
# every tool writes with cas_xr's COG options (cas_xr builds its average overviews itself)
COG_OPTIONS = {**mosaic.COG_OPTIONS, "OVERVIEW_RESAMPLING": "AVERAGE"}


# -- data -------------------------------------------------------------------------------


def _tile(n: int, row: int, col: int, rng: np.random.Generator) -> np.ndarray:
    yy, xx = np.mgrid[row * n : (row + 1) * n, col * n : (col + 1) * n].astype(np.float32)
    values = 500 + 200 * np.sin(xx / 900) * np.cos(yy / 700) + 0.01 * xx
    values += rng.normal(0, 5, size=values.shape).astype(np.float32)
    values[n // 3 : n // 3 + n // 20, n // 2 : n // 2 + n // 20] = NODATA  # a nodata hole
    return values.astype(np.float32)


def prepare(data: Path, size: str) -> dict[str, Any]:
    """Create (or reuse) the tiles, their STAC catalog and a provider file."""
    from affine import Affine

    from cas_xr.testing import StacCollectionSpec, StacItemSpec, make_cog, make_stac_catalog

    side = SIZES[size]
    n = side // 4
    root = data / f"raster_{side}"
    catalog = root / "catalog.json"
    tiles = [root / "tiles" / f"t{r}{c}.tif" for r in range(4) for c in range(4)]
    if not catalog.exists():
        (root / "tiles").mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(42)
        items = []
        for path in tiles:
            row, col = int(path.stem[1]), int(path.stem[2])
            transform = Affine(RES, 0, X0 + col * n * RES, 0, -RES, Y0 - row * n * RES)
            make_cog(
                path, _tile(n, row, col, rng), transform=transform, crs=CRS, nodata=NODATA,
                blocksize=512,
            )  # fmt: skip
            items.append(StacItemSpec(id=path.stem, href=path, datetime=dt.datetime(2024, 1, 1)))
        make_stac_catalog(root, [StacCollectionSpec("tiles", "benchmark tiles", items)])
    provider = _provider(root / "bench.yaml", "bench", str(catalog))
    # a lon/lat box around the centre, half a tile each way: parts of the 4 central tiles
    centre_x, centre_y = X0 + side / 2 * RES, Y0 - side / 2 * RES
    half = n / 2 * RES
    bbox = _to_lonlat(centre_x - half, centre_y - half, centre_x + half, centre_y + half)
    return {
        "tiles": [str(p) for p in tiles],
        "catalog": str(catalog),
        "provider": provider,
        "bbox": bbox,
        "bounds": _window_bounds(bbox, side),
        "out": str(root / "out"),
    }


def _provider(path: Path, slug: str, catalog: str) -> str:
    path.write_text(
        f"slug: {slug}\nprotocol: stac_static\nendpoint: {catalog}\nlicense: CC0-1.0\n"
        "datasets:\n  - name: tiles\n    variables:\n"
        f"      - {{name: height, units: m, nodata_value: {NODATA}}}\n",
        encoding="utf-8",
    )
    return str(path)


def _to_lonlat(x0: float, y0: float, x1: float, y1: float) -> tuple[float, float, float, float]:
    import pyproj

    to_lonlat = pyproj.Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)
    return to_lonlat.transform_bounds(x0, y0, x1, y1)


def _window_bounds(bbox: tuple[float, ...], side: int) -> tuple[float, float, float, float]:
    """The box snapped outward to the tiles' grid, as raster mode computes it."""
    from affine import Affine
    from odc.geo.geobox import GeoBox

    from cas_xr.mosaic import output_grid

    mosaic = GeoBox((side, side), Affine(RES, 0, X0, 0, -RES, Y0), CRS)
    box = output_grid(mosaic, (bbox[0], bbox[1], bbox[2], bbox[3])).boundingbox
    return (box.left, box.bottom, box.right, box.top)


# -- tools (each runs in its own process) -----------------------------------------------


def _write_cog(data: np.ndarray, transform: Any, path: str) -> None:
    import rasterio

    profile = {
        "driver": "COG", "count": 1, "height": data.shape[-2], "width": data.shape[-1],
        "dtype": data.dtype.name, "crs": CRS, "transform": transform, "nodata": NODATA,
        **{k.lower(): v for k, v in COG_OPTIONS.items()},
    }  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data.reshape(1, *data.shape[-2:]))


def _cpu() -> float:
    """CPU seconds used by this process and its finished children."""
    own, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _timed(started: tuple[float, float], path: str) -> dict[str, Any]:
    wall, cpu = started
    return {"seconds": time.perf_counter() - wall, "cpu_seconds": _cpu() - cpu, "path": path}


def _fresh(out: str, name: str) -> str:
    Path(out).mkdir(parents=True, exist_ok=True)
    path = Path(out) / name
    if path.exists():
        path.unlink()
    return str(path)


def _start_up() -> None:
    """Pay every tool's one-off start-up before timing: imports, pystac's extension hooks.

    The harness has already imported the common stack (xarray, dask, rioxarray...).
    """
    import odc.geo.xr
    import odc.stac  # noqa: F401
    import pystac
    import rasterio.merge  # noqa: F401
    import rioxarray.merge  # noqa: F401

    import cas_xr.sources  # noqa: F401

    item = {
        "type": "Feature", "stac_version": "1.0.0", "id": "warm-up", "geometry": None,
        "properties": {"datetime": "2024-01-01T00:00:00Z"}, "links": [], "assets": {},
    }  # fmt: skip
    pystac.Item.from_dict(item, migrate=True)  # loads the extension registry once


def _extract_raster(job: dict[str, Any], provider: str, slug: str) -> dict[str, Any]:
    import cas_xr as cas

    _start_up()
    cas.configure(provider_files=[provider])
    cas.discover()  # the catalog: read once per process
    _fresh(job["out"], f"{slug}_tiles.tif")  # extract_raster's default name
    started = (time.perf_counter(), _cpu())
    result = cas.extract_raster_sync(f"{slug}:tiles", job["bbox"], job["out"])
    return _timed(started, result.path)


def run_cas_xr(job: dict[str, Any]) -> dict[str, Any]:
    return _extract_raster(job, job["provider"], "bench")


def run_cas_xr_http(job: dict[str, Any]) -> dict[str, Any]:
    """The same, with the catalog and tiles served over HTTP at a set round trip."""
    return _extract_raster(job, job["provider_http"], "bench_http")


def run_gdal(job: dict[str, Any]) -> dict[str, Any]:
    xmin, ymin, xmax, ymax = job["bounds"]
    vrt, path = _fresh(job["out"], "mosaic.vrt"), _fresh(job["out"], "gdal.tif")
    options = [arg for k, v in COG_OPTIONS.items() for arg in ("-co", f"{k}={v}")]
    started = (time.perf_counter(), _cpu())
    subprocess.run(["gdalbuildvrt", "-q", vrt, *job["tiles"]], check=True)
    subprocess.run(
        ["gdal_translate", "-q", "-projwin", *map(repr, (xmin, ymax, xmax, ymin)),
         "-of", "COG", *options, vrt, path],
        check=True,
    )  # fmt: skip
    return _timed(started, path)


def run_merge_arrays(job: dict[str, Any]) -> dict[str, Any]:
    import rioxarray
    from rioxarray.merge import merge_arrays

    _start_up()
    path = _fresh(job["out"], "merge_arrays.tif")
    started = (time.perf_counter(), _cpu())
    arrays = [rioxarray.open_rasterio(t, masked=False) for t in job["tiles"]]
    merged = merge_arrays(arrays, bounds=job["bounds"], res=(RES, RES), nodata=NODATA)
    _write_cog(merged.values, merged.rio.transform(), path)
    return _timed(started, path)


def run_rasterio_merge(job: dict[str, Any]) -> dict[str, Any]:
    from rasterio.merge import merge

    _start_up()
    path = _fresh(job["out"], "rasterio_merge.tif")
    started = (time.perf_counter(), _cpu())
    data, transform = merge(job["tiles"], bounds=job["bounds"], res=(RES, RES), nodata=NODATA)
    _write_cog(data, transform, path)
    return _timed(started, path)


def run_odc_stac(job: dict[str, Any]) -> dict[str, Any]:
    import odc.stac
    import pystac
    from affine import Affine
    from odc.geo.geobox import GeoBox

    _start_up()
    path = _fresh(job["out"], "odc_stac.tif")
    xmin, ymin, xmax, ymax = job["bounds"]
    started = (time.perf_counter(), _cpu())
    items = list(pystac.Catalog.from_file(job["catalog"]).get_items(recursive=True))
    shape = (round((ymax - ymin) / RES), round((xmax - xmin) / RES))
    geobox = GeoBox(shape, Affine(RES, 0, xmin, 0, -RES, ymax), CRS)
    cube = odc.stac.load(items, bands=["data"], geobox=geobox, chunks={"x": 2048, "y": 2048})
    data = cube["data"].isel(time=0).values
    _write_cog(data, geobox.transform, path)
    return _timed(started, path)


HTTP_TOOL = "cas_xr extract_raster over HTTP"
TOOLS = {
    "cas_xr extract_raster": run_cas_xr,
    HTTP_TOOL: run_cas_xr_http,
    "gdalbuildvrt + gdal_translate": run_gdal,
    "rioxarray merge_arrays": run_merge_arrays,
    "rasterio.merge.merge": run_rasterio_merge,
    "odc.stac.load": run_odc_stac,
}


# -- runner -----------------------------------------------------------------------------


def _read(path: str) -> tuple[np.ndarray, Any]:
    import rasterio

    with rasterio.open(path) as src:
        return src.read(1), src.transform


def _row(
    m: Measurement, reference: tuple[np.ndarray, Any] | None, fastest: float
) -> dict[str, Any]:
    seconds = m.result["seconds"] if m.result else float("nan")
    differing = "-"
    if m.result and reference is not None:
        data, transform = _read(m.result["path"])
        same_grid = data.shape == reference[0].shape and transform.almost_equals(reference[1])
        differing = str(int((data != reference[0]).sum())) if same_grid else "other grid"
    counted = (m.result or {}).get("counted", {})
    return {
        "tool": m.tool,
        "wall_s": seconds,
        "x_fastest_other": seconds / fastest,
        "cpu_s": m.result["cpu_seconds"] if m.result else float("nan"),
        "with_start_up_s": m.seconds,
        "peak_rss_mb": m.peak_rss_mb,
        "requests": counted.get("requests"),
        "mb_read": counted["bytes"] / 1e6 if counted else None,
        "cells_differing": differing,
        "error": m.error_line,
    }


def _best(runs: list[Measurement]) -> Measurement:
    """The fastest successful run (else the first failure)."""
    ok = [m for m in runs if m.result is not None]
    return min(ok, key=lambda m: m.result["seconds"]) if ok else runs[0]


def _measure(tool: str, func: Any, job: dict[str, Any], server: Any) -> Measurement:
    """Measure one tool; the HTTP row also gets the requests and bytes its server answered."""
    if tool != HTTP_TOOL:
        return measure("4 of 16 tiles", tool, func, job)
    server.reset()
    m = measure("4 of 16 tiles", tool, func, job)
    server.wait_idle()
    if m.result is not None:
        m.result["counted"] = {"requests": server.requests, "bytes": server.bytes_sent}
    return m


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    from cas_xr.testing import serve_with_latency

    parser = size_parser(__doc__, SIZES, "e.g. gdal")
    parser.add_argument("--repeat", type=int, default=1, help="runs per tool; the best counts")
    parser.add_argument(
        "--round-trip-ms", type=float, default=150, help="round trip of the HTTP row (ms)"
    )
    args = parser.parse_args(argv)
    job = prepare(args.data, args.size)
    tools = {k: v for k, v in TOOLS.items() if not any(s in k for s in args.skip)}
    if "gdalbuildvrt + gdal_translate" in tools and not shutil.which("gdal_translate"):
        raise SystemExit("gdal_translate is not installed (apt install gdal-bin) or --skip gdal")
    root = Path(job["catalog"]).parent
    with serve_with_latency(root, round_trip=args.round_trip_ms / 1000) as server:
        http = Path(job["provider"]).with_name("bench_http.yaml")
        job["provider_http"] = _provider(http, "bench_http", f"{server.url}catalog.json")
        rounds = [
            [_measure(tool, func, job, server) for tool, func in tools.items()]
            for _ in range(args.repeat)
        ]
    runs = [_best(list(per_tool)) for per_tool in zip(*rounds, strict=True)]
    ours = runs[0]
    reference = _read(ours.result["path"]) if ours.result else None
    others = [m.result["seconds"] for m in runs if m.result and not m.tool.startswith("cas_xr")]
    fastest = min(others, default=float("nan"))
    rows = [_row(m, reference, fastest) for m in runs]
    xmin, ymin, xmax, ymax = job["bounds"]
    cells = f"{round((ymax - ymin) / RES)} x {round((xmax - xmin) / RES)}"
    side = SIZES[args.size]
    title = (
        f"raster mosaic, size={args.size} ({side}^2 in 16 tiles, box {cells} cells, "
        f"HTTP round trip {args.round_trip_ms:g} ms)"
    )
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print_table(f"{title}, best of {args.repeat}, {os.cpu_count()} cores, load {load}", rows)
    return rows


if __name__ == "__main__":
    main()
