"""Remote reads benchmark (issue 12): zonal means over HTTP with a set round trip.

Usage: python benchmarks/remote_bench.py [--size smoke|full] [--data DIR] [--skip TOOL ...]
       [--polygons N ...] [--round-trip-ms MS ...] [--bandwidth-mbps MB_S] [--timeout S]
       [--json PATH]

One float32 COG (full: 6,144 x 6,144 cells, 512 x 512 tiles, DEFLATE, predictor, scattered
nodata; ~128 MB) and a static STAC catalog of it are served from 127.0.0.1 by
``cas_xr.testing.serve_with_latency``, which sleeps the round trip before answering each
request (and, with ``--bandwidth-mbps``, paces each body); MapServer publishes the same
file as a WCS coverage behind a relay with the same round trip. Workloads are sets of
quadrilaterals of about 100 x 100 cells at random (seeded) places: 1, 5, 20, 50, 2,000 and
100,000 of them, at 50 and 150 ms. Tools: exactextract on ``/vsicurl/URL`` (rasterio),
xvec's ``zonal_stats`` (exactextract method) on ``rioxarray.open_rasterio(URL, chunks=...)``,
and cas_xr's ``extract_table`` through a ``local`` provider (``path: URL``), the same with
GDAL's reads instead of cas_xr's range reader (``GDAL_HTTP_MULTIRANGE=PARALLEL``, merged
consecutive ranges: the alternative the reader was chosen against), through
``stac_static`` (the served catalog) and through ``wcs``. Once per round trip, "second
call" times a call on a new polygon inside one tile, in a process whose first call read
the first polygon set (requests and MB of that call alone; the floor is the one tile).
GDAL-based tools read with ``GDAL_DISABLE_READDIR_ON_OPEN=EMPTY_DIR``, as cas_xr does.

Each row runs in a fresh process capped at ``--timeout`` seconds (``timeout`` in the
table); the process imports the stack and loads cas_xr's compiled kernel first (the
harness's warm-up, plus the modules the tool needs), then the tool's first call is timed:
opening the data, catalog reads included. Before the rows, one unmeasured cas_xr run on
the local file fills numba's on-disk cache. Columns: ``wall_s``; ``requests`` and
``mb_read`` (body bytes, 1 MB = 10^6 bytes) counted at the server for that row alone,
``failed`` those answered with an HTTP error (for WCS, MapServer's or the relay's, e.g. an
upstream it could not reach: each is retried), ``json_docs`` those of the requests that
fetched JSON documents (the STAC catalog's);
``mb_floor``, the compressed bytes of the internal tiles some geometry intersects (read
from the file's TileOffsets/TileByteCounts; for WCS the uncompressed bytes of the cells
in the geometries' bounding windows); ``read_x_floor``; ``peak_in_flight`` (most requests
the server was answering at once); ``x_exactextract`` (wall / exactextract's wall) and
``agreement`` (largest absolute difference of the means from exactextract's).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _harness import Measurement, measure, print_markdown, size_parser
from scale_bench import _cog
from zonal_bench import CRS, NODATA, RES, X0, Y0

SIZES = {
    "smoke": {"cells": 1536, "polygons": (5, 100), "round_trips_ms": (20,)},
    "full": {
        "cells": 6144,
        "polygons": (1, 5, 20, 50, 2_000, 100_000),
        "round_trips_ms": (50, 150),
    },
}
POLYGON_CELLS = 100  # side of the quadrilaterals, in cells
CHUNKS = {"x": 2048, "y": 2048}
COG_NAME = "dem.tif"
COLLECTION = "dem"
GDAL_ENV = {"GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR"}


# -- data -------------------------------------------------------------------------------


def _quadrilaterals(count: int, cells: int, seed: int) -> Any:
    """``count`` quadrilaterals of about POLYGON_CELLS^2 cells, wholly inside the raster."""
    import shapely

    rng = np.random.default_rng(seed)
    half = POLYGON_CELLS / 2 * RES
    margin = 1.3 * half
    centres = rng.uniform(margin, cells * RES - margin, size=(count, 2))
    centres += [X0, Y0 - cells * RES]
    square = np.array([(-1, -1), (1, -1), (1, 1), (-1, 1)], dtype=float) * half
    corners = centres[:, None, :] + square + rng.uniform(-0.25, 0.25, (count, 4, 2)) * half
    return shapely.polygons(np.concatenate([corners, corners[:, :1]], axis=1))


def prepare(data: Path, size: str, polygons: tuple[int, ...]) -> dict[str, Any]:
    """Create (or reuse) the COG, its static STAC catalog and the polygon sets."""
    import datetime as dt

    import geopandas as gpd

    from cas_xr.testing import StacCollectionSpec, StacItemSpec, make_stac_catalog

    cells = SIZES[size]["cells"]
    root = data / f"remote_{cells}"
    cog = root / COG_NAME
    if not cog.exists():
        root.mkdir(parents=True, exist_ok=True)
        _cog(cog, cells, 0)
    if not (root / "catalog.json").exists():
        item = StacItemSpec(id="dem", href=cog, datetime=dt.datetime(2024, 1, 1))
        make_stac_catalog(root, [StacCollectionSpec(COLLECTION, "benchmark raster", [item])])
    geoms = {}
    for count in polygons:
        path = data / f"remote_quads_{count}_{cells}.parquet"
        if not path.exists():
            frame = gpd.GeoDataFrame(
                {"id": [f"Q{i:06d}" for i in range(count)]},
                geometry=_quadrilaterals(count, cells, seed=count),
                crs=CRS,
            )
            frame.set_index("id").to_parquet(path)
        geoms[count] = str(path)
    return {"root": root, "cog": cog, "cells": cells, "geoms": geoms}


def floors(cog: Path, geoms: str) -> dict[str, int]:
    """Bytes a reader cannot avoid: the touched tiles (compressed) and, for WCS, the cells."""
    import geopandas as gpd
    import rasterio
    import shapely

    from cas_xr.testing import tiff_tiles

    shapes = gpd.read_parquet(geoms).geometry.values
    tiles = tiff_tiles(cog)
    with rasterio.open(cog) as src:
        (block_rows, block_cols), transform = src.block_shapes[0], src.transform
        height, width, itemsize = src.height, src.width, np.dtype(src.dtypes[0]).itemsize
    keys = list(tiles)
    boxes = [
        shapely.box(*_bounds(transform, r * block_rows, c * block_cols, block_rows, block_cols))
        for r, c in keys
    ]
    touched = np.unique(shapely.STRtree(boxes).query(shapes, predicate="intersects")[1])
    cells = np.zeros((height, width), dtype=bool)
    inverse = ~transform
    for x0, y0, x1, y1 in shapely.bounds(shapes):
        c0, r0 = inverse * (x0, y1)
        c1, r1 = inverse * (x1, y0)
        rows = slice(max(int(np.floor(r0)), 0), min(int(np.ceil(r1)), height))
        cols = slice(max(int(np.floor(c0)), 0), min(int(np.ceil(c1)), width))
        cells[rows, cols] = True
    return {
        "tiles": int(sum(tiles[keys[i]][1] for i in touched)),
        "cells": int(cells.sum()) * itemsize,
    }


def _second_tile(cells: int) -> tuple[int, int]:
    """The tile of the second call's polygon: (3, 5), or the last one of a smaller raster."""
    last = cells // 512 - 1
    return min(3, last), min(5, last)


def _tile_bytes(cog: Path, tile: tuple[int, int]) -> int:
    """Compressed bytes of one internal tile."""
    from cas_xr.testing import tiff_tiles

    return tiff_tiles(cog).get(tile, (0, 0))[1]


def _peak(records: list[Any]) -> int:
    """Most of ``records`` in flight at once (from their start and finish times)."""
    events = sorted([(r.started, 1) for r in records] + [(r.finished, -1) for r in records])
    peak = now = 0
    for _, step in events:
        now += step
        peak = max(peak, now)
    return peak


def _bounds(transform: Any, row: int, col: int, rows: int, cols: int) -> tuple[float, ...]:
    x0, y0 = transform * (col, row + rows)
    x1, y1 = transform * (col + cols, row)
    return (x0, y0, x1, y1)


def _providers(folder: Path, cog: Path, files_url: str, wcs_url: str | None) -> dict[str, str]:
    """One provider file per cas_xr path, pointing at this run's servers (and the file)."""
    variables = f"    variables: [{{name: dem, units: m, nodata_value: {NODATA}}}]\n"
    texts = {
        "local": (
            f"slug: remote_local\nprotocol: local\nendpoint: {files_url}\nlicense: CC0-1.0\n"
            f"datasets:\n  - name: dem\n    path: {files_url}{COG_NAME}\n    crs: {CRS}\n"
            + variables
        ),
        "stac": (
            f"slug: remote_stac\nprotocol: stac_static\nendpoint: {files_url}catalog.json\n"
            f"license: CC0-1.0\ndatasets:\n  - name: dem\n    collection: {COLLECTION}\n"
            + variables
        ),
    }
    texts["file"] = texts["local"].replace(f"{files_url}{COG_NAME}", str(cog))
    # the same URL read by GDAL (any dataset 'gdal' option keeps cas_xr's range reader off),
    # with its multi-range and merging options: the reader cas_xr measured its own against
    texts["gdal"] = (
        texts["local"]
        .replace("slug: remote_local", "slug: remote_gdal")
        .replace(
            f"    crs: {CRS}\n",
            f"    crs: {CRS}\n    options: {{gdal: {{GDAL_HTTP_MULTIRANGE: PARALLEL, "
            "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES: 'YES'}}\n",
        )
    )
    if wcs_url is not None:
        texts["wcs"] = (
            f"slug: remote_wcs\nprotocol: wcs\nendpoint: {wcs_url}\nlicense: CC0-1.0\n"
            'options: {version: "2.0.1"}\n'
            f"datasets:\n  - name: dem\n    coverage: {COLLECTION}\n" + variables
        )
    paths = {}
    for key, text in texts.items():
        path = folder / f"{key}.yaml"
        path.write_text(text, encoding="utf-8")
        paths[key] = str(path)
    return paths


# -- tools (each runs in its own process) -----------------------------------------------


def _start_up() -> None:
    """Import what the tools need beyond the harness's warm-up (imports are not timed)."""
    import odc.stac  # noqa: F401
    import pystac  # noqa: F401
    import rasterio  # noqa: F401

    import cas_xr.catalog
    import cas_xr.frontends
    import cas_xr.sources._local
    import cas_xr.sources._stac_static
    import cas_xr.sources._wcs  # noqa: F401  (cas_xr.sources loads them on first use)

    os.environ.update(GDAL_ENV)


def _timed(geoms: str, work: Callable[[Any], np.ndarray]) -> dict[str, Any]:
    import geopandas as gpd

    _start_up()
    frame = gpd.read_parquet(geoms)
    started = time.perf_counter()
    means = work(frame)
    return {"seconds": time.perf_counter() - started, "means": np.asarray(means, dtype=float)}


def run_exactextract(url: str, geoms: str) -> dict[str, Any]:
    def work(frame: Any) -> np.ndarray:
        import rasterio
        from exactextract import exact_extract

        with rasterio.open(f"/vsicurl/{url}") as src:
            table = exact_extract(src, frame, ["mean"], output="pandas")
        return table["mean"].to_numpy()

    return _timed(geoms, work)


def run_xvec(url: str, geoms: str) -> dict[str, Any]:
    def work(frame: Any) -> np.ndarray:
        import rioxarray
        import xvec  # noqa: F401

        opened = rioxarray.open_rasterio(url, chunks=CHUNKS, masked=False)
        da = opened.squeeze("band", drop=True)  # type: ignore[union-attr]
        da = da.where(da != NODATA)
        out = da.xvec.zonal_stats(
            frame.geometry.values, x_coords="x", y_coords="y", stats=["mean"],
            method="exactextract",
        )  # fmt: skip
        return np.asarray(out.values, dtype=float).ravel()

    return _timed(geoms, work)


def run_cas_xr(provider: str, dataset_id: str, geoms: str) -> dict[str, Any]:
    def work(frame: Any) -> np.ndarray:
        import warnings

        import cas_xr as cas

        cas.configure(provider_files=[provider], progress=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # quality flags of polygons over nodata cells
            table = cas.extract_table(frame, [dataset_id], aggregation="mean")
        return table[f"{dataset_id}_mean"].to_numpy()

    return _timed(geoms, work)


def run_second_call(
    provider: str, dataset_id: str, geoms: str, tile: tuple[int, int]
) -> dict[str, Any]:
    """A first call on ``geoms``, then, timed, a call on a new polygon inside one tile."""
    import warnings

    import geopandas as gpd
    import shapely

    import cas_xr as cas

    _start_up()
    cas.configure(provider_files=[provider], progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cas.extract_table(gpd.read_parquet(geoms), [dataset_id], aggregation="mean")
        # a quadrilateral of ~50 x 50 cells inside ``tile`` of the 512-cell tiles
        x, y = X0 + (tile[1] * 512 + 200) * RES, Y0 - (tile[0] * 512 + 200) * RES
        one = shapely.Polygon(
            [(x, y), (x + 50 * RES, y), (x + 45 * RES, y - 50 * RES), (x, y - 48 * RES)]
        )
        frame = gpd.GeoDataFrame(geometry=[one], crs=CRS)
        since = time.monotonic()  # the server's records of this call start here (one clock)
        started = time.perf_counter()
        table = cas.extract_table(frame, [dataset_id], aggregation="mean")
    return {"seconds": time.perf_counter() - started, "means": None, "since": since,
            "value": float(table[f"{dataset_id}_mean"].iloc[0])}  # fmt: skip


TOOLS = {
    "exactextract /vsicurl/": "exactextract",
    "xvec zonal_stats": "xvec",
    "cas_xr local (URL)": "local",
    "cas_xr local, GDAL reads": "gdal",
    "cas_xr stac_static": "stac",
    "cas_xr wcs": "wcs",
    "cas_xr local, second call (1 tile)": "second",
}


# -- runner -----------------------------------------------------------------------------


@contextlib.contextmanager
def _servers(root: Path, cog: Path, wcs: bool) -> Iterator[dict[str, Any]]:
    """The file server and, if asked, MapServer's WCS behind a relay with the same delays."""
    from cas_xr.testing import serve_wcs, serve_with_latency

    with contextlib.ExitStack() as stack:
        files = stack.enter_context(serve_with_latency(root, round_trip=0))
        servers: dict[str, Any] = {"files": files, "relay": None, "wcs_url": None}
        if wcs:
            mapserver = stack.enter_context(serve_wcs({COLLECTION: cog}))
            origin = urllib.parse.urlsplit(mapserver.url)
            relay = stack.enter_context(
                serve_with_latency(upstream=f"http://{origin.netloc}", round_trip=0)
            )
            servers["relay"], servers["wcs_url"] = relay, relay.proxied(mapserver.url)
        yield servers


def _call(key: str, job: dict[str, Any], geoms: str) -> tuple[Callable[..., Any], tuple[Any, ...]]:
    url = job["files_url"] + COG_NAME
    if key == "exactextract":
        return run_exactextract, (url, geoms)
    if key == "xvec":
        return run_xvec, (url, geoms)
    if key == "second":
        args = (job["providers"]["local"], "remote_local:dem", geoms, _second_tile(job["cells"]))
        return run_second_call, args
    slug = {
        "local": "remote_local", "gdal": "remote_gdal", "stac": "remote_stac",
        "wcs": "remote_wcs",
    }[key]  # fmt: skip
    return run_cas_xr, (job["providers"][key], f"{slug}:dem", geoms)


def _prime(provider: str, geoms: str) -> None:
    """Compile cas_xr's kernels into numba's on-disk cache once, in an unmeasured process.

    Every measured process then loads them from the cache, as a user's second session
    does; what a process builds for itself (pools, opened files) stays cold.
    """
    print("priming cas_xr's compiled kernels on the local file (unmeasured)", flush=True)
    m = measure("prime", "cas_xr", run_cas_xr, provider, "remote_local:dem", geoms)
    if m.error:
        print(f"priming failed: {m.error_line}", flush=True)


def _agreement(means: Any, reference: Any) -> float:
    if means is None or reference is None or len(means) != len(reference):
        return float("nan")
    a, b = np.asarray(means, float), np.asarray(reference, float)
    if (np.isnan(a) != np.isnan(b)).any():
        return float("inf")
    both = ~np.isnan(a)
    return float(np.max(np.abs(a[both] - b[both]), initial=0.0))


def _row(
    m: Measurement, counted: dict[str, int], floor: int, reference: dict[str, Any] | None
) -> dict[str, Any]:
    result = m.result or {}
    seconds = result.get("seconds", float("nan"))
    timed_out = (m.error or "").startswith("timeout")
    ref_seconds = (reference or {}).get("seconds", float("nan"))
    mb_read = counted["bytes"] / 1e6
    return {
        "tool": m.tool,
        "workload": m.workload,
        "wall_s": "timeout" if timed_out else seconds,
        "requests": counted["requests"],
        "failed": counted["failed"],
        "json_docs": counted["docs"],
        "mb_read": mb_read,
        "mb_floor": floor / 1e6,
        "read_x_floor": mb_read / (floor / 1e6) if floor else float("nan"),
        "peak_in_flight": counted["peak"],
        "x_exactextract": seconds / ref_seconds,
        "agreement": _agreement(result.get("means"), (reference or {}).get("means")),
        "error": "" if timed_out else m.error_line,
    }


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = size_parser(__doc__, SIZES, "exactextract xvec local gdal stac wcs second")
    parser.add_argument("--polygons", type=int, nargs="*", help="polygon counts (default: all)")
    parser.add_argument("--round-trip-ms", type=float, nargs="*", help="round trips (ms)")
    parser.add_argument("--bandwidth-mbps", type=float, help="MB/s per response (default: none)")
    parser.add_argument("--timeout", type=float, default=300, help="seconds per tool row")
    parser.add_argument("--json", type=Path, help="also write the rows to this JSON file")
    args = parser.parse_args(argv)
    size = SIZES[args.size]
    polygons = tuple(args.polygons or size["polygons"])
    round_trips = tuple(args.round_trip_ms or size["round_trips_ms"])
    tools = {t: k for t, k in TOOLS.items() if k not in args.skip}
    if "wcs" in tools.values():
        from cas_xr.testing import find_mapserv

        try:
            find_mapserv()
        except FileNotFoundError as err:
            raise SystemExit(f"{err}; or --skip wcs") from None
    job = prepare(args.data, args.size, polygons)
    bandwidth = args.bandwidth_mbps * 1e6 if args.bandwidth_mbps else None
    floor_of = {count: floors(job["cog"], job["geoms"][count]) for count in polygons}
    tile_bytes = _tile_bytes(job["cog"], _second_tile(job["cells"]))
    rows: list[dict[str, Any]] = []
    with (
        _servers(job["root"], job["cog"], "wcs" in tools.values()) as servers,
        tempfile.TemporaryDirectory() as folder,
    ):
        job["files_url"] = servers["files"].url
        job["providers"] = _providers(
            Path(folder), job["cog"], job["files_url"], servers["wcs_url"]
        )
        if any(key in {"local", "stac", "wcs"} for key in tools.values()):
            _prime(job["providers"]["file"], job["geoms"][polygons[0]])
        for rtt in round_trips:
            for server in (servers["files"], servers["relay"]):
                if server is not None:
                    server.round_trip, server.bandwidth = rtt / 1000, bandwidth
            for count in polygons:
                geoms, floor = job["geoms"][count], floor_of[count]
                workload = f"{count:,} polygons, {rtt:g} ms"
                reference = None
                for tool, key in tools.items():
                    if key == "second" and count != polygons[0]:
                        continue  # once per round trip, after a first call on the first set
                    server = servers["relay"] if key == "wcs" else servers["files"]
                    server.wait_idle(timeout=30)  # a killed row's requests, if any
                    server.reset()
                    func, func_args = _call(key, job, geoms)
                    m = measure(workload, tool, func, *func_args, timeout=args.timeout)
                    server.wait_idle(timeout=30)
                    records = server.records
                    peak = server.peak_in_flight
                    wanted = floor["cells"] if key == "wcs" else floor["tiles"]
                    if key == "second":  # only the second call's requests, and one tile
                        since = (m.result or {}).get("since", float("inf"))
                        records = [r for r in records if r.started >= since]
                        peak = _peak(records)
                        wanted = tile_bytes
                    counted = {
                        "requests": len(records),
                        "docs": sum(r.path.partition("?")[0].endswith(".json") for r in records),
                        "bytes": sum(r.bytes_sent for r in records),
                        "failed": sum(r.status >= 400 for r in records),
                        "peak": peak,
                    }
                    if key == "exactextract":
                        reference = m.result
                    rows.append(_row(m, counted, wanted, None if key == "second" else reference))
    bw = f"{args.bandwidth_mbps:g} MB/s per response" if bandwidth else "no bandwidth cap"
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    title = (
        f"remote reads, size={args.size} ({job['cells']:,}^2 cells), {bw}, "
        f"{os.cpu_count()} cores, load {load}"
    )
    print_markdown(title, rows)
    if args.json:
        clean = [{k: None if v != v else v for k, v in row.items()} for row in rows]  # NaN
        args.json.write_text(json.dumps({"title": title, "rows": clean}, indent=1), "utf-8")
    return rows


if __name__ == "__main__":
    main()
