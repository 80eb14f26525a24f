"""The STAC API source against a real STAC API (rustac) whose assets sit on a range server.

Pixels are checked against a mosaic COG read with rasterio, statistics against exactextract
on that mosaic; faults (API down, slow, flaky, no items, truncated COG) must give errors or
MISSING results quickly.
"""

from __future__ import annotations

import datetime as dt
import html
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import rasterio
from affine import Affine
from exactextract import exact_extract
from exactextract.raster import NumPyRasterSource
from rasterio.windows import Window

import cas_xr as cas
from cas_xr.catalog import ProviderDefinition, parse_provider
from cas_xr.errors import (
    MissingDependencyError,
    ProviderDefinitionError,
    SourceError,
    SourceWarning,
)
from cas_xr.models import TimeRange
from cas_xr.sources import Source
from cas_xr.sources._stac_api import StacApiSource, from_definition
from cas_xr.sources._stac_io import StacIO
from cas_xr.testing import (
    StacApiServerError,
    StacCollectionSpec,
    StacItemSpec,
    make_cog,
    make_stac_catalog,
    raise_if_dask_computes,
    read_static_collection,
    serve_folder,
    serve_stac_api,
)

RES = 0.01
ORIGIN = (10.0, 50.8)  # top-left of the 2 x 2 tiles of 40 x 40 cells
MOSAIC = Affine(RES, 0, ORIGIN[0], 0, -RES, ORIGIN[1])
NODATA = -9999.0
TILE_IDS = ["t00", "t01", "t10", "t11"]
# crosses both seams (lon 10.4, lat 50.4) and avoids the nodata block in the NW corner
POLYGON = {
    "type": "Polygon",
    "coordinates": [
        [[10.23, 50.21], [10.61, 50.27], [10.55, 50.63], [10.28, 50.58], [10.23, 50.21]]
    ],
}
MONTHS = [dt.datetime(2020, m, 1) for m in (1, 2, 3)]


def _tile(row: int, col: int) -> np.ndarray:
    rows, cols = np.mgrid[0:40, 0:40].astype("float32")
    values = 100 * (2 * row + col + 1) + 0.5 * rows + 0.25 * cols
    if (row, col) == (0, 0):
        values[:3, :3] = NODATA
    return values


@dataclass(frozen=True)
class Data:
    root: Path
    mosaic: Path
    dem: Path
    monthly: Path


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Data:
    root = tmp_path_factory.mktemp("stac_api")
    for folder in ("dem", "monthly", "ref"):
        (root / folder).mkdir()
    tiles, steps = [], []
    for row in range(2):
        for col in range(2):
            transform = MOSAIC @ Affine.translation(40 * col, 40 * row)
            path = make_cog(
                root / "dem" / f"t{row}{col}.tif",
                _tile(row, col),
                transform=transform,
                crs="EPSG:4326",
                nodata=NODATA,
            )
            tiles.append(StacItemSpec(id=f"t{row}{col}", href=path, datetime=MONTHS[0]))
    for i, month in enumerate(MONTHS):
        values = _tile(0, 1) + 1000 * i
        path = make_cog(
            root / "monthly" / f"m{i}.tif", values, transform=MOSAIC, crs="EPSG:4326", nodata=NODATA
        )
        steps.append(StacItemSpec(id=f"m{i}", href=path, datetime=month))
    mosaic = np.block([[_tile(0, 0), _tile(0, 1)], [_tile(1, 0), _tile(1, 1)]])
    return Data(
        root=root,
        mosaic=make_cog(
            root / "ref" / "mosaic.tif", mosaic, transform=MOSAIC, crs="EPSG:4326", nodata=NODATA
        ),
        dem=make_stac_catalog(root / "dem", [StacCollectionSpec("dem", "tiles", tiles)]),
        monthly=make_stac_catalog(root / "monthly", [StacCollectionSpec("monthly", "m", steps)]),
    )


def _serve(stack: ExitStack, collection: dict[str, Any], items: list[dict[str, Any]]) -> str:
    """Start a STAC API; under CI=true failing to start fails the test, else it skips."""
    try:
        return stack.enter_context(serve_stac_api(collection, items))
    except (MissingDependencyError, StacApiServerError) as err:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the STAC API server could not be started: {err}")
        pytest.skip(f"the STAC API server could not be started: {err}")


@dataclass(frozen=True)
class Servers:
    files: str
    dem: str
    monthly: str


@pytest.fixture(scope="module")
def servers(data: Data) -> Iterator[Servers]:
    with ExitStack() as stack:
        files = stack.enter_context(serve_folder(data.root))
        dem = _serve(stack, *read_static_collection(data.dem, "dem", base_url=f"{files}dem/"))
        monthly = _serve(
            stack, *read_static_collection(data.monthly, "monthly", base_url=f"{files}monthly/")
        )
        yield Servers(files, dem, monthly)


def _provider(tmp_path: Path, endpoint: str, *, options: str = "", slug: str = "api") -> Path:
    path = tmp_path / f"{slug}.yaml"
    path.write_text(
        f"""slug: {slug}
protocol: stac_cog
endpoint: {endpoint}
{options}
datasets:
  - name: elevation
    collection: dem
    variables:
      - name: elevation
        units: m
        nodata_value: {NODATA}
        valid_range: [0, 1000]
""",
        encoding="utf-8",
    )
    return path


def _definition(options: dict[str, Any]) -> ProviderDefinition:
    return parse_provider(
        {
            "slug": "api",
            "protocol": "stac_cog",
            "endpoint": "http://127.0.0.1:1/",
            "options": options,
            "datasets": [{"name": "elevation", "variables": [{"name": "elevation", "units": "m"}]}],
        },
        origin="test",
    )


def _dead_endpoint() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/"


# ------------------------------------------------------------------------------ reading


def test_open_across_the_seam_is_lazy_uses_every_item_and_equals_the_mosaic(
    data: Data, servers: Servers
):
    source = StacApiSource(servers.dem, "dem", provider="api")
    assert isinstance(source, Source)
    with raise_if_dask_computes():
        da = source.open(bbox=(10.305, 50.305, 10.555, 50.555))
    assert da.dims == ("y", "x")
    assert da.attrs["nodata"] == NODATA and da.dtype == np.float32
    assert da.attrs["cas_provenance"] == {
        "protocol": "stac_api", "endpoint": servers.dem, "collection": "dem", "asset": "data",
        "items": TILE_IDS,
    }  # fmt: skip
    # snapped outward on the source grid: cells 30..56 x 24..50 of the mosaic, no resampling
    assert da.odc.geobox.transform.almost_equals(MOSAIC @ Affine.translation(30, 24))
    assert da.shape == (26, 26)
    with rasterio.open(data.mosaic) as src:
        expected = src.read(1, window=Window(30, 24, 26, 26))
    np.testing.assert_array_equal(da.values, expected)


def test_whole_collection_keeps_nodata_as_in_the_files(data: Data, servers: Servers):
    da = StacApiSource(servers.dem, "dem").open(chunks=32)
    assert da.chunks == ((32, 32, 16), (32, 32, 16))
    with rasterio.open(data.mosaic) as src:
        np.testing.assert_array_equal(da.values, src.read(1))
    assert (da.values[:3, :3] == NODATA).all()


def test_pagination_follows_every_page(servers: Servers, monkeypatch: pytest.MonkeyPatch):
    pages: list[str] = []
    request = StacIO.request

    def counting(self: StacIO, href: str, *args: Any, **kwargs: Any) -> str:
        pages.extend([href] if href.endswith("/search") else [])
        return request(self, href, *args, **kwargs)

    monkeypatch.setattr(StacIO, "request", counting)
    items = StacApiSource(servers.dem, "dem", limit=1).search()
    assert [it.id for it in items] == TILE_IDS
    assert len(pages) >= 4


def test_searches_are_cached_for_metadata_cache_ttl_s(
    servers: Servers, monkeypatch: pytest.MonkeyPatch
):
    calls: list[str] = []
    request = StacIO.request

    def counting(self: StacIO, href: str, *args: Any, **kwargs: Any) -> str:
        calls.append(href)
        return request(self, href, *args, **kwargs)

    monkeypatch.setattr(StacIO, "request", counting)
    source = StacApiSource(servers.dem, "dem")
    source.search(bbox=(10.1, 50.1, 10.2, 50.2))
    first = len(calls)
    source.search(bbox=(10.1, 50.1, 10.2, 50.2))
    assert len(calls) == first > 0
    cas.configure(metadata_cache_ttl_s=0)
    source.search(bbox=(10.1, 50.1, 10.2, 50.2))
    assert len(calls) == 2 * first


def test_time_range_selects_steps_of_a_temporal_collection(data: Data, servers: Servers):
    source = StacApiSource(servers.monthly, "monthly", temporal=True)
    bbox = (10.1, 50.5, 10.2, 50.6)
    with raise_if_dask_computes():
        spring = source.open(bbox=bbox, time_range=TimeRange(start="2020-02-01", end="2020-03-31"))
    assert spring.dims == ("time", "y", "x")
    np.testing.assert_array_equal(spring["time"], np.array(MONTHS[1:], dtype="datetime64[ns]"))
    assert spring.attrs["cas_provenance"]["items"] == ["m1", "m2"]
    everything = source.open(bbox=bbox)
    assert everything.sizes["time"] == 3
    np.testing.assert_array_equal(spring.values, everything.values[1:])
    np.testing.assert_array_equal(spring.values[1] - spring.values[0], 1000)


def test_provider_yaml_through_the_facade_equals_exactextract_on_the_mosaic(
    data: Data, servers: Servers, tmp_path: Path
):
    cas.configure(provider_files=[_provider(tmp_path, servers.dem, options="options: {limit: 2}")])
    response = cas.extract_sync({"geometry": POLYGON, "dataset_ids": ["api:elevation"]})
    result = response.results[0]
    assert result.error is None and result.quality is cas.QualityFlag.GOOD
    assert result.coverage_fraction == pytest.approx(1.0, abs=1e-9)
    assert result.provenance["items"] == TILE_IDS
    assert result.provenance["protocol"] == "stac_api"
    with rasterio.open(data.mosaic) as src:
        array = src.read(1)
    raster = NumPyRasterSource(array, 10.0, 50.0, 10.8, 50.8, nodata=np.float32(NODATA))
    feature = {"type": "Feature", "properties": {}, "geometry": POLYGON}
    expected = exact_extract(raster, [feature], ["mean"], output="geojson")[0]["properties"]
    assert result.value == pytest.approx(expected["mean"], abs=1e-6)


# ------------------------------------------------------------------------------ options


def test_options_are_validated_with_clear_errors():
    with pytest.raises(ProviderDefinitionError, match=r"provider 'api': limt: Extra inputs"):
        from_definition(provider := _definition({"limt": 5}), provider.datasets[0])
    with pytest.raises(ProviderDefinitionError, match="limit"):
        from_definition(provider := _definition({"limit": 0}), provider.datasets[0])
    both = _definition({"sign": "planetary_computer", "patch_url": "html:escape"})
    with pytest.raises(ProviderDefinitionError, match="either 'sign' or 'patch_url'"):
        from_definition(both, both.datasets[0])
    missing = _definition({"patch_url": "html:nope"})
    with pytest.raises(ProviderDefinitionError, match="'html:nope' cannot be imported"):
        from_definition(missing, missing.datasets[0])


def test_patch_url_hook_and_planetary_computer_signing(monkeypatch: pytest.MonkeyPatch):
    hooked = _definition({"patch_url": "html:escape", "filter": "eo:cloud_cover < 10"})
    source = from_definition(hooked, hooked.datasets[0])
    assert source.patch_url is html.escape and source.filter == "eo:cloud_cover < 10"
    signing = _definition({"sign": "planetary_computer"})

    def sign(url: str) -> str:
        return url + "?token"

    monkeypatch.setitem(sys.modules, "planetary_computer", type(sys)("planetary_computer"))
    monkeypatch.setattr(sys.modules["planetary_computer"], "sign", sign, raising=False)
    assert from_definition(signing, signing.datasets[0]).patch_url is sign
    monkeypatch.setitem(sys.modules, "planetary_computer", None)
    with pytest.raises(MissingDependencyError, match="pip install planetary-computer"):
        from_definition(signing, signing.datasets[0])


def test_patch_url_rewrites_every_asset_url(servers: Servers):
    seen: list[str] = []

    def patch(url: str) -> str:
        seen.append(url)
        return url

    StacApiSource(servers.dem, "dem", patch_url=patch).open(bbox=(10.3, 50.3, 10.5, 50.5))
    assert sorted(u.rsplit("/", 1)[-1] for u in seen) == [f"{i}.tif" for i in TILE_IDS]


def test_unsupported_extension_is_an_error_not_a_silent_no_op(servers: Servers):
    source = StacApiSource(servers.dem, "dem", filter={"op": "=", "args": [{"property": "x"}, 1]})
    with pytest.raises(SourceError, match="does not conform to the filter extension") as err:
        source.open(bbox=(10.3, 50.3, 10.5, 50.5))
    assert err.value.kind == "unsupported"


# ------------------------------------------------------------------------------ faults


def test_api_down_is_a_connection_error_and_missing_via_the_facade(tmp_path: Path):
    cas.configure(provider_timeout_s=2, http_retries=2)
    endpoint = _dead_endpoint()
    started = time.monotonic()
    with pytest.raises(SourceError, match="cannot connect") as err:
        StacApiSource(endpoint, "dem", provider="api").open(bbox=(10.3, 50.3, 10.5, 50.5))
    assert err.value.kind == "connection" and err.value.url == endpoint
    assert "provider 'api'" in str(err.value)
    cas.configure(provider_files=[_provider(tmp_path, endpoint)])
    with pytest.warns(SourceWarning, match=r"api:elevation \(connection\)"):
        result = cas.extract_sync({"geometry": POLYGON, "dataset_ids": ["api:elevation"]})
    assert result.results[0].quality is cas.QualityFlag.MISSING
    assert result.results[0].error is not None and result.results[0].error.kind == "connection"
    assert time.monotonic() - started < 10


def test_search_without_items_is_no_data(servers: Servers, tmp_path: Path):
    far = (20.0, 20.0, 20.5, 20.5)
    with pytest.raises(SourceError, match="no item of collection 'dem' intersects") as err:
        StacApiSource(servers.dem, "dem").open(bbox=far)
    assert err.value.kind == "no_data"
    cas.configure(provider_files=[_provider(tmp_path, servers.dem)])
    point = {"type": "Point", "coordinates": [20.2, 20.2]}
    with pytest.warns(SourceWarning):
        result = cas.extract_sync({"geometry": point, "dataset_ids": ["api:elevation"]}).results[0]
    assert result.quality is cas.QualityFlag.MISSING
    assert result.error is not None and result.error.kind == "no_data"


def test_unknown_collection_is_a_definition_error(servers: Servers):
    with pytest.raises(SourceError, match=r"'nope' is not served by the STAC API.*'dem'") as err:
        StacApiSource(servers.dem, "nope").open(bbox=(10.3, 50.3, 10.5, 50.5))
    assert err.value.kind == "definition"


def test_truncated_cog_is_missing_with_an_error(tmp_path: Path):
    cas.configure(provider_timeout_s=2, gdal_http_max_retry=1)
    cog = make_cog(tmp_path / "t.tif", _tile(1, 1), transform=MOSAIC, crs="EPSG:4326", nodata=0.0)
    catalog = make_stac_catalog(
        tmp_path, [StacCollectionSpec("dem", "cut", [StacItemSpec("cut", cog, MONTHS[0])])]
    )
    cog.write_bytes(cog.read_bytes()[: cog.stat().st_size // 2])
    with ExitStack() as stack:
        files = stack.enter_context(serve_folder(tmp_path))
        api = _serve(stack, *read_static_collection(catalog, "dem", base_url=files))
        cas.configure(provider_files=[_provider(tmp_path, api, slug="cut")])
        started = time.monotonic()
        with pytest.warns(SourceWarning, match="cut:elevation"):
            result = cas.extract_sync({"geometry": POLYGON, "dataset_ids": ["cut:elevation"]})
        signed = StacApiSource(api, "dem", provider="cut", patch_url=lambda u: f"{u}?sig=secret")
        with pytest.raises(SourceError, match="cannot read the asset") as err:
            signed.open(bbox=(10.3, 50.3, 10.5, 50.5)).compute()
        assert err.value.url == f"{files}t.tif" and "secret" not in str(err.value)
    assert result.results[0].quality is cas.QualityFlag.MISSING
    error = result.results[0].error
    assert error is not None and error.kind == "read" and error.provider == "cut"
    url = f"{files}t.tif"
    for said in (url, "provider 'cut'", "corrupt or truncated"):
        assert said in error.message
    assert "cut:elevation: failed (read): cannot read the asset" in result.warnings[0]
    assert url in result.warnings[0]
    assert time.monotonic() - started < 15


# -------------------------------------------------------------------- retries and deadline


class _Scripted(BaseHTTPRequestHandler):
    """Answers with the next status of ``script`` (then 200), sleeping ``delay_s`` first."""

    script: ClassVar[list[int]] = []
    delay_s: ClassVar[float] = 0.0
    calls: ClassVar[int] = 0

    def do_GET(self) -> None:
        type(self).calls += 1
        time.sleep(self.delay_s)
        status = self.script.pop(0) if self.script else 200
        body = b'{"ok": true}' if status == 200 else b"busy"
        try:
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            pass  # the client gave up (timeout test)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def scripted() -> Iterator[tuple[str, type[_Scripted]]]:
    handler = type("Handler", (_Scripted,), {"script": [], "delay_s": 0.0, "calls": 0})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/x", handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_5xx_are_retried_then_succeed(scripted: tuple[str, type[_Scripted]]):
    url, handler = scripted
    handler.script = [503, 500]
    assert StacIO("api").request(url) == '{"ok": true}'
    assert handler.calls == 3


def test_4xx_fail_at_once_and_5xx_give_up_after_http_retries(
    scripted: tuple[str, type[_Scripted]],
):
    url, handler = scripted
    handler.script = [404]
    with pytest.raises(SourceError, match="HTTP 404") as err:
        StacIO("api").request(url)
    assert err.value.kind == "http" and handler.calls == 1
    cas.configure(http_retries=2)
    handler.calls, handler.script = 0, [503] * 5
    with pytest.raises(SourceError, match="gave up after 3 attempt") as err:
        StacIO("api").request(url)
    assert err.value.kind == "http" and handler.calls == 3


def test_a_slow_api_times_out_within_provider_timeout_s(scripted: tuple[str, type[_Scripted]]):
    url, handler = scripted
    handler.delay_s = 3.0
    cas.configure(provider_timeout_s=0.5)
    started = time.monotonic()
    with pytest.raises(SourceError) as err:
        StacIO("api").request(url)
    assert err.value.kind == "timeout"
    assert time.monotonic() - started < 1.5
