"""The latency-injecting test server: ranges, relaying, delays and counters; TIFF tile maps."""

from __future__ import annotations

import email.parser
import email.policy
import http.client
import itertools
import os
import threading
import time
import urllib.parse
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from cas_xr.errors import InvalidArgumentError
from cas_xr.testing import (
    LatencyHTTPServer,
    MapServerNotFoundError,
    RequestRecord,
    find_mapserv,
    make_cog,
    serve_folder,
    serve_wcs,
    serve_with_latency,
    tiff_tiles,
    tiles_requested,
)

PAYLOAD = bytes(range(256)) * 3 + bytes(232)  # 1000 bytes


@pytest.fixture
def www(tmp_path: Path) -> Path:
    folder = tmp_path / "www"
    folder.mkdir()
    (folder / "blob.bin").write_bytes(PAYLOAD)
    (folder / "big.bin").write_bytes(bytes(200_000))
    return folder


def _connect(url: str) -> http.client.HTTPConnection:
    parts = urllib.parse.urlsplit(url)
    return http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)


def _get(
    url: str, path: str, method: str = "GET", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    connection = _connect(url)
    try:
        connection.request(method, path, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def _parts(headers: dict[str, str], body: bytes) -> list[tuple[str, bytes]]:
    """``(Content-Range, payload)`` of each part of a multipart/byteranges body."""
    head = f"Content-Type: {headers['Content-Type']}\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    assert message.is_multipart()
    return [(p["Content-Range"], p.get_payload(decode=True)) for p in message.iter_parts()]


def test_one_or_several_ranges_of_a_file(www: Path) -> None:
    with serve_with_latency(www, round_trip=0) as server:
        status, headers, body = _get(server.url, "/blob.bin", headers={"Range": "bytes=100-199"})
        assert (status, body) == (206, PAYLOAD[100:200])
        assert headers["Content-Range"] == "bytes 100-199/1000"
        assert headers["Content-Length"] == "100"

        status, headers, body = _get(server.url, "/blob.bin", headers={"Range": "bytes=-10"})
        assert (status, body, headers["Content-Range"]) == (
            206,
            PAYLOAD[-10:],
            "bytes 990-999/1000",
        )

        ranges = "bytes=0-9, 500-, 20-29,2000-3000, -5"  # one past the end: dropped
        status, headers, multipart = _get(server.url, "/blob.bin", headers={"Range": ranges})
        assert status == 206
        assert headers["Content-Type"].startswith("multipart/byteranges; boundary=")
        assert int(headers["Content-Length"]) == len(multipart)
        assert _parts(headers, multipart) == [
            ("bytes 0-9/1000", PAYLOAD[0:10]),
            ("bytes 500-999/1000", PAYLOAD[500:]),
            ("bytes 20-29/1000", PAYLOAD[20:30]),
            ("bytes 995-999/1000", PAYLOAD[995:]),
        ]

        status, headers, body = _get(server.url, "/blob.bin")
        assert (status, body, headers["Accept-Ranges"]) == (200, PAYLOAD, "bytes")
        status, _, body = _get(server.url, "/blob.bin", headers={"Range": "bytes=5-1"})
        assert (status, body) == (200, PAYLOAD)  # invalid: ignored, the whole file
        status, headers, _ = _get(server.url, "/blob.bin", headers={"Range": "bytes=1000-,-0"})
        assert (status, headers["Content-Range"]) == (416, "bytes */1000")
        status, headers, body = _get(
            server.url, "/blob.bin", method="HEAD", headers={"Range": "bytes=0-9"}
        )
        assert (status, body, headers["Content-Length"]) == (206, b"", "10")
        status, _, missing = _get(server.url, "/missing.bin")
        assert (status, missing) == (404, b"file not found")

        records = server.records
        assert [(r.method, r.path, r.status) for r in records] == [
            ("GET", "/blob.bin", 206),
            ("GET", "/blob.bin", 206),
            ("GET", "/blob.bin", 206),
            ("GET", "/blob.bin", 200),
            ("GET", "/blob.bin", 200),
            ("GET", "/blob.bin", 416),
            ("HEAD", "/blob.bin", 206),
            ("GET", "/missing.bin", 404),
        ]
        assert [r.ranges for r in records[:5]] == [
            ((100, 199),),
            ((990, 999),),
            ((0, 9), (500, 999), (20, 29), (995, 999)),
            ((0, 999),),
            ((0, 999),),
        ]
        assert all(r.ranges == () for r in records[5:])
        assert [r.bytes_sent for r in records] == [100, 10, len(multipart), 1000, 1000, 0, 0, 14]
        assert server.requests == 8
        assert server.bytes_sent == 2124 + len(multipart)
        assert server.peak_in_flight == 1
        server.reset()
        assert (server.requests, server.bytes_sent, server.records) == (0, 0, [])
        assert server.peak_in_flight == 0


def test_keep_alive_answers_several_requests_on_one_connection(www: Path) -> None:
    with serve_with_latency(www, round_trip=0) as server:
        connection = _connect(server.url)
        try:
            for first in (0, 10, 20):
                connection.request("GET", "/blob.bin", headers={"Range": f"bytes={first}-"})
                response = connection.getresponse()
                assert response.read() == PAYLOAD[first:]
                assert not response.will_close
                if first == 0:
                    socket = connection.sock
            assert connection.sock is socket  # not reconnected
        finally:
            connection.close()
        assert server.requests == 3


def test_round_trip_delays_every_request(www: Path) -> None:
    with serve_with_latency(www, round_trip=0.2) as server:
        for method in ("GET", "HEAD"):
            started = time.monotonic()
            assert _get(server.url, "/blob.bin", method=method)[0] == 200
            assert time.monotonic() - started >= 0.2
        server.round_trip = 0.4
        started = time.monotonic()
        assert _get(server.url, "/missing.bin")[0] == 404
        assert time.monotonic() - started >= 0.4
        assert all(r.finished - r.started >= 0.2 for r in server.records)


def test_bandwidth_paces_each_body(www: Path) -> None:
    with serve_with_latency(www, round_trip=0, bandwidth=400_000) as server:
        started = time.monotonic()
        status, _, body = _get(server.url, "/big.bin")
        assert (status, len(body)) == (200, 200_000)
        assert time.monotonic() - started >= 0.5
        server.bandwidth = None
        started = time.monotonic()
        assert len(_get(server.url, "/big.bin")[2]) == 200_000
        assert server.bytes_sent == 400_000


def test_peak_requests_in_flight_are_counted(www: Path) -> None:
    clients = 6
    with serve_with_latency(www, round_trip=1.0) as server:
        barrier = threading.Barrier(clients)
        statuses: list[int] = []

        def client() -> None:
            barrier.wait()
            statuses.append(_get(server.url, "/blob.bin", headers={"Range": "bytes=0-0"})[0])

        threads = [threading.Thread(target=client) for _ in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert statuses == [206] * clients
        assert server.peak_in_flight == clients  # all slept their round trip at once
        assert server.in_flight == 0
        assert server.wait_idle(timeout=1)
        server.reset()
        server.round_trip = 0
        for _ in range(3):
            _get(server.url, "/blob.bin")
        assert server.peak_in_flight == 1


def test_relays_to_an_upstream_server_with_the_same_delays(www: Path) -> None:
    with (
        serve_folder(www) as upstream,
        serve_with_latency(upstream=upstream.rstrip("/"), round_trip=0.2) as proxy,
    ):
        url = proxy.proxied(upstream + "blob.bin?x=1")
        assert url == f"{proxy.url}blob.bin?x=1"
        path = urllib.parse.urlsplit(url).path + "?x=1"
        started = time.monotonic()
        status, headers, body = _get(proxy.url, path, headers={"Range": "bytes=10-19"})
        assert time.monotonic() - started >= 0.2
        assert (status, body, headers["Content-Range"]) == (206, PAYLOAD[10:20], "bytes 10-19/1000")
        status, headers, body = _get(proxy.url, path, method="HEAD")
        assert (status, body, headers["Content-Length"]) == (200, b"", "1000")
        status, _, body = _get(proxy.url, "/blob.bin")
        assert (status, body) == (200, PAYLOAD)
        assert _get(proxy.url, "/missing.bin")[0] == 404
        assert [(r.method, r.path, r.status, r.ranges) for r in proxy.records] == [
            ("GET", "/blob.bin?x=1", 206, ((10, 19),)),
            ("HEAD", "/blob.bin?x=1", 200, ()),
            ("GET", "/blob.bin", 200, ((0, 999),)),
            ("GET", "/missing.bin", 404, ()),
        ]
        assert proxy.bytes_sent == 10 + 1000 + len(_get(upstream, "/missing.bin")[2])
        with pytest.raises(InvalidArgumentError, match="not on this server's upstream"):
            proxy.proxied("http://127.0.0.1:1/blob.bin")
    with serve_with_latency(upstream=upstream, round_trip=0) as orphan:  # upstream is down
        status, _, body = _get(orphan.url, "/blob.bin")
        assert status == 502
        assert b"upstream 127.0.0.1" in body


def test_relays_a_wcs_server(tmp_path: Path) -> None:
    grid = Affine(30, 0, 500_000, 0, -30, 5_000_000)
    tif = make_cog(
        tmp_path / "dem.tif", np.ones((32, 32), "float32"), transform=grid, crs="EPSG:32633"
    )
    try:
        find_mapserv()
    except MapServerNotFoundError as err:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but the WCS test server cannot start: {err}")
        pytest.skip(str(err))
    with serve_wcs({"dem": tif}) as wcs:
        origin = urllib.parse.urlsplit(wcs.url)
        with serve_with_latency(upstream=f"http://{origin.netloc}", round_trip=0.1) as proxy:
            url = proxy.proxied(wcs.url) + "?SERVICE=WCS&REQUEST=GetCapabilities&VERSION=2.0.1"
            parts = urllib.parse.urlsplit(url)
            started = time.monotonic()
            status, _, body = _get(proxy.url, f"{parts.path}?{parts.query}")
            assert time.monotonic() - started >= 0.1
            assert status == 200
            assert b"dem" in body and b"Capabilities" in body
            assert proxy.requests == 1 and proxy.bytes_sent == len(body)


def test_gdal_reads_a_cog_with_multi_range_requests(tmp_path: Path) -> None:
    data = np.random.default_rng(1).random((1024, 1024)).astype("float32")
    grid = Affine(30, 0, 500_000, 0, -30, 5_000_000)
    cog = make_cog(tmp_path / "dem.tif", data, transform=grid, crs="EPSG:32633", blocksize=256)
    tiles = tiff_tiles(cog)
    with (
        serve_with_latency(tmp_path, round_trip=0.01) as server,
        rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR", GDAL_HTTP_MULTIRANGE="SINGLE_GET"),
        rasterio.open(f"/vsicurl/{server.url}dem.tif") as src,
    ):
        server.reset()
        window = ((0, 1024), (300, 400))  # column 1 of tiles, in 4 rows: 4 ranges apart
        np.testing.assert_array_equal(src.read(1, window=window), data[:, 300:400])
    [multi] = [r for r in server.records if len(r.ranges) > 1]
    assert multi.status == 206 and multi.path == "/dem.tif"
    assert tiles_requested(server.records, tiles) == {(row, 1) for row in range(4)}


def test_tiff_tiles_locate_every_tile(tmp_path: Path) -> None:
    data = np.arange(48 * 32, dtype="float32").reshape(48, 32)
    grid = Affine(1, 0, 0, 0, -1, 48)
    cog = make_cog(tmp_path / "a.tif", data, transform=grid, crs="EPSG:32633", blocksize=16)
    tiles = tiff_tiles(cog)
    assert set(tiles) == {(r, c) for r in range(3) for c in range(2)}
    spans = sorted(tiles.values())
    assert all(a + n <= b for (a, n), (b, _) in itertools.pairwise(spans))
    for (row, col), (offset, length) in tiles.items():
        broken = tmp_path / f"broken_{row}_{col}.tif"
        raw = bytearray(cog.read_bytes())
        raw[offset : offset + length] = bytes(length)  # zero exactly this tile's bytes
        broken.write_bytes(raw)
        with rasterio.open(broken) as src:
            for r in range(3):
                for c in range(2):
                    rows, cols = slice(16 * r, 16 * (r + 1)), slice(16 * c, 16 * (c + 1))
                    window = ((rows.start, rows.stop), (cols.start, cols.stop))
                    try:
                        same = np.array_equal(src.read(1, window=window), data[rows, cols])
                    except rasterio.errors.RasterioIOError:
                        same = False
                    assert same == ((r, c) != (row, col)), ((row, col), (r, c))
    png = tmp_path / "a.png"
    profile = {"driver": "PNG", "dtype": "uint8", "count": 1, "width": 8, "height": 8}
    with rasterio.open(png, "w", **profile, transform=grid, crs="EPSG:32633") as dst:
        dst.write(np.zeros((1, 8, 8), "uint8"))
    with pytest.raises(InvalidArgumentError, match="not a GeoTIFF but a PNG file"):
        tiff_tiles(png)


def test_tiles_requested_maps_byte_ranges_onto_tiles() -> None:
    tiles = {(0, 0): (100, 50), (0, 1): (150, 50), (1, 0): (200, 50), (1, 1): (0, 0)}

    def record(*ranges: tuple[int, int]) -> RequestRecord:
        return RequestRecord("GET", "/a.tif", 206, ranges, 0, 0.0, 0.0)

    assert tiles_requested([record((0, 99))], tiles) == set()  # the header only
    assert tiles_requested([record((0, 100))], tiles) == {(0, 0)}  # its first byte
    assert tiles_requested([record((199, 199))], tiles) == {(0, 1)}  # the last byte of (0, 1)
    assert tiles_requested([record((120, 130), (249, 300)), record((0, 9))], tiles) == {
        (0, 0),
        (1, 0),
    }
    assert tiles_requested([], tiles) == set()


def test_invalid_settings_are_refused(www: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="either a directory"):
        LatencyHTTPServer()
    with pytest.raises(InvalidArgumentError, match="either a directory"):
        LatencyHTTPServer(www, upstream="http://127.0.0.1:1")
    with pytest.raises(InvalidArgumentError, match="not a directory"):
        LatencyHTTPServer(www / "blob.bin")
    with pytest.raises(InvalidArgumentError, match="origin of a plain HTTP server"):
        LatencyHTTPServer(upstream="http://127.0.0.1:1/wcs")
    with pytest.raises(InvalidArgumentError, match="round_trip"):
        LatencyHTTPServer(www, round_trip=-0.1)
    with pytest.raises(ValueError, match="bandwidth"):
        LatencyHTTPServer(www, bandwidth=0)
