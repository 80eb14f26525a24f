"""A real, local STAC API (rustac's in-memory server) for tests of STAC API sources."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import pathlib
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator, Mapping
from typing import Any
from urllib.parse import urljoin

import pystac

from cas_xr.errors import CasError, MissingDependencyError

__all__ = ["StacApiServerError", "read_static_collection", "serve_stac_api"]

# rustac's CLI parses the process arguments after the interpreter's, so it runs as a script
_RUSTAC = "import sys\n\nimport rustac\n\nsys.exit(rustac.main())\n"


class StacApiServerError(CasError, RuntimeError):
    """The local STAC API server could not be started."""


def read_static_collection(
    catalog: str | pathlib.Path, collection_id: str, *, base_url: str
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A collection of a static catalog as JSON for :func:`serve_stac_api`.

    Parameters
    ----------
    catalog
        ``catalog.json`` of a static catalog, e.g. from
        :func:`~cas_xr.testing.make_stac_catalog`.
    collection_id
        The collection to read.
    base_url
        URL at which the catalog's folder is served (e.g. by
        :func:`~cas_xr.testing.serve_folder`); every asset href is rewritten to it.

    Returns
    -------
    tuple
        ``(collection, items)`` as JSON-ready dicts, with absolute asset URLs.

    Raises
    ------
    ValueError
        If the collection is missing or an asset lies outside the catalog's folder.
    """
    root_dir = pathlib.Path(catalog).resolve().parent
    child = pystac.Catalog.from_file(str(catalog)).get_child(collection_id)
    if not isinstance(child, pystac.Collection):
        raise ValueError(f"catalog {catalog} has no collection {collection_id!r}")
    items = []
    for item in child.get_items(recursive=True):
        data = item.to_dict(include_self_link=False, transform_hrefs=False)
        for key, asset in item.assets.items():
            path = pathlib.Path(asset.get_absolute_href() or asset.href).resolve()
            if not path.is_relative_to(root_dir):
                raise ValueError(f"asset {key!r} of item {item.id!r} is outside {root_dir}")
            data["assets"][key]["href"] = urljoin(base_url, path.relative_to(root_dir).as_posix())
        items.append(data)
    return child.to_dict(include_self_link=False, transform_hrefs=False), items


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _write_inputs(
    folder: pathlib.Path, collection: Mapping[str, Any], items: Iterable[Mapping[str, Any]]
) -> tuple[pathlib.Path, pathlib.Path]:
    collection_path, items_path = folder / "collection.json", folder / "items.ndjson"
    (folder / "rustac_cli.py").write_text(_RUSTAC, encoding="utf-8")
    collection_path.write_text(json.dumps({**collection, "links": []}), encoding="utf-8")
    lines = [json.dumps({**item, "collection": collection["id"], "links": []}) for item in items]
    if not lines:
        raise ValueError("serve_stac_api needs at least one item")
    items_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return collection_path, items_path


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _start(
    inputs: tuple[pathlib.Path, pathlib.Path], host: str, log: pathlib.Path, timeout_s: float
) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port(host)
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    script = inputs[0].with_name("rustac_cli.py")
    command = [sys.executable, str(script), "serve", *map(str, inputs), "--addr", address]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://{address}/"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and process.poll() is None:
        if _answers(url):
            return process, url
        time.sleep(0.05)
    _stop(process)
    output = log.read_text(encoding="utf-8", errors="replace").strip()[-2000:]
    raise StacApiServerError(
        f"rustac serve did not answer at {url} within {timeout_s} s "
        f"(exit code {process.returncode}); its output: {output or '(none)'}"
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextlib.contextmanager
def serve_stac_api(
    collection: Mapping[str, Any] | pystac.Collection,
    items: Iterable[Mapping[str, Any] | pystac.Item],
    *,
    host: str = "127.0.0.1",
    startup_timeout_s: float = 20.0,
) -> Iterator[str]:
    """Serve one collection and its items as a STAC API (item search) on a free port.

    The server is ``rustac serve`` (pip ``rustac``), an in-memory STAC API with item
    search (``bbox``, ``datetime``, ``ids``, ``collections``, paging; no ``query`` or
    ``filter`` extension), run as a subprocess that is stopped when the context exits.

    Parameters
    ----------
    collection
        The collection (a dict or :class:`pystac.Collection`); its links are dropped.
    items
        Its items (dicts or :class:`pystac.Item`) with absolute asset URLs, e.g. from
        :func:`read_static_collection`; their links are dropped.
    host
        Address to bind.
    startup_timeout_s
        How long to wait for the server to answer.

    Yields
    ------
    str
        Root URL of the API, ending with ``/`` (e.g. ``"http://127.0.0.1:40123/"``).

    Raises
    ------
    MissingDependencyError
        If rustac is not installed.
    StacApiServerError
        If the server does not start (its output is in the message).

    Examples
    --------
    >>> with serve_folder(root) as files:  # doctest: +SKIP
    ...     collection, items = read_static_collection(catalog, "dem", base_url=files)
    ...     with serve_stac_api(collection, items) as api:
    ...         pystac_client.Client.open(api).search(collections=["dem"]).item_collection()
    """
    if importlib.util.find_spec("rustac") is None:
        raise MissingDependencyError("serve_stac_api needs rustac: pip install rustac")
    as_dict = collection.to_dict() if isinstance(collection, pystac.Collection) else collection
    dicts = [it.to_dict() if isinstance(it, pystac.Item) else it for it in items]
    with tempfile.TemporaryDirectory(prefix="cas_xr-stac-api-") as folder:
        inputs = _write_inputs(pathlib.Path(folder), as_dict, dicts)
        process, url = _start(inputs, host, pathlib.Path(folder) / "rustac.log", startup_timeout_s)
        try:
            yield url
        finally:
            _stop(process)
