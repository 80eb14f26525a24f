"""Remote reads: only the tiles (or chunks) geometries touch, merged, bounded in flight.

Every server here is real (a range server on 127.0.0.1 that counts what it sends); the
tiles a read needs come from the file's own tile offsets and shapely, and the statistics
are compared with the same computation on the local file.
"""

from __future__ import annotations

import datetime as dt
import itertools
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
import xarray as xr
from affine import Affine

import cas_xr as cas
from cas_xr.sources._stac_static import StaticStacSource
from cas_xr.testing import (
    LatencyHTTPServer,
    StacCollectionSpec,
    StacItemSpec,
    make_cog,
    make_stac_catalog,
    serve_wcs,
    serve_with_latency,
    tiff_tiles,
    tiles_requested,
)

# 1,024 x 1,024 float32 cells of 0.001 degree from lon 10, lat 50 down; 128-cell tiles
N, TILE = 1024, 128
GRID = Affine(0.001, 0.0, 10.0, 0.0, -0.001, 50.0)
ROUND_TRIP = 0.02


def _values() -> np.ndarray:
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:N, 0:N]
    noise = rng.normal(0.0, 1.0, (N, N))
    return (np.sin(xx / 40.0) * np.cos(yy / 55.0) * 100.0 + noise).astype("float32")


@pytest.fixture(scope="module")
def cog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("remote")
    return make_cog(folder / "dem.tif", _values(), transform=GRID, crs="EPSG:4326", blocksize=TILE)


def _sparse(n: int, seed: int) -> gpd.GeoSeries:
    """``n`` quadrilaterals of about 60 x 60 cells at random places."""
    rng = np.random.default_rng(seed)
    shapes = []
    for r, c in rng.integers(0, N - 70, (n, 2)):
        x, y = 10.0 + c * 0.001, 50.0 - r * 0.001
        shapes.append(
            shapely.Polygon(
                [(x, y), (x + 0.06, y - 0.005), (x + 0.055, y - 0.06), (x - 0.003, y - 0.057)]
            )
        )
    return gpd.GeoSeries(shapes, crs="EPSG:4326")


def _touched(geometries: gpd.GeoSeries) -> set[tuple[int, int]]:
    """The internal tiles some geometry intersects (shapely, on the tile boxes)."""
    out = set()
    for i, j in itertools.product(range(N // TILE), repeat=2):
        x0, y0 = GRID * (j * TILE, (i + 1) * TILE)
        x1, y1 = GRID * ((j + 1) * TILE, i * TILE)
        if shapely.intersects(shapely.box(x0, y0, x1, y1), geometries.to_numpy()).any():
            out.add((i, j))
    return out


def _local_provider(tmp_path: Path, path: str, slug: str) -> str:
    file = tmp_path / f"{slug}.yaml"
    file.write_text(
        f"""slug: {slug}
protocol: local
endpoint: {tmp_path}
license: CC0-1.0
datasets:
  - name: dem
    path: {path}
    variables:
      - {{name: dem, units: m}}
""",
        encoding="utf-8",
    )
    return str(file)


@contextmanager
def wcs_and_disk(
    cog: Path, tmp_path: Path, *, round_trip: float = 0, options: str = "{}"
) -> Iterator[LatencyHTTPServer]:
    """MapServer serving ``cog`` behind a latency relay as provider ``wcs``, the file as ``disk``.

    Yields the relay, which counts the requests and bytes.
    """
    with (
        serve_wcs({"dem": cog}) as wcs,
        serve_with_latency(
            upstream="http://" + urlsplit(wcs.url).netloc, round_trip=round_trip
        ) as server,
    ):
        (tmp_path / "wcs.yaml").write_text(
            f"""slug: wcs
protocol: wcs
endpoint: {server.proxied(wcs.url)}
license: CC0-1.0
options: {options}
datasets:
  - name: dem
    coverage: dem
    variables:
      - {{name: dem, units: m}}
""",
            encoding="utf-8",
        )
        cas.configure(
            provider_files=[tmp_path / "wcs.yaml", _local_provider(tmp_path, str(cog), "disk")]
        )
        yield server


def _tiles_of(server, cog: Path) -> set[tuple[int, int]]:  # type: ignore[no-untyped-def]
    records = [r for r in server.records if r.path.split("?")[0].endswith(cog.name)]
    return tiles_requested(records, tiff_tiles(cog))


def _gaps(server, cog: Path) -> list[int]:  # type: ignore[no-untyped-def]
    """The bytes between consecutive tiles inside each range the server sent of ``cog``.

    The tiles of a range are those whose bytes (the file's TileOffsets and TileByteCounts)
    it overlaps.
    """
    spans = sorted((offset, length) for offset, length in tiff_tiles(cog).values() if length)
    gaps = []
    for record in server.records:
        if not record.path.split("?")[0].endswith(cog.name):
            continue
        for first, last in record.ranges:
            inside = [(o, n) for o, n in spans if first <= o + n - 1 and o <= last]
            gaps += [b[0] - (a[0] + a[1]) for a, b in itertools.pairwise(inside)]
    return gaps


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_sparse_set_over_http_reads_exactly_the_tiles_it_touches(
    cog: Path, tmp_path: Path, seed: int
):
    # the tiles of this COG (~60 KB) are smaller than the largest gap merged (64 KiB): a
    # range over two touched tiles with one untouched between them would fetch it too
    geometries = _sparse(6, seed=seed)
    with serve_with_latency(cog.parent, round_trip=ROUND_TRIP) as server:
        url = server.url + cog.name
        cas.configure(
            provider_files=[
                _local_provider(tmp_path, url, "remote"),
                _local_provider(tmp_path, str(cog), "disk"),
            ]
        )
        remote = cas.extract_table(geometries, ["remote:dem"], aggregation=["mean", "max"])
        requested = _tiles_of(server, cog)
        gaps = _gaps(server, cog)
    touched = _touched(geometries)
    assert len(touched) < (N // TILE) ** 2 / 2  # sparse: most tiles are not needed
    assert requested == touched
    assert all(0 <= gap <= 65536 for gap in gaps)
    disk = cas.extract_table(geometries, ["disk:dem"], aggregation=["mean", "max"])
    for stat in ("mean", "max"):
        np.testing.assert_allclose(
            remote[f"remote:dem_{stat}"], disk[f"disk:dem_{stat}"], rtol=0, atol=1e-12
        )
    assert (remote["remote:dem_quality"] == "good").all()


def test_second_call_reuses_the_header_and_reads_one_tile(cog: Path, tmp_path: Path):
    with serve_with_latency(cog.parent, round_trip=ROUND_TRIP) as server:
        cas.configure(provider_files=[_local_provider(tmp_path, server.url + cog.name, "r")])
        cas.extract_table(_sparse(2, seed=3), ["r:dem"])
        server.reset()
        x, y = GRID * (5 * TILE + 20, 2 * TILE + 20)  # well inside tile (2, 5)
        inside = gpd.GeoSeries([shapely.box(x, y - 0.05, x + 0.05, y)], crs="EPSG:4326")
        cas.extract_table(inside, ["r:dem"])
        assert server.requests == 1
        assert _tiles_of(server, cog) == {(2, 5)}


def _checkerboard(folder: Path) -> tuple[Path, gpd.GeoSeries]:
    """A COG of 256-cell tiles of noise (~256 KB each) and boxes in eight tiles of it.

    The tiles form a checkerboard: none is next to another in a row, so each is too far
    from the others to be merged into one range request.
    """
    cog = make_cog(folder / "big.tif", _values(), transform=GRID, crs="EPSG:4326", blocksize=256)
    boxes = []
    for i, j in itertools.product(range(4), repeat=2):
        if (i + j) % 2 == 0:
            x, y = GRID * (j * 256 + 50, i * 256 + 50)
            boxes.append(shapely.box(x, y - 0.1, x + 0.1, y))
    return cog, gpd.GeoSeries(boxes, crs="EPSG:4326")


def test_requests_in_flight_are_bounded_per_host(tmp_path: Path):
    cog, boxes = _checkerboard(tmp_path)
    with serve_with_latency(tmp_path, round_trip=0.05) as server:
        cas.configure(
            provider_files=[_local_provider(tmp_path, server.url + cog.name, "r")],
            max_concurrent_requests_per_host=3,
        )
        cas.extract_table(boxes, ["r:dem"])
        assert server.requests >= 8  # the header, and one request per tile
        assert 2 <= server.peak_in_flight <= 3  # concurrent, never past the cap


@pytest.mark.parametrize("protocol", ["local", "stac_static"])
def test_every_tile_range_a_request_needs_is_in_flight_at_once(tmp_path: Path, protocol: str):
    # fewer ranges than the default cap: none waits for another (answers take half a second)
    cog, boxes = _checkerboard(tmp_path)
    item = StacItemSpec("big", cog, dt.datetime(2020, 1, 1))
    make_stac_catalog(tmp_path, [StacCollectionSpec("dem", "one COG", [item])])
    with serve_with_latency(tmp_path, round_trip=0.5) as server:
        if protocol == "local":
            provider = _local_provider(tmp_path, server.url + cog.name, "r")
        else:
            provider = str(stac_provider(tmp_path, "r", server.url + "catalog.json"))
        cas.configure(provider_files=[provider])
        assert cas.get_settings().max_concurrent_requests_per_host == 8
        cas.extract_table(boxes, ["r:dem"])
    ranges = len([r for r in server.records if r.path.endswith(cog.name)]) - 1  # the header
    assert len(_tiles_of(server, cog)) == 8
    assert ranges == 7  # two tiles end and start a row of the file: one range
    assert server.peak_in_flight == ranges  # every range at once


def stac_provider(folder: Path, slug: str, endpoint: str | Path) -> Path:
    """A provider file ``<slug>.yaml``: the collection ``dem`` of the catalog ``endpoint``."""
    path = folder / f"{slug}.yaml"
    path.write_text(
        f"""slug: {slug}
protocol: stac_static
endpoint: {endpoint}
license: CC0-1.0
datasets:
  - name: dem
    collection: dem
    variables:
      - {{name: dem, units: m, nodata_value: -9999}}
""",
        encoding="utf-8",
    )
    return path


def test_stac_static_over_http_reads_the_touched_tiles_of_each_item(tmp_path: Path):
    values = _values()
    half = N // 2  # two items side by side, the west one first in precedence
    west = make_cog(tmp_path / "west.tif", values[:, :half], transform=GRID, crs="EPSG:4326",
                    blocksize=TILE, nodata=-9999.0)  # fmt: skip
    east = make_cog(tmp_path / "east.tif", values[:, half:],
                    transform=GRID @ Affine.translation(half, 0), crs="EPSG:4326",
                    blocksize=TILE, nodata=-9999.0)  # fmt: skip
    when = dt.datetime(2020, 1, 1)
    items = [StacItemSpec("west", west, when), StacItemSpec("east", east, when)]
    make_stac_catalog(tmp_path, [StacCollectionSpec("dem", "two tiles", items)])
    geometries = _sparse(5, seed=11)
    with serve_with_latency(tmp_path, round_trip=ROUND_TRIP) as server:
        files = [
            stac_provider(tmp_path, "http", server.url + "catalog.json"),
            stac_provider(tmp_path, "disk", tmp_path / "catalog.json"),
        ]
        cas.configure(provider_files=files)
        remote = cas.extract_table(geometries, ["http:dem"])
        requested = {("west", t) for t in _tiles_of(server, west)} | {
            ("east", t) for t in _tiles_of(server, east)
        }
    touched = set()
    for name, transform, width in (
        ("west", GRID, half),
        ("east", GRID @ Affine.translation(half, 0), half),
    ):
        for i, j in itertools.product(range(N // TILE), range(width // TILE)):
            x0, y0 = transform * (j * TILE, (i + 1) * TILE)
            x1, y1 = transform * ((j + 1) * TILE, i * TILE)
            if shapely.intersects(shapely.box(x0, y0, x1, y1), geometries.to_numpy()).any():
                touched.add((name, (i, j)))
    assert requested == touched
    disk = cas.extract_table(geometries, ["disk:dem"])
    np.testing.assert_allclose(remote["http:dem_mean"], disk["disk:dem_mean"], rtol=0, atol=1e-12)


def test_zarr_over_http_reads_only_the_chunks_touched(tmp_path: Path):
    lat = 50.0 - 0.001 * (np.arange(N) + 0.5)
    lon = 10.0 + 0.001 * (np.arange(N) + 0.5)
    ds = xr.Dataset({"dem": (("lat", "lon"), _values())}, coords={"lat": lat, "lon": lon})
    ds["crs"] = xr.DataArray(0, attrs={"crs_wkt": rasterio.crs.CRS.from_epsg(4326).to_wkt()})
    ds["dem"].attrs["grid_mapping"] = "crs"
    ds.to_zarr(tmp_path / "dem.zarr", zarr_format=2, encoding={"dem": {"chunks": (TILE, TILE)}})
    geometries = _sparse(4, seed=13)
    with serve_with_latency(tmp_path, round_trip=ROUND_TRIP) as server:
        files = []
        for slug, path in (("http", server.url + "dem.zarr"), ("disk", tmp_path / "dem.zarr")):
            files.append(_local_provider(tmp_path, str(path), slug))
            text = Path(files[-1]).read_text(encoding="utf-8")
            Path(files[-1]).write_text(text.replace("path:", "array: dem\n    path:"), "utf-8")
        cas.configure(provider_files=files)
        remote = cas.extract_table(geometries, ["http:dem"])
        chunks = {
            tuple(int(k) for k in r.path.rsplit("/", 1)[1].split("."))
            for r in server.records
            if r.path.startswith("/dem.zarr/dem/") and r.path[-1].isdigit()
        }
    assert chunks == _touched(geometries)
    disk = cas.extract_table(geometries, ["disk:dem"])
    np.testing.assert_allclose(remote["http:dem_mean"], disk["disk:dem_mean"], rtol=0, atol=1e-12)


def test_overlapping_items_over_http_fuse_as_odc_stac_does(tmp_path: Path):
    values = _values()[:256, :384]
    first = values[:, :256].copy()
    first[40:90, 100:200] = -9999.0  # a hole the second item fills
    second = values[:, 128:] + 1000.0  # overlaps the first over columns 128..255
    when = dt.datetime(2020, 1, 1)
    specs = [
        StacItemSpec("first", make_cog(tmp_path / "a.tif", first, transform=GRID,
                     crs="EPSG:4326", blocksize=TILE, nodata=-9999.0), when),
        StacItemSpec("second", make_cog(tmp_path / "b.tif", second,
                     transform=GRID @ Affine.translation(128, 0), crs="EPSG:4326",
                     blocksize=TILE, nodata=-9999.0), when),
    ]  # fmt: skip
    catalog = make_stac_catalog(tmp_path, [StacCollectionSpec("dem", "overlap", specs)])
    box = (10.01, 49.8, 10.37, 49.99)
    on_disk = StaticStacSource(str(catalog), "dem", provider="p", temporal=False).open(bbox=box)
    with serve_with_latency(tmp_path, round_trip=0.0) as server:
        remote = StaticStacSource(server.url + "catalog.json", "dem", provider="p", temporal=False)
        opened = remote.open(bbox=box)
        assert opened.data.name.startswith("cas-stac-tiles")  # read by tile, not by odc-stac
        np.testing.assert_array_equal(opened.values, on_disk.values)
    assert opened.attrs["nodata"] == on_disk.attrs["nodata"]
    np.testing.assert_array_equal(opened.x, on_disk.x)
    np.testing.assert_array_equal(opened.y, on_disk.y)


def _window_cells(geometries: gpd.GeoSeries) -> int:
    """Cells of the geometries' bounding windows (their union): what a WCS must send."""
    cells = np.zeros((N, N), dtype=bool)
    for x0, y0, x1, y1 in geometries.bounds.to_numpy():
        c0, r0 = ~GRID * (x0, y1)
        c1, r1 = ~GRID * (x1, y0)
        cells[int(np.floor(r0)) : int(np.ceil(r1)), int(np.floor(c0)) : int(np.ceil(c1))] = True
    return int(cells.sum())


def test_wcs_requests_the_geometry_windows_merged_and_in_parallel(
    mapserv: str, cog: Path, tmp_path: Path
):
    geometries = _sparse(6, seed=17)
    with wcs_and_disk(cog, tmp_path, round_trip=0.05, options="{tile_size: 256}") as server:
        cas.extract_table(geometries[:1], ["wcs:dem"])  # describes the coverage: not counted
        server.reset()
        remote = cas.extract_table(geometries, ["wcs:dem"])
        coverages = [r for r in server.records if "GetCoverage" in r.path]
        peak = server.peak_in_flight
    blocks = _touched(geometries)  # the 128-cell chunks the geometries touch
    assert 1 <= len(coverages) <= len(blocks) < (N // TILE) ** 2 / 2
    assert peak >= 2  # several requests in flight
    # only the cells under the geometries' windows, not whole chunks (GeoTIFF headers
    # aside); the first geometry's result came from the cache
    sent = sum(r.bytes_sent for r in coverages)
    floor = _window_cells(geometries[1:]) * np.dtype(_values().dtype).itemsize
    assert floor <= sent <= 1.25 * floor + 2048 * len(coverages)
    disk = cas.extract_table(geometries, ["disk:dem"])
    np.testing.assert_allclose(remote["wcs:dem_mean"], disk["disk:dem_mean"], rtol=0, atol=1e-9)


def test_wcs_reads_far_apart_windows_of_one_chunk_apart(mapserv: str, cog: Path, tmp_path: Path):
    # two small squares in opposite corners of one 128-cell chunk: two small requests,
    # not the chunk (nor the box around them)
    corner = [GRID * (128 * 3 + 2, 128 * 2 + 2), GRID * (128 * 3 + 108, 128 * 2 + 108)]
    geometries = gpd.GeoSeries(
        [shapely.box(x, y - 0.018, x + 0.018, y) for x, y in corner], crs="EPSG:4326"
    )
    with wcs_and_disk(cog, tmp_path) as server:
        cas.extract_table(_box_in_tile(6, 6), ["wcs:dem"])  # describes the coverage
        server.reset()
        remote = cas.extract_table(geometries, ["wcs:dem"])
        coverages = [r for r in server.records if "GetCoverage" in r.path]
    sent = sum(r.bytes_sent for r in coverages)
    floor = _window_cells(geometries) * np.dtype(_values().dtype).itemsize
    assert len(coverages) == 2
    assert floor <= sent <= 1.25 * floor + 2048 * len(coverages) < 128 * 128 * 4
    disk = cas.extract_table(geometries, ["disk:dem"])
    np.testing.assert_allclose(remote["wcs:dem_mean"], disk["disk:dem_mean"], rtol=0, atol=1e-9)


def _box_in_tile(i: int, j: int) -> gpd.GeoSeries:
    x, y = GRID * (j * TILE + 20, i * TILE + 20)
    return gpd.GeoSeries([shapely.box(x, y - 0.05, x + 0.05, y)], crs="EPSG:4326")


def test_a_replaced_remote_file_is_never_read_with_its_old_header(tmp_path: Path):
    path = make_cog(tmp_path / "v.tif", _values(), transform=GRID, crs="EPSG:4326", blocksize=TILE)
    with serve_with_latency(tmp_path, round_trip=0.0) as server:
        cas.configure(
            provider_files=[
                _local_provider(tmp_path, server.url + path.name, "r"),
                _local_provider(tmp_path, str(path), "d"),
            ],
            result_cache_ttl_s=0,
        )
        cas.extract_table(_box_in_tile(0, 0), ["r:dem"])  # the header is kept
        doubled = np.round(_values(), 1) * 2  # other values, another size once compressed
        make_cog(path, doubled, transform=GRID, crs="EPSG:4326", blocksize=TILE)
        elsewhere = _box_in_tile(7, 7)  # tiles not read yet, under the old header
        with pytest.warns(cas.BatchFailureWarning, match="the file changed since"):
            stale = cas.extract_table(elsewhere, ["r:dem"])
        assert (stale["r:dem_quality"] == "missing").all()  # never numbers of the old header
        after = cas.extract_table(elsewhere, ["r:dem"])  # the header is read anew
        expected = cas.extract_table(elsewhere, ["d:dem"])
        np.testing.assert_allclose(after["r:dem_mean"], expected["d:dem_mean"], atol=1e-12)


def test_remote_headers_and_tiles_are_trusted_for_the_metadata_ttl(tmp_path: Path):
    path = make_cog(tmp_path / "v.tif", _values(), transform=GRID, crs="EPSG:4326", blocksize=TILE)
    box = _box_in_tile(2, 3)
    with serve_with_latency(tmp_path, round_trip=0.0) as server:
        cas.configure(
            provider_files=[
                _local_provider(tmp_path, server.url + path.name, "r"),
                _local_provider(tmp_path, str(path), "d"),
            ],
            result_cache_ttl_s=0,
            metadata_cache_ttl_s=0.5,  # the file is checked again after half a second
        )
        before = cas.extract_table(box, ["r:dem"])
        time.sleep(0.6)
        server.reset()
        again = cas.extract_table(box, ["r:dem"])
        assert server.requests == 1  # the header read anew; the tile from the tile cache
        make_cog(path, _values() * 3, transform=GRID, crs="EPSG:4326", blocksize=TILE)
        time.sleep(0.6)
        after = cas.extract_table(box, ["r:dem"])
        expected = cas.extract_table(box, ["d:dem"])
    np.testing.assert_array_equal(again["r:dem_mean"], before["r:dem_mean"])
    np.testing.assert_allclose(after["r:dem_mean"], expected["d:dem_mean"], atol=1e-12)
    assert not np.allclose(before["r:dem_mean"], after["r:dem_mean"])
