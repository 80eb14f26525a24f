"""A real WCS server for tests: MapServer's CGI binary behind a small in-process HTTP bridge.

:func:`serve_wcs` writes a mapfile publishing GeoTIFFs as WCS 1.0.0 / 2.0.1 coverages and
the configuration file MapServer 8 requires, then answers HTTP requests on 127.0.0.1 by
running the ``mapserv`` CGI program once per request (Debian packages ``cgi-mapserver``
and ``mapserver-bin``) and relaying its status, headers and body.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pathlib
import re
import shutil
import socket
import socketserver
import subprocess
import tempfile
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

import rasterio

__all__ = ["MAP_ALIAS", "MapServerNotFoundError", "WcsServer", "find_mapserv", "serve_wcs"]

#: ``map=`` value that also selects the mapfile (mapfile paths themselves are refused).
MAP_ALIAS = "CAS_XR_WCS"

_LOG = logging.getLogger(__name__)
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")  # coverage ids must be XML NCNames
_IMAGEMODES = {"uint8": "BYTE", "int16": "INT16", "float32": "FLOAT32"}
_CGI_TIMEOUT_S = 60
_HTML_PAGE = (
    b"<!DOCTYPE html><html><head><title>Service unavailable</title></head>"
    b"<body><h1>Down for maintenance</h1></body></html>"
)

Fault = Literal["html", "empty"] | None


class MapServerNotFoundError(FileNotFoundError):
    """The ``mapserv`` CGI program is not installed."""


def find_mapserv() -> str:
    """Locate the ``mapserv`` CGI program.

    Returns
    -------
    str
        Its path (``$PATH`` first, then Debian's ``/usr/lib/cgi-bin/mapserv``).

    Raises
    ------
    MapServerNotFoundError
        If it is not installed; the message names the Debian packages to install.
    """
    found = shutil.which("mapserv")
    if found:
        return found
    cgi = pathlib.Path("/usr/lib/cgi-bin/mapserv")
    if cgi.is_file() and os.access(cgi, os.X_OK):
        return str(cgi)
    raise MapServerNotFoundError(
        "the MapServer CGI program `mapserv` was not found; install it, e.g. "
        "`apt-get install cgi-mapserver mapserver-bin` on Debian/Ubuntu"
    )


@dataclass
class WcsServer:
    """A running WCS server (see :func:`serve_wcs`).

    Attributes
    ----------
    url
        The WCS endpoint, e.g. ``"http://127.0.0.1:40123/wcs"``.
    mapfile
        The generated mapfile.
    fault
        Set to ``"html"`` to make every following request answer ``200`` with an HTML page
        instead of running MapServer (a misconfigured proxy or maintenance page), to
        ``"empty"`` for ``200`` with ``Content-Type: image/tiff`` and no body; ``None``
        (default) serves normally.
    """

    url: str
    mapfile: pathlib.Path
    fault: Fault = None
    _server: ThreadingHTTPServer | None = field(default=None, repr=False)

    def stop(self) -> None:
        """Shut the HTTP bridge down now (later requests are refused)."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _quote(value: str) -> str:
    if '"' in value or "\n" in value:
        raise ValueError(f"cannot write {value!r} into a mapfile (quotes or newlines)")
    return f'"{value}"'


@dataclass(frozen=True)
class _Raster:
    path: pathlib.Path
    epsg: int
    dtype: str
    nodata: float | None
    bands: int
    bounds: tuple[float, float, float, float]
    size: tuple[int, int]


def _raster(name: str, path: pathlib.Path) -> _Raster:
    if not _NAME.match(name):
        raise ValueError(f"coverage id {name!r} is not an XML name (letter or _ first)")
    if not path.is_file():
        raise ValueError(f"coverage {name!r}: no such file {path}")
    _quote(str(path))  # fails early on paths a mapfile cannot hold
    with rasterio.open(path) as src:
        epsg = src.crs.to_epsg() if src.crs else None
        if epsg is None:
            raise ValueError(f"{path}: serve_wcs needs a CRS with an EPSG code, got {src.crs}")
        if src.dtypes[0] not in _IMAGEMODES:
            raise ValueError(
                f"{path}: MapServer serves {sorted(_IMAGEMODES)} rasters, not {src.dtypes[0]}"
            )
        return _Raster(
            path, epsg, src.dtypes[0], src.nodata, src.count, tuple(src.bounds), src.shape[::-1]
        )


def _layer(name: str, raster: _Raster) -> str:
    null = "" if raster.nodata is None else (
        f'      "wcs_rangeset_nullvalue" "{_number(raster.nodata)}"\n'
        f'      "wcs_nilvalues" "{_number(raster.nodata)}"\n'
    )  # fmt: skip
    # wcs_extent + wcs_size make a "virtual dataset": its metadata (nil values) is described
    return f"""  LAYER
    NAME {_quote(name)}
    TYPE RASTER
    STATUS ON
    DATA {_quote(str(raster.path))}
    PROJECTION
      "init=epsg:{raster.epsg}"
    END
    METADATA
      "wcs_label" {_quote(name)}
      "wcs_rangeset_name" "values"
      "wcs_rangeset_label" "values"
      "wcs_srs" "EPSG:{raster.epsg}"
      "wcs_extent" "{" ".join(_number(v) for v in raster.bounds)}"
      "wcs_size" "{raster.size[0]} {raster.size[1]}"
      "wcs_bandcount" "{raster.bands}"
      "wcs_imagemode" "{_IMAGEMODES[raster.dtype]}"
      "wcs_formats" "GEOTIFF"
      "wcs_nativeformat" "GEOTIFF"
{null}    END
  END
"""


def _rasters(tiffs: Mapping[str, str | os.PathLike[str]]) -> dict[str, _Raster]:
    rasters = {name: _raster(name, pathlib.Path(p).resolve()) for name, p in tiffs.items()}
    profiles = {name: (r.dtype, r.nodata) for name, r in rasters.items()}
    if not rasters:
        raise ValueError("serve_wcs needs at least one GeoTIFF")
    if len(set(profiles.values())) > 1:
        raise ValueError(
            "MapServer answers FORMAT=image/tiff with its first GeoTIFF output format, so one "
            "server can only publish rasters of one dtype and nodata; got "
            f"{profiles}. Start one serve_wcs() per (dtype, nodata)"
        )
    return rasters


def _mapfile(rasters: dict[str, _Raster], url: str) -> str:
    first = next(iter(rasters.values()))
    dtype, nodata = first.dtype, first.nodata
    # NULLVALUE fills the cells MapServer reads as nodata, so they come back unchanged
    null = "" if nodata is None else f'    FORMATOPTION "NULLVALUE={_number(nodata)}"\n'
    layers = "".join(_layer(name, raster) for name, raster in rasters.items())
    return f"""MAP
  NAME "cas_xr_wcs"
  EXTENT -180 -90 180 90
  SIZE 256 256
  MAXSIZE 8192
  PROJECTION
    "init=epsg:4326"
  END
  OUTPUTFORMAT
    NAME "GEOTIFF"
    DRIVER "GDAL/GTiff"
    MIMETYPE "image/tiff"
    IMAGEMODE {_IMAGEMODES[dtype]}
    EXTENSION "tif"
{null}  END
  WEB
    METADATA
      "wcs_label" "cas_xr test WCS"
      "wcs_enable_request" "*"
      "wcs_onlineresource" {_quote(url + "?")}
    END
  END
{layers}END
"""


def _split_cgi(output: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, headers and body of a CGI program's output."""
    for separator in (b"\r\n\r\n", b"\n\n"):
        head, found, body = output.partition(separator)
        if found:
            break
    else:
        return 502, [("Content-Type", "text/plain")], b"mapserv wrote no CGI headers"
    status, headers = 200, []
    for line in head.decode("latin-1").splitlines():
        name, _, value = line.partition(":")
        if name.strip().lower() == "status":
            status = int(value.split()[0])
        elif name.strip():
            headers.append((name.strip(), value.strip()))
    return status, headers, body


class _Bridge(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, host: str, port: int, mapserv: str, config: pathlib.Path) -> None:
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.mapserv = mapserv
        self.config = config
        self.state: WcsServer | None = None
        super().__init__((host, port), _Handler)

    def server_bind(self) -> None:
        socketserver.TCPServer.server_bind(self)  # no reverse DNS lookup
        host, port = self.socket.getsockname()[:2]
        self.server_name, self.server_port = str(host), int(port)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Bridge

    def do_GET(self) -> None:
        fault = self.server.state.fault if self.server.state is not None else None
        if fault == "html":
            self._send(200, [("Content-Type", "text/html; charset=utf-8")], _HTML_PAGE)
            return
        if fault == "empty":
            self._send(200, [("Content-Type", "image/tiff")], b"")
            return
        _, _, query = self.path.partition("?")
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "MAPSERVER_CONFIG_FILE": str(self.server.config),
            "GATEWAY_INTERFACE": "CGI/1.1",
            "REQUEST_METHOD": "GET",
            "QUERY_STRING": query,
            "SCRIPT_NAME": self.path.partition("?")[0],
            "SERVER_NAME": self.server.server_name,
            "SERVER_PORT": str(self.server.server_port),
            "SERVER_PROTOCOL": "HTTP/1.1",
        }
        try:
            done = subprocess.run(
                [self.server.mapserv], env=env, capture_output=True, timeout=_CGI_TIMEOUT_S
            )
        except subprocess.TimeoutExpired:
            self._send(504, [("Content-Type", "text/plain")], b"mapserv timed out")
            return
        if done.stderr:
            _LOG.debug("mapserv stderr: %s", done.stderr.decode(errors="replace"))
        self._send(*_split_cgi(done.stdout))

    def _send(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers:
            if name.lower() not in {"content-length", "connection"}:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Log requests at DEBUG level instead of writing to stderr."""
        _LOG.debug("%s - " + format, self.address_string(), *args)


@contextlib.contextmanager
def serve_wcs(
    tiffs: Mapping[str, str | os.PathLike[str]],
    *,
    host: str = "127.0.0.1",
    port: int = 0,
) -> Iterator[WcsServer]:
    """Serve GeoTIFFs as WCS 1.0.0 and 2.0.1 coverages with MapServer, in the background.

    Parameters
    ----------
    tiffs
        Coverage id -> GeoTIFF. Ids must be XML names (letter or ``_`` first). All rasters
        must share one dtype (uint8, int16 or float32) and nodata: MapServer answers
        ``FORMAT=image/tiff`` with the first GeoTIFF output format of the mapfile, so
        start one server per (dtype, nodata).
    host
        Address to bind.
    port
        Port to bind; 0 picks a free port.

    Yields
    ------
    WcsServer
        ``url`` is the WCS endpoint; ``fault`` injects faults; ``stop()`` takes the
        server down early.

    Raises
    ------
    MapServerNotFoundError
        If ``mapserv`` is not installed.
    ValueError
        If an id is not an XML name, a raster has no EPSG CRS or an unsupported dtype, or
        the rasters differ in dtype or nodata.

    Examples
    --------
    >>> with serve_wcs({"dem": "dem.tif"}) as wcs:  # doctest: +SKIP
    ...     requests.get(wcs.url, params={"SERVICE": "WCS", "REQUEST": "GetCapabilities"})
    """
    mapserv = find_mapserv()
    rasters = _rasters(tiffs)
    with tempfile.TemporaryDirectory(prefix="cas_xr_wcs_") as tmp:
        folder = pathlib.Path(tmp)
        config, mapfile = folder / "mapserver.conf", folder / "wcs.map"
        bridge = _Bridge(host, port, mapserv, config)
        shown = f"[{bridge.server_name}]" if ":" in bridge.server_name else bridge.server_name
        state = WcsServer(url=f"http://{shown}:{bridge.server_port}/wcs", mapfile=mapfile)
        mapfile.write_text(_mapfile(rasters, state.url), encoding="utf-8")
        config.write_text(
            "CONFIG\n  ENV\n"
            f"    MS_MAPFILE {_quote(str(mapfile))}\n"
            '    MS_MAP_NO_PATH "1"\n'
            f"  END\n  MAPS\n    {MAP_ALIAS} {_quote(str(mapfile))}\n  END\nEND\n",
            encoding="utf-8",
        )
        bridge.state, state._server = state, bridge
        thread = threading.Thread(
            target=bridge.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"serve_wcs:{state.url}",
            daemon=True,
        )
        thread.start()
        try:
            yield state
        finally:
            state.stop()
            thread.join()
