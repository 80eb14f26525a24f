"""The WCS source against a real MapServer (WCS 1.0.0 and 2.0.1) on 127.0.0.1.

Pixels and grids read through WCS are compared with the served GeoTIFFs read directly
(rioxarray, exactextract), never with our own code.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import dask
import geopandas as gpd
import numpy as np
import pytest
import rasterio
import rasterio.warp
import rasterio.windows
import requests
import rioxarray
import shapely
import xarray as xr
from affine import Affine
from exactextract import exact_extract

import cas_xr as cas
from cas_xr.catalog import load_provider_file
from cas_xr.errors import (
    ConfigurationError,
    ProviderDefinitionError,
    QualityWarning,
    SourceError,
    SourceWarning,
)
from cas_xr.sources._wcs import WcsSource, from_definition
from cas_xr.sources._wcs_io import Tile, check_tile
from cas_xr.testing import (
    MAP_ALIAS,
    WcsServer,
    make_cog,
    raise_if_dask_computes,
    serve_wcs,
)

VERSIONS = ["2.0.1", "1.0.0"]
# dyadic cell sizes and origins: every coordinate is exact in binary and in decimal text
GEO = Affine(1 / 128, 0, 10.0, 0, -1 / 128, 50.5)  # 80 x 72 cells, lat 49.9375..50.5
UTM = Affine(32, 0, 500_000, 0, -32, 4_300_000)  # 70 x 90 cells, EPSG:32614
GEO_BBOX = (10.13, 50.05, 10.36, 50.31)  # ~30 x 25 cells, over the nodata hole
UTM_BBOX = (-98.995, 38.825, -98.984, 38.84)


@pytest.fixture(scope="module")
def tiffs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("wcs")
    rows, cols = np.mgrid[0:72, 0:80]
    geo = (1000 + 10 * rows + 0.25 * cols).astype("float32")
    geo[30:36, 20:26] = -9999.0  # a nodata hole inside GEO_BBOX
    rows, cols = np.mgrid[0:90, 0:70]
    utm = (100 * rows + cols).astype("int16")
    utm[50:54, 20:24] = -32768  # a nodata hole inside UTM_BBOX
    return {
        "geo": make_cog(
            folder / "geo.tif", geo, transform=GEO, crs="EPSG:4326", nodata=-9999.0, blocksize=16
        ),
        "utm": make_cog(
            folder / "utm.tif", utm, transform=UTM, crs="EPSG:32614", nodata=-32768, blocksize=16
        ),
    }


@pytest.fixture(scope="module")
def servers(mapserv: str, tiffs: dict[str, Path]) -> Iterator[dict[str, WcsServer]]:
    # MapServer answers FORMAT=image/tiff with one output format: one server per dtype
    with serve_wcs({"geo": tiffs["geo"]}) as geo, serve_wcs({"utm": tiffs["utm"]}) as utm:
        yield {"geo": geo, "utm": utm}


@pytest.fixture
def lone_server(mapserv: str, tiffs: dict[str, Path]) -> Iterator[WcsServer]:
    """A server of its own, for tests that break it."""
    with serve_wcs({"geo": tiffs["geo"]}) as server:
        yield server


def _file_window(path: Path, bbox: tuple[float, float, float, float]) -> xr.DataArray:
    """The file's cells covering a lon/lat box, snapped outward, read with rioxarray."""
    with rasterio.open(path) as src:
        bounds = rasterio.warp.transform_bounds("EPSG:4326", src.crs, *bbox, densify_pts=21)
        w = rasterio.windows.from_bounds(*bounds, transform=src.transform)
    c0, r0 = math.floor(w.col_off), math.floor(w.row_off)
    c1, r1 = math.ceil(w.col_off + w.width), math.ceil(w.row_off + w.height)
    da = rioxarray.open_rasterio(path).isel(band=0, drop=True)
    return da.isel(y=slice(r0, r1), x=slice(c0, c1))


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(("name", "bbox"), [("geo", GEO_BBOX), ("utm", UTM_BBOX)])
def test_open_gives_the_files_cells_lazily_in_tiles(
    servers: dict[str, WcsServer],
    tiffs: dict[str, Path],
    name: str,
    bbox: tuple[float, float, float, float],
    version: str,
):
    source = WcsSource(servers[name].url, name, version=version, tile_size=16, provider="t")
    with raise_if_dask_computes():
        da = source.open(bbox=bbox)
    expected = _file_window(tiffs[name], bbox)
    assert len(da.chunks[0]) * len(da.chunks[1]) >= 4
    assert max(da.chunks[0] + da.chunks[1]) == 16
    assert da.attrs["cas_provenance"] == {
        "protocol": "wcs",
        "endpoint": servers[name].url,
        "coverage": name,
        "version": version,
        "tiles": len(da.chunks[0]) * len(da.chunks[1]),
    }
    assert da.rio.crs == expected.rio.crs
    assert da.rio.transform() == expected.rio.transform()
    got = da.compute()
    assert got.dtype == expected.dtype
    xr.testing.assert_equal(got.drop_vars("spatial_ref"), expected.drop_vars("spatial_ref"))
    assert got.attrs["nodata"] == expected.rio.nodata
    assert int((got == got.attrs["nodata"]).sum()) > 0  # the hole is inside, as in the file


@pytest.mark.parametrize("version", VERSIONS)
def test_described_grid_is_the_files_grid(
    servers: dict[str, WcsServer], tiffs: dict[str, Path], version: str
):
    for name, server in servers.items():
        grid = WcsSource(server.url, name, version=version).describe().grid
        with rasterio.open(tiffs[name]) as src:
            assert (grid.transform, grid.shape) == (src.transform, src.shape)


def test_whole_coverage_and_chunks_option(servers: dict[str, WcsServer], tiffs: dict[str, Path]):
    da = WcsSource(servers["utm"].url, "utm", tile_size=64).open(chunks=32)
    assert da.chunks == ((32, 32, 26), (32, 32, 6))
    expected = rioxarray.open_rasterio(tiffs["utm"]).isel(band=0, drop=True)
    xr.testing.assert_equal(
        da.compute().drop_vars("spatial_ref"), expected.drop_vars("spatial_ref")
    )


def _provider_file(
    path: Path, endpoint: str, *, coverage: str = "geo", slug: str = "wcs_test", **options: object
) -> Path:
    lines = "".join(f"  {k}: {v}\n" for k, v in {"tile_size": 16, **options}.items())
    path.write_text(
        f"""slug: {slug}
protocol: wcs
endpoint: {endpoint}
license: CC-BY-4.0
options:
{lines}datasets:
  - name: height
    coverage: {coverage}
    variables:
      - name: height
        units: m
        nodata_value: -9999
""",
        encoding="utf-8",
    )
    return path


@pytest.mark.parametrize("version", VERSIONS)
def test_facade_mean_equals_zonal_and_exactextract_on_the_file(
    servers: dict[str, WcsServer], tiffs: dict[str, Path], tmp_path: Path, version: str
):
    polygon = shapely.Polygon([(10.14, 50.06), (10.35, 50.09), (10.30, 50.30), (10.16, 50.25)])
    url = servers["geo"].url
    cas.configure(provider_files=[_provider_file(tmp_path / "p.yaml", url, version=version)])
    result = cas.extract_sync({"geometry": polygon, "dataset_ids": ["wcs_test:height"]}).results[0]
    assert result.error is None and result.quality is cas.QualityFlag.GOOD
    assert result.provenance["protocol"] == "wcs" and result.provenance["tiles"] >= 4
    on_file = rioxarray.open_rasterio(tiffs["geo"]).isel(band=0, drop=True).rename("height")
    ours = cas.zonal(on_file, [polygon], "mean", crs="EPSG:4326").compute()
    assert result.value == pytest.approx(float(ours["height"].squeeze()), rel=1e-9)
    feature = {"type": "Feature", "properties": {}, "geometry": shapely.geometry.mapping(polygon)}
    with rasterio.open(tiffs["geo"]) as src:
        (ee,) = exact_extract(src, [feature], ["mean"], output="geojson")
    assert result.value == pytest.approx(ee["properties"]["mean"], rel=1e-6)


def test_unknown_coverage_is_missing_with_the_servers_message(
    servers: dict[str, WcsServer], tmp_path: Path
):
    url = servers["geo"].url
    cas.configure(
        provider_files=[_provider_file(tmp_path / "p.yaml", url, coverage="nope", version="1.0.0")]
    )
    with pytest.warns(SourceWarning, match="wcs_exception"):
        response = cas.extract_sync(
            {"geometry": shapely.box(10.2, 50.2, 10.3, 50.3), "dataset_ids": ["wcs_test:height"]}
        )
    result = response.results[0]
    assert result.quality is cas.QualityFlag.MISSING and result.value is None
    assert result.error is not None and result.error.kind == "wcs_exception"
    assert "CoverageNotDefined" in result.error.message and "nope" in result.error.message
    assert url in result.error.message and "wcs_test" in result.error.message


@pytest.mark.parametrize(
    "version",
    [
        "2.0.1",
        "1.0.0",
    ],
)
def test_unknown_coverage_raises_a_wcs_exception(servers: dict[str, WcsServer], version: str):
    with pytest.raises(SourceError) as info:
        WcsSource(servers["geo"].url, "nope", version=version, provider="p").open()
    assert info.value.kind == "wcs_exception" and info.value.provider == "p"
    assert "nope" in str(info.value) and servers["geo"].url in str(info.value)


def test_server_down_is_missing_and_nothing_hangs(lone_server: WcsServer, tmp_path: Path):
    cas.configure(
        provider_files=[_provider_file(tmp_path / "p.yaml", lone_server.url)],
        provider_timeout_s=2,
        http_retries=2,
    )
    lone_server.stop()
    started = time.monotonic()
    with pytest.warns(SourceWarning):
        result = cas.extract_sync(
            {"geometry": shapely.box(10.2, 50.2, 10.3, 50.3), "dataset_ids": ["wcs_test:height"]}
        ).results[0]
    assert time.monotonic() - started < 10
    assert result.quality is cas.QualityFlag.MISSING
    assert result.error is not None and result.error.kind in {"connection", "timeout"}


def test_server_down_after_open_fails_in_the_dask_task(lone_server: WcsServer):
    cas.configure(provider_timeout_s=2, http_retries=1)
    da = WcsSource(lone_server.url, "geo", tile_size=16, provider="p").open(bbox=GEO_BBOX)
    lone_server.stop()
    started = time.monotonic()
    with pytest.raises(SourceError) as info:
        da.compute()  # not a lost tile: every tile would wait out its retries in vain
    assert time.monotonic() - started < 5
    assert info.value.kind in {"connection", "timeout"} and info.value.provider == "p"
    assert lone_server.url in str(info.value)


@pytest.mark.parametrize(
    ("fault", "said"), [("html", "text/html.*Down for maintenance"), ("empty", "an empty body")]
)
def test_a_non_raster_answer_is_a_bad_payload(lone_server: WcsServer, fault: str, said: str):
    source = WcsSource(lone_server.url, "geo", tile_size=16, provider="p")
    da = source.open(bbox=GEO_BBOX)  # described and probed while the server is healthy
    lone_server.fault = fault
    with pytest.raises(SourceError, match=f"expected a GeoTIFF .*{said}") as info:
        da.compute()  # raised inside a Dask task, still a SourceError
    assert info.value.kind == "bad_payload" and info.value.provider == "p"
    assert lone_server.url in str(info.value)
    with pytest.raises(SourceError, match="expected an XML <CoverageDescription> document") as info:
        WcsSource(lone_server.url, "geo", version="1.0.0").open()  # not described yet
    assert info.value.kind == "bad_payload"


def test_a_tile_on_another_grid_is_an_error_not_resampled():
    asked = Affine(1 / 128, 0, 10.0, 0, -1 / 128, 50.5)
    shifted = Tile(np.zeros((2, 2), "float32"), asked * Affine.translation(0.5, 0), None, None, "u")
    with pytest.raises(SourceError, match="another grid than asked") as info:
        check_tile(shifted, transform=asked, shape=(2, 2), crs="EPSG:4326", provider="p")
    assert info.value.kind == "grid_mismatch" and info.value.url == "u"
    with pytest.raises(SourceError, match=r"2 x 3 cells were asked for, \(2, 2\) came back"):
        check_tile(shifted, transform=asked, shape=(2, 3), crs="EPSG:4326", provider="p")


def test_params_option_is_sent_with_every_request(
    servers: dict[str, WcsServer], tiffs: dict[str, Path], tmp_path: Path
):
    url = servers["geo"].url
    good = load_provider_file(
        _provider_file(tmp_path / "a.yaml", url, params=f"{{map: {MAP_ALIAS}}}")
    )
    da = from_definition(good, good.datasets[0]).open(bbox=GEO_BBOX)
    expected = _file_window(tiffs["geo"], GEO_BBOX)
    xr.testing.assert_equal(
        da.compute().drop_vars("spatial_ref"), expected.drop_vars("spatial_ref")
    )
    wrong = load_provider_file(_provider_file(tmp_path / "b.yaml", url, params="{map: NOPE}"))
    with pytest.raises(SourceError, match='CGI variable "map" not found') as info:
        from_definition(wrong, wrong.datasets[0]).open()
    assert info.value.kind == "bad_payload" and "map=NOPE" in str(info.value)


def test_bbox_outside_the_coverage_is_no_data(servers: dict[str, WcsServer]):
    with pytest.raises(SourceError, match="does not intersect") as info:
        WcsSource(servers["geo"].url, "geo").open(bbox=(0.0, 0.0, 1.0, 1.0))
    assert info.value.kind == "no_data"


def test_options_are_validated_with_clear_errors(tmp_path: Path):
    with pytest.raises(ConfigurationError, match="version: Input should be '2.0.1' or '1.0.0'"):
        WcsSource("http://127.0.0.1:1/wcs", "c", version="1.1.0")
    bad = load_provider_file(
        _provider_file(tmp_path / "p.yaml", "http://127.0.0.1:1/wcs", tile_size=5, colour="red")
    )
    with pytest.raises(ProviderDefinitionError) as info:
        from_definition(bad, bad.datasets[0])
    message = str(info.value)
    assert "provider 'wcs_test', dataset 'height'" in message
    assert "tile_size: Input should be greater than or equal to 16" in message
    assert "colour: Extra inputs are not permitted" in message
    with pytest.raises(ConfigurationError, match=r"\['Service'\] are set by the WCS source"):
        WcsSource("http://127.0.0.1:1/wcs", "c", params=(("Service", "WMS"),))


def test_temporal_datasets_are_refused(tmp_path: Path):
    path = _provider_file(tmp_path / "p.yaml", "http://127.0.0.1:1/wcs")
    path.write_text(
        path.read_text().replace(
            "    coverage: geo\n",
            "    coverage: geo\n    temporal:\n      temporal_type: monthly\n",
        )
    )
    provider = load_provider_file(path)
    with pytest.raises(SourceError, match="temporal WCS coverages are not supported") as info:
        from_definition(provider, provider.datasets[0]).open()
    assert info.value.kind == "unsupported"


def test_serve_wcs_refuses_what_mapserver_cannot_serve(mapserv: str, tiffs: dict[str, Path]):
    with pytest.raises(ValueError, match="one dtype and nodata"), serve_wcs(tiffs):
        pass
    with pytest.raises(ValueError, match="not an XML name"), serve_wcs({"1geo": tiffs["geo"]}):
        pass


# ------------------------------------------------------- tiles failing behind a proxy

Extent = tuple[float, float, float, float]
# crosses the seams of the 16-cell tiles of its window, and the nodata hole
POLYGON = shapely.Polygon([(10.14, 50.06), (10.35, 50.09), (10.30, 50.30), (10.16, 50.25)])


def _extent(query: dict[str, list[str]]) -> Extent | None:
    """The box a GetCoverage request asks for (2.0.1 SUBSETs or a 1.0.0 BBOX), else None."""
    if query.get("REQUEST") != ["GetCoverage"]:
        return None
    if "BBOX" in query:
        x0, y0, x1, y1 = (float(v) for v in query["BBOX"][0].split(","))
        return (x0, y0, x1, y1)
    (x0, x1), (y0, y1) = (
        (float(v) for v in axis[axis.index("(") + 1 : -1].split(",")) for axis in query["SUBSET"]
    )
    return (x0, y0, x1, y1)


@dataclass
class Flaky:
    """A proxy in front of a WCS answering 500 to the GetCoverage requests ``fails`` picks."""

    upstream: str
    url: str = ""
    fails: Callable[[Extent], bool] = lambda extent: False
    asked: Counter[Extent] = field(default_factory=Counter)  # GetCoverage requests by box
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Relay(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state: ClassVar[Flaky]

    def do_GET(self) -> None:
        query = self.path.partition("?")[2]
        extent = _extent(parse_qs(query))
        if extent is not None:
            with self.state.lock:
                self.state.asked[extent] += 1
        if extent is not None and self.state.fails(extent):
            status, kind, body = 500, "text/plain", b"tile store unavailable"
        else:
            answer = requests.get(f"{self.state.upstream}?{query}", timeout=30)
            status, kind, body = answer.status_code, answer.headers["Content-Type"], answer.content
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def flaky(servers: dict[str, WcsServer]) -> Iterator[Flaky]:
    state = Flaky(servers["geo"].url)
    server = ThreadingHTTPServer(("127.0.0.1", 0), type("Relay", (_Relay,), {"state": state}))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}{urlsplit(state.upstream).path}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _covers(x: float, y: float) -> Callable[[Extent], bool]:
    return lambda e: e[0] <= x < e[2] and e[1] <= y < e[3]


def _mean_without(tiff: Path, lost: list[Extent], folder: Path) -> float:
    """exactextract's mean of POLYGON over the file with the cells of ``lost`` as nodata."""
    with rasterio.open(tiff) as src:
        values, profile = src.read(1), src.profile
    cols, rows = np.meshgrid(np.arange(values.shape[1]) + 0.5, np.arange(values.shape[0]) + 0.5)
    xs, ys = profile["transform"] * (cols, rows)
    for x0, y0, x1, y1 in lost:
        values[(xs > x0) & (xs < x1) & (ys > y0) & (ys < y1)] = profile["nodata"]
    path = folder / "lost.tif"
    with rasterio.open(path, "w", **{**profile, "driver": "GTiff"}) as dst:
        dst.write(values, 1)
    feature = {"type": "Feature", "properties": {}, "geometry": shapely.geometry.mapping(POLYGON)}
    with rasterio.open(path) as src:
        (ee,) = exact_extract(src, [feature], ["mean"], output="geojson")
    return float(ee["properties"]["mean"])


@pytest.mark.parametrize("version", VERSIONS)
def test_a_tile_failing_after_the_retries_makes_the_result_degraded(
    flaky: Flaky, tiffs: dict[str, Path], tmp_path: Path, version: str
):
    flaky.fails = _covers(10.2, 50.2)  # one of the 4 tiles under POLYGON: 500 forever
    cas.configure(
        provider_files=[_provider_file(tmp_path / "p.yaml", flaky.url, version=version)],
        http_retries=1,
    )
    request = {"geometry": POLYGON, "dataset_ids": ["wcs_test:height"]}
    with pytest.warns(QualityWarning, match="degraded"):
        response = cas.extract_sync(request)
    result = response.results[0]
    assert result.quality is cas.QualityFlag.DEGRADED and result.error is None
    assert "could not be read and were treated as nodata" in response.warnings[0]
    lost = [e for e in flaky.asked if flaky.fails(e)]
    assert len(lost) == 1 and flaky.asked[lost[0]] == 2  # asked again once (http_retries)
    assert all(n == 1 for e, n in flaky.asked.items() if e not in lost)  # read once each
    assert result.value == pytest.approx(_mean_without(tiffs["geo"], lost, tmp_path), rel=1e-6)
    assert result.value != pytest.approx(_mean_without(tiffs["geo"], [], tmp_path), rel=1e-6)
    flaky.fails = lambda extent: False  # the server recovers: degraded results were not cached
    again = cas.extract_sync(request).results[0]
    assert again.quality is cas.QualityFlag.GOOD
    assert again.value == pytest.approx(_mean_without(tiffs["geo"], [], tmp_path), rel=1e-6)


def test_only_tiles_under_the_geometries_are_read_and_counted(flaky: Flaky, tmp_path: Path):
    flaky.fails = _covers(10.3, 50.2)  # between the two polygons
    cas.configure(provider_files=[_provider_file(tmp_path / "p.yaml", flaky.url)])
    corners = [shapely.box(10.02, 50.42, 10.08, 50.48), shapely.box(10.55, 49.95, 10.6, 50.0)]
    response = cas.batch_extract_sync({"geometries": corners, "dataset_ids": ["wcs_test:height"]})
    qualities = [r.results[0].quality for r in response.responses]
    assert qualities == [cas.QualityFlag.GOOD] * 2
    assert not any(flaky.fails(e) for e in flaky.asked)
    assert sorted(flaky.asked.values()) == [1] * len(flaky.asked)


def test_every_tile_failing_is_missing_with_the_error_and_the_rest_succeeds(
    flaky: Flaky, servers: dict[str, WcsServer], tmp_path: Path
):
    flaky.fails = lambda extent: extent[0] >= 10.1  # every tile, not the corner probe
    cas.configure(
        provider_files=[
            _provider_file(tmp_path / "a.yaml", flaky.url),
            _provider_file(tmp_path / "b.yaml", servers["geo"].url, slug="wcs_ok"),
        ],
        http_retries=1,
    )
    with pytest.warns(SourceWarning, match=r"wcs_test:height \(http\)"):
        response = cas.extract_sync(
            {"geometry": POLYGON, "dataset_ids": ["wcs_test:height", "wcs_ok:height"]}
        )
    failed, healthy = response.results
    assert failed.quality is cas.QualityFlag.MISSING and failed.value is None
    assert failed.error is not None and failed.error.kind == "http"
    assert failed.error.provider == "wcs_test"
    for said in ("HTTP 500: tile store unavailable", flaky.url, "provider 'wcs_test'"):
        assert said in failed.error.message
    assert healthy.quality is cas.QualityFlag.GOOD and healthy.error is None


def test_table_of_stacked_datasets_is_degraded_where_a_tile_failed(
    flaky: Flaky, servers: dict[str, WcsServer], tiffs: dict[str, Path], tmp_path: Path
):
    flaky.fails = _covers(10.2, 50.2)
    cas.configure(
        provider_files=[
            _provider_file(tmp_path / "a.yaml", flaky.url),
            _provider_file(tmp_path / "b.yaml", servers["geo"].url, slug="wcs_ok"),
        ],
        http_retries=1,
        progress=False,
    )
    frame = gpd.GeoDataFrame(geometry=[POLYGON], crs="EPSG:4326")
    with pytest.warns(QualityWarning, match="degraded"):
        table = cas.extract_table(frame, ["wcs_test:height", "wcs_ok:height"])
    assert table["wcs_test:height_quality"].astype(str).tolist() == ["degraded"]
    assert table["wcs_ok:height_quality"].astype(str).tolist() == ["good"]
    lost = [e for e in flaky.asked if flaky.fails(e)]
    assert all(n == 1 for e, n in flaky.asked.items() if e not in lost)  # read once each
    mean = table["wcs_test:height_mean"].iloc[0]
    assert mean == pytest.approx(_mean_without(tiffs["geo"], lost, tmp_path), rel=1e-6)


def test_open_fills_a_lost_tile_with_nodata_and_names_its_error(flaky: Flaky):
    flaky.fails = _covers(10.2, 50.2)
    cas.configure(http_retries=0)
    da = WcsSource(flaky.url, "geo", tile_size=16, provider="p").open(bbox=POLYGON.bounds)
    cells, errors = dask.compute(da, da.attrs["cas_failed_chunks"])
    assert errors.shape == (len(da.chunks[0]), len(da.chunks[1]))
    (lost,) = [e for e in errors.ravel() if e is not None]
    assert isinstance(lost, SourceError) and lost.kind == "http" and lost.provider == "p"
    assert "tile store unavailable" in str(lost) and flaky.url in str(lost)
    i, j = (int(n[0]) for n in np.nonzero(errors != None))  # noqa: E711  (object array)
    rows = slice(sum(da.chunks[0][:i]), sum(da.chunks[0][: i + 1]))
    cols = slice(sum(da.chunks[1][:j]), sum(da.chunks[1][: j + 1]))
    assert (cells.values[rows, cols] == cells.attrs["nodata"]).all()


def test_a_lost_tile_on_a_distributed_cluster(flaky: Flaky, tiffs: dict[str, Path], tmp_path: Path):
    distributed = pytest.importorskip("distributed")
    flaky.fails = _covers(10.2, 50.2)
    cas.configure(provider_files=[_provider_file(tmp_path / "p.yaml", flaky.url)], http_retries=1)
    with (
        distributed.LocalCluster(n_workers=1, processes=True, dashboard_address=":0") as cluster,
        distributed.Client(cluster),
        pytest.warns(QualityWarning, match="degraded"),
    ):
        result = cas.extract_sync({"geometry": POLYGON, "dataset_ids": ["wcs_test:height"]})
    assert result.results[0].quality is cas.QualityFlag.DEGRADED
    lost = [e for e in flaky.asked if flaky.fails(e)]
    assert all(n == 1 for e, n in flaky.asked.items() if e not in lost)  # read once each
    expected = _mean_without(tiffs["geo"], lost, tmp_path)
    assert result.results[0].value == pytest.approx(expected, rel=1e-6)
