"""An embedded caller's small requests: one polygon per call, warm, a new geometry each time.

Usage: python benchmarks/small_request_bench.py [--calls 200] [--rounds 3]
[--dataset sample|netcdf|geotiff]

A modelling framework asks for one catchment at a time. Each call here is
``cas_xr.extract_sync`` of the mean of ``sample:elevation`` over a square of about
170 x 170 cells, shifted a little each call so that no answer comes from the result
cache (the hits are counted from ``AttributeResult.cached``); the anchor is
``exactextract.exact_extract(path, feature, "mean")`` on the same file, opened on each
call. ``--dataset netcdf`` reads the same cells from a NetCDF copy of the file (written to
a temporary folder) through a ``local`` provider, ``bench:elevation``, and exactextract
reads that NetCDF file (through GDAL); ``--dataset geotiff`` reads the file itself through
a ``local`` provider. Both run in this process after unmeasured warm-up
calls (imports, compiled kernels, the catalog). Each round times ``--calls`` calls of
each tool; the table gives the median over rounds of the per-round medians: wall
milliseconds, and CPU milliseconds (``time.process_time``, all threads of this process,
steadier than wall time on a busy machine), with their ratio to exactextract, and the
largest absolute difference of the means from exactextract's.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cas_xr as cas

DATASET = "sample:elevation"
#: the one sample file under every polygon (the eastern Kansas tile)
PATH = Path(cas.__file__).parent / "sample/data/elevation/elevation-K-east/elevation-K-east.tif"
SIDE = 0.17  # degrees: 170 cells of 0.001 degrees


def _polygon(i: int) -> dict[str, Any]:
    lon, lat = -96.54 + 0.00037 * (i % 50), 38.90 + 0.00041 * (i // 50)  # i < 5,000
    ring = [[lon, lat], [lon + SIDE, lat], [lon + SIDE, lat + SIDE], [lon, lat + SIDE], [lon, lat]]
    return {"type": "Polygon", "coordinates": [ring]}


_PROVIDER = """\
slug: bench
name: small-request benchmark (sample:elevation's eastern Kansas tile as a local file)
protocol: local
endpoint: {folder}
license: MIT
datasets:
  - name: elevation
    path: {path}
    array: elevation
    resolution_m: 100
    variables:
      - {{name: elevation, units: m, nodata_value: -9999.0, valid_range: [-500.0, 9000.0]}}
"""


def _local(folder: Path, kind: str) -> Path:
    """The sample tile as a ``local`` dataset, ``bench:elevation``: the file or a NetCDF copy.

    The copy is CF NetCDF on lat/lon with the file's CRS and nodata.
    """
    path = PATH
    if kind == "netcdf":
        import rioxarray

        da = rioxarray.open_rasterio(PATH, mask_and_scale=False).squeeze("band", drop=True)
        nodata = da.rio.nodata
        da = da.rename({"y": "lat", "x": "lon"}).rename("elevation")
        da.attrs = {"units": "m"}
        da.encoding = {"_FillValue": nodata}
        path = folder / "elevation.nc"
        da.to_dataset().to_netcdf(path, engine="h5netcdf")
    provider = folder / "bench.yaml"
    provider.write_text(_PROVIDER.format(folder=folder, path=path), encoding="utf-8")
    cas.configure(provider_files=[provider])
    return path


def _cas(dataset: str, i: int) -> tuple[float | None, int]:
    response = cas.extract_sync({"geometry": _polygon(i), "dataset_ids": [dataset]})
    (result,) = response.results
    return result.value, int(result.cached)  # type: ignore[return-value]


def _exactextract(path: Path, i: int) -> tuple[float | None, int]:
    from exactextract import exact_extract

    feature = {"type": "Feature", "properties": {}, "geometry": _polygon(i)}
    (out,) = exact_extract(str(path), feature, "mean")
    return float(out["properties"]["mean"]), 0


def _time(call: Callable[[int], tuple[float | None, int]], first: int, n: int) -> dict[str, Any]:
    wall, cpu, values, hits = [], [], [], 0
    for i in range(first, first + n):
        w, c = time.perf_counter(), time.process_time()
        value, hit = call(i)
        cpu.append(time.process_time() - c)
        wall.append(time.perf_counter() - w)
        values.append(value)
        hits += hit
    return {
        "wall_ms": 1000 * statistics.median(wall),
        "cpu_ms": 1000 * statistics.median(cpu),
        "values": values,
        "hits": hits,
    }


def _measure(calls: int, rounds: int, dataset: str, path: Path) -> dict[str, list[dict[str, Any]]]:
    ours, theirs = functools.partial(_cas, dataset), functools.partial(_exactextract, path)
    for tool in (ours, theirs):  # unmeasured: imports, kernels, catalog, file cache
        tool(4_999)  # a geometry no round uses
    runs: dict[str, list[dict[str, Any]]] = {"cas_xr extract_sync": [], "exactextract": []}
    for r in range(rounds):
        first = r * calls  # a new geometry on every call of every round
        runs["exactextract"].append(_time(theirs, first, calls))
        runs["cas_xr extract_sync"].append(_time(ours, first, calls))
    return runs


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--dataset", choices=["sample", "netcdf", "geotiff"], default="sample",
        help="sample:elevation (a static STAC catalog of COGs), or its tile as a local file",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.calls * args.rounds >= 4_999:
        parser.error("at most 4,998 calls in all (each a new geometry)")
    with warnings.catch_warnings(), tempfile.TemporaryDirectory() as folder:
        warnings.simplefilter("ignore")  # quality notes of the synthetic sample data
        if args.dataset != "sample":
            path = _local(Path(folder), args.dataset)
            runs = _measure(args.calls, args.rounds, "bench:elevation", path)
        else:
            runs = _measure(args.calls, args.rounds, DATASET, PATH)
    anchor = {
        k: statistics.median(run[k] for run in runs["exactextract"]) for k in ("wall_ms", "cpu_ms")
    }
    rows = []
    for tool, measured in runs.items():
        wall = statistics.median(run["wall_ms"] for run in measured)
        cpu = statistics.median(run["cpu_ms"] for run in measured)
        diff = max(
            abs(a - b)
            for run, ref in zip(measured, runs["exactextract"], strict=True)
            for a, b in zip(run["values"], ref["values"], strict=True)
            if a is not None and b is not None
        )
        rows.append({
            "tool": tool, "calls": args.calls * args.rounds,
            "cache_hits": sum(run["hits"] for run in measured),
            "median_wall_ms": wall, "x_exactextract_wall": wall / anchor["wall_ms"],
            "median_cpu_ms": cpu, "x_exactextract_cpu": cpu / anchor["cpu_ms"],
            "max_abs_diff_mean": diff,
        })  # fmt: skip
    print(
        f"## small requests ({args.dataset}): one ~170x170-cell polygon per call, medians of "
        f"{args.rounds}\n"
    )
    print("| " + " | ".join(rows[0]) + " |")
    print("|" + "---|" * len(rows[0]))
    for row in rows:
        cells = [f"{v:.3g}" if isinstance(v, float) else str(v) for v in row.values()]
        print("| " + " | ".join(cells) + " |")
    return rows


if __name__ == "__main__":
    result = main()
    sys.exit(1 if result[0]["cache_hits"] else 0)
