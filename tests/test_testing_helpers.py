"""Tests of the public test helpers in ``cas_xr.testing``."""

from __future__ import annotations

import datetime as dt
import http.client
import json
import pathlib
import threading
import urllib.parse

import numpy as np
import odc.stac
import pystac
import pytest
import rasterio
from affine import Affine
from pystac.extensions.projection import ProjectionExtension

from cas_xr.testing import (
    COG_MEDIA_TYPE,
    RangeHTTPServer,
    StacCollectionSpec,
    StacItemSpec,
    _cog,
    make_cog,
    make_stac_catalog,
    serve_folder,
)

RES = 0.001
WEST_TRANSFORM = Affine(RES, 0.0, -96.70, 0.0, -RES, 39.30)
EAST_TRANSFORM = Affine(RES, 0.0, -96.40, 0.0, -RES, 39.30)


def _field(shape: tuple[int, int], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(400.0, 30.0, size=shape).astype("float32")


# --------------------------------------------------------------------------- make_cog


def test_make_cog_writes_tiled_compressed_cog_with_overviews(tmp_path: pathlib.Path) -> None:
    data = _field((600, 700), seed=1)
    data[:5, :5] = -9999.0
    path = make_cog(
        tmp_path / "dem.tif",
        data,
        transform=WEST_TRANSFORM,
        crs="EPSG:4326",
        nodata=-9999.0,
        band_descriptions=["elevation"],
        units="m",
    )
    assert path == tmp_path / "dem.tif"
    with rasterio.open(path) as src:
        profile = src.profile
        assert profile["tiled"] is True
        assert (profile["blockxsize"], profile["blockysize"]) == (256, 256)
        assert profile["compress"] == "deflate"
        assert src.overviews(1) == [2, 4]
        assert src.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        assert src.crs.to_epsg() == 4326
        assert src.transform == WEST_TRANSFORM
        assert src.nodata == -9999.0
        assert src.descriptions == ("elevation",)
        assert src.units == ("m",)
        np.testing.assert_array_equal(src.read(1), data)


def test_make_cog_small_image_has_no_overviews(tmp_path: pathlib.Path) -> None:
    data = np.arange(40 * 50, dtype="int16").reshape(40, 50)
    path = make_cog(tmp_path / "small.tif", data, transform=WEST_TRANSFORM, crs=4326, blocksize=128)
    with rasterio.open(path) as src:
        assert src.overviews(1) == []
        assert src.profile["blockxsize"] == 128
        assert src.nodata is None
        np.testing.assert_array_equal(src.read(1), data)


def test_make_cog_multiband(tmp_path: pathlib.Path) -> None:
    data = np.stack([np.full((30, 20), value, dtype="uint8") for value in (10, 20, 30)])
    path = make_cog(
        tmp_path / "rgb.tif",
        data,
        transform=WEST_TRANSFORM,
        crs="EPSG:4326",
        nodata=0,
        band_descriptions=["r", "g", "b"],
        units=["dn", "dn", "dn"],
        compress="zstd",
    )
    with rasterio.open(path) as src:
        assert src.count == 3
        assert src.descriptions == ("r", "g", "b")
        assert src.profile["compress"] == "zstd"
        np.testing.assert_array_equal(src.read(), data)


def test_make_cog_without_cog_driver_falls_back_to_tiled_gtiff(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_cog, "_has_cog_driver", lambda: False)
    data = _field((600, 300), seed=2)
    path = make_cog(tmp_path / "fallback.tif", data, transform=WEST_TRANSFORM, crs="EPSG:4326")
    with rasterio.open(path) as src:
        assert src.profile["tiled"] is True
        assert src.profile["compress"] == "deflate"
        assert src.overviews(1) == [2, 4]
        np.testing.assert_array_equal(src.read(1), data)


@pytest.mark.parametrize(
    ("data", "kwargs", "message"),
    [
        (np.zeros(10, dtype="float32"), {}, "2-D"),
        (np.zeros((1, 2, 3, 4), dtype="float32"), {}, "2-D"),
        (np.zeros((0, 4), dtype="float32"), {}, "empty"),
        (np.zeros((4, 4), dtype="complex64"), {}, "unsupported dtype"),
        (np.zeros((4, 4), dtype=bool), {}, "unsupported dtype"),
        (np.zeros((4, 4), dtype="uint8"), {"nodata": -1}, "outside the range"),
        (np.zeros((4, 4), dtype="int16"), {"nodata": 0.5}, "not an integer"),
        (np.zeros((4, 4), dtype="float32"), {"nodata": 1e300}, "does not fit"),
        (np.zeros((4, 4), dtype="float32"), {"blocksize": 100}, "multiple of 16"),
        (np.zeros((4, 4), dtype="float32"), {"compress": "jpeg2000"}, "compress"),
        (np.zeros((4, 4), dtype="float32"), {"overview_resampling": "max"}, "resampling"),
        (np.zeros((2, 4, 4), dtype="float32"), {"band_descriptions": ["a"]}, "band"),
        (np.zeros((2, 4, 4), dtype="float32"), {"units": ["m"]}, "band"),
    ],
)
def test_make_cog_rejects_bad_input(
    tmp_path: pathlib.Path, data: np.ndarray, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        make_cog(tmp_path / "x.tif", data, transform=WEST_TRANSFORM, crs=4326, **kwargs)  # type: ignore[arg-type]


def test_make_cog_rejects_missing_directory(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ValueError, match="directory does not exist"):
        make_cog(
            tmp_path / "missing" / "x.tif",
            np.zeros((4, 4), dtype="float32"),
            transform=WEST_TRANSFORM,
            crs=4326,
        )


# ------------------------------------------------------------------ make_stac_catalog


@pytest.fixture
def two_tile_catalog(tmp_path: pathlib.Path) -> tuple[pathlib.Path, np.ndarray, np.ndarray]:
    """A catalog of two adjacent 300x300 tiles, written under ``tmp_path/stac``."""
    root = tmp_path / "stac"
    (root / "cogs").mkdir(parents=True)
    west = _field((300, 300), seed=3)
    east = _field((300, 300), seed=4) + 100.0
    west[10:20, 10:20] = -9999.0
    for name, data, transform in (("west", west, WEST_TRANSFORM), ("east", east, EAST_TRANSFORM)):
        make_cog(
            root / "cogs" / f"{name}.tif",
            data,
            transform=transform,
            crs="EPSG:4326",
            nodata=-9999.0,
            units="m",
        )
    when = dt.datetime(2021, 1, 1, tzinfo=dt.UTC)
    spec = StacCollectionSpec(
        id="elevation",
        description="Synthetic elevation",
        items=[
            StacItemSpec("elevation-west", "cogs/west.tif", when),
            StacItemSpec("elevation-east", root / "cogs" / "east.tif", when),
        ],
        extra_fields={"cas:note": "test"},
    )
    return make_stac_catalog(root, [spec]), west, east


def test_stac_catalog_metadata(
    two_tile_catalog: tuple[pathlib.Path, np.ndarray, np.ndarray],
) -> None:
    catalog_path, _, _ = two_tile_catalog
    assert catalog_path.name == "catalog.json"
    catalog = pystac.Catalog.from_file(catalog_path)
    assert catalog.catalog_type == pystac.CatalogType.SELF_CONTAINED
    collection = catalog.get_child("elevation")
    assert isinstance(collection, pystac.Collection)
    assert collection.extra_fields["cas:note"] == "test"
    assert collection.extent.spatial.bboxes[0] == pytest.approx([-96.7, 39.0, -96.1, 39.3])
    interval = collection.extent.temporal.intervals[0]
    assert interval == [dt.datetime(2021, 1, 1, tzinfo=dt.UTC)] * 2

    item = collection.get_item("elevation-west")
    assert item is not None
    assert item.bbox == pytest.approx([-96.7, 39.0, -96.4, 39.3])
    props = item.properties
    assert props["proj:code"] == "EPSG:4326"
    assert ProjectionExtension.ext(item).epsg == 4326
    assert props["proj:shape"] == [300, 300]
    assert props["proj:transform"] == pytest.approx(list(WEST_TRANSFORM)[:6])
    assert props["proj:bbox"] == pytest.approx([-96.7, 39.0, -96.4, 39.3])
    asset = item.assets["data"]
    assert asset.media_type == COG_MEDIA_TYPE
    assert asset.roles == ["data"]
    assert asset.extra_fields["raster:bands"] == [
        {"nodata": -9999.0, "sampling": "area", "data_type": "float32", "unit": "m"}
    ]
    # hrefs in the JSON files are relative, the asset one relative to the item file
    raw = json.loads(pathlib.Path(item.get_self_href() or "").read_text())
    assert raw["properties"]["proj:epsg"] == 4326  # pystac drops it when reading
    assert raw["assets"]["data"]["href"] == "../../cogs/west.tif"
    assert all(not link["href"].startswith("/") for link in raw["links"])
    assert pathlib.Path(asset.get_absolute_href() or "").is_file()


def test_stac_catalog_loads_with_odc_stac_on_the_source_grid(
    two_tile_catalog: tuple[pathlib.Path, np.ndarray, np.ndarray],
) -> None:
    catalog_path, west, east = two_tile_catalog
    items = list(pystac.Catalog.from_file(catalog_path).get_items(recursive=True))
    ds = odc.stac.load(items, bands=["data"], chunks={"x": 256, "y": 256}, anchor="floating")
    assert ds["data"].chunks is not None  # lazy dask array
    assert ds.sizes["time"] == 1
    assert ds.sizes["latitude"] == 300
    assert ds.sizes["longitude"] == 600
    # pixel centres of the source grid: no half-pixel shift
    np.testing.assert_allclose(ds["longitude"].values[0], -96.70 + RES / 2)
    np.testing.assert_allclose(ds["latitude"].values[0], 39.30 - RES / 2)
    values = ds["data"].isel(time=0).values
    np.testing.assert_array_equal(values[:, :300], west)
    np.testing.assert_array_equal(values[:, 300:], east)
    assert ds["data"].attrs["nodata"] == -9999.0


def test_stac_item_in_projected_crs_gets_a_wgs84_footprint(tmp_path: pathlib.Path) -> None:
    transform = Affine(30.0, 0.0, 700_000.0, 0.0, -30.0, 4_350_000.0)
    path = make_cog(
        tmp_path / "utm.tif",
        np.ones((100, 200), dtype="uint16"),
        transform=transform,
        crs="EPSG:32614",
        nodata=0,
    )
    with rasterio.open(path, "r+", IGNORE_COG_LAYOUT_BREAK="YES") as dst:
        dst.scales = (0.5,)
        dst.offsets = (10.0,)
    spec = StacCollectionSpec(
        "utm",
        "Projected data",
        [
            StacItemSpec(
                "utm-1",
                "utm.tif",
                None,
                start_datetime=dt.datetime(2022, 1, 1),
                end_datetime=dt.datetime(2022, 1, 31, 23, 59, 59),
                properties={"platform": "synthetic"},
            )
        ],
    )
    catalog = pystac.Catalog.from_file(make_stac_catalog(tmp_path, [spec]))
    item = next(iter(catalog.get_items(recursive=True)))
    assert item.properties["proj:code"] == "EPSG:32614"
    assert item.properties["proj:bbox"] == pytest.approx([700_000, 4_347_000, 706_000, 4_350_000])
    assert item.properties["platform"] == "synthetic"
    assert item.datetime is None
    assert item.common_metadata.start_datetime == dt.datetime(2022, 1, 1, tzinfo=dt.UTC)
    west, south, east, north = item.bbox or []
    assert -96.8 < west < east < -96.6
    assert 39.2 < south < north < 39.3
    assert item.geometry is not None
    assert len(item.geometry["coordinates"][0]) > 5  # densified before reprojection
    band = item.assets["data"].extra_fields["raster:bands"][0]
    assert band == {
        "nodata": 0,
        "sampling": "area",
        "data_type": "uint16",
        "scale": 0.5,
        "offset": 10.0,
    }


def test_make_stac_catalog_validates_specs(tmp_path: pathlib.Path) -> None:
    make_cog(tmp_path / "a.tif", np.zeros((4, 4), "uint8"), transform=WEST_TRANSFORM, crs=4326)
    when = dt.datetime(2021, 1, 1)
    item = StacItemSpec("a", "a.tif", when)
    with pytest.raises(ValueError, match="at least one collection"):
        make_stac_catalog(tmp_path, [])
    with pytest.raises(ValueError, match="no items"):
        make_stac_catalog(tmp_path, [StacCollectionSpec("c", "d", [])])
    with pytest.raises(ValueError, match="duplicated item ids"):
        make_stac_catalog(tmp_path, [StacCollectionSpec("c", "d", [item, item])])
    with pytest.raises(ValueError, match="duplicated collection ids"):
        make_stac_catalog(
            tmp_path, [StacCollectionSpec("c", "d", [item]), StacCollectionSpec("c", "d", [])]
        )
    with pytest.raises(ValueError, match="needs a datetime"):
        make_stac_catalog(
            tmp_path, [StacCollectionSpec("c", "d", [StacItemSpec("a", "a.tif", None)])]
        )
    with pytest.raises(ValueError, match="COG not found"):
        make_stac_catalog(
            tmp_path, [StacCollectionSpec("c", "d", [StacItemSpec("b", "b.tif", when)])]
        )


# ---------------------------------------------------------------------- serve_folder


def _request(
    url: str, path: str, method: str = "GET", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        connection.request(method, path, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


@pytest.fixture
def served(tmp_path: pathlib.Path) -> tuple[pathlib.Path, bytes]:
    """A folder ``tmp_path/www`` with a 1000-byte file, next to a secret file."""
    www = tmp_path / "www"
    (www / "sub").mkdir(parents=True)
    payload = bytes(range(256)) * 3 + bytes(232)
    (www / "sub" / "blob.bin").write_bytes(payload)
    (tmp_path / "secret.txt").write_text("do not serve")
    (www / "link.txt").symlink_to(tmp_path / "secret.txt")
    return www, payload


def test_serve_folder_byte_ranges(served: tuple[pathlib.Path, bytes]) -> None:
    www, payload = served
    with serve_folder(www) as url:
        assert url.startswith("http://127.0.0.1:")
        assert url.endswith("/")
        status, headers, body = _request(url, "/sub/blob.bin")
        assert status == 200
        assert body == payload
        assert headers["Accept-Ranges"] == "bytes"
        assert headers["Content-Length"] == "1000"

        status, headers, body = _request(url, "/sub/blob.bin", headers={"Range": "bytes=100-199"})
        assert status == 206
        assert body == payload[100:200]
        assert headers["Content-Range"] == "bytes 100-199/1000"
        assert headers["Content-Length"] == "100"

        status, headers, body = _request(url, "/sub/blob.bin", headers={"Range": "bytes=-10"})
        assert (status, body) == (206, payload[-10:])
        assert headers["Content-Range"] == "bytes 990-999/1000"

        status, headers, body = _request(url, "/sub/blob.bin", headers={"Range": "bytes=900-5000"})
        assert (status, body) == (206, payload[900:])
        assert headers["Content-Range"] == "bytes 900-999/1000"

        status, headers, body = _request(url, "/sub/blob.bin", headers={"Range": "bytes=990-"})
        assert (status, body) == (206, payload[990:])

        status, headers, _ = _request(url, "/sub/blob.bin", headers={"Range": "bytes=1000-1001"})
        assert status == 416
        assert headers["Content-Range"] == "bytes */1000"

        # multiple ranges are not supported: the whole file is served
        status, _, body = _request(url, "/sub/blob.bin", headers={"Range": "bytes=0-1,5-6"})
        assert (status, body) == (200, payload)


def test_serve_folder_head_missing_and_escapes(served: tuple[pathlib.Path, bytes]) -> None:
    www, _ = served
    with serve_folder(www) as url:
        status, headers, body = _request(url, "/sub/blob.bin", method="HEAD")
        assert (status, body) == (200, b"")
        assert headers["Content-Length"] == "1000"
        assert headers["Accept-Ranges"] == "bytes"

        status, headers, body = _request(
            url, "/sub/blob.bin", method="HEAD", headers={"Range": "bytes=0-9"}
        )
        assert (status, body) == (206, b"")
        assert headers["Content-Length"] == "10"

        for path in (
            "/missing.tif",
            "/sub/",
            "/../secret.txt",
            "/sub/../../secret.txt",
            "/%2e%2e/secret.txt",
            "/link.txt",
        ):
            status, _, body = _request(url, path)
            assert status == 404, path
            assert b"do not serve" not in body


def test_serve_folder_shuts_down(served: tuple[pathlib.Path, bytes]) -> None:
    www, _ = served
    with serve_folder(www) as url:
        pass
    with pytest.raises(ConnectionRefusedError):
        _request(url, "/sub/blob.bin")


def test_range_http_server_can_be_run_by_hand(served: tuple[pathlib.Path, bytes]) -> None:
    www, payload = served
    server = RangeHTTPServer(www)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        status, _, body = _request(server.url, "/sub/blob.bin", headers={"Range": "bytes=0-0"})
        assert (status, body) == (206, payload[:1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    with pytest.raises(ValueError, match="not a directory"):
        RangeHTTPServer(www / "sub" / "blob.bin")


def test_rasterio_reads_cog_over_vsicurl(tmp_path: pathlib.Path) -> None:
    data = _field((600, 500), seed=5)
    make_cog(tmp_path / "dem.tif", data, transform=WEST_TRANSFORM, crs="EPSG:4326", nodata=-9999.0)
    with (
        serve_folder(tmp_path) as url,
        rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR"),
        rasterio.open(f"/vsicurl/{url}dem.tif") as src,
    ):
        assert src.transform == WEST_TRANSFORM
        assert src.overviews(1) == [2, 4]
        np.testing.assert_array_equal(src.read(1), data)
        window = rasterio.windows.Window(300, 200, 50, 40)
        np.testing.assert_array_equal(src.read(1, window=window), data[200:240, 300:350])


def test_odc_stac_loads_items_served_over_http(
    two_tile_catalog: tuple[pathlib.Path, np.ndarray, np.ndarray],
) -> None:
    catalog_path, west, east = two_tile_catalog
    with serve_folder(catalog_path.parent) as url:
        catalog = pystac.Catalog.from_file(f"{url}catalog.json")
        items = list(catalog.get_items(recursive=True))
        hrefs = {item.assets["data"].get_absolute_href() for item in items}
        assert hrefs == {f"{url}cogs/west.tif", f"{url}cogs/east.tif"}
        ds = odc.stac.load(items, bands=["data"], chunks={"x": 256, "y": 256}, anchor="floating")
        values = ds["data"].isel(time=0).values
    np.testing.assert_array_equal(values[:, :300], west)
    np.testing.assert_array_equal(values[:, 300:], east)
