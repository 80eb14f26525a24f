"""A static STAC catalog's documents: read ahead while a request is planned, read once.

Every server here is real (a range server on 127.0.0.1 that counts what it is asked);
the items read over HTTP are compared with those read from the disk.
"""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import geopandas as gpd
import numpy as np
import pystac
import pytest
import shapely
from affine import Affine

import cas_xr as cas
from cas_xr.config import get_settings
from cas_xr.engine import make_plan
from cas_xr.errors import SourceError
from cas_xr.sources._stac_static import StaticStacSource
from cas_xr.testing import (
    StacCollectionSpec,
    StacItemSpec,
    make_cog,
    make_stac_catalog,
    serve_status,
    serve_with_latency,
)
from tests.test_remote_reads import stac_provider
from tests.test_stac_static_reads import _peak, _quadrants

ROUND_TRIP = 0.1
BOX = shapely.box(10.2, 49.3, 10.25, 49.35)  # inside the quadrant q10 of _quadrants


def _documents(server) -> list[str]:  # type: ignore[no-untyped-def]
    return [r.path for r in server.records if r.path.endswith(".json")]


def _catalogs(server) -> int:  # type: ignore[no-untyped-def]
    """Requests of ``catalog.json`` (the collection's document is asked for beside it)."""
    return sum(r.path.endswith("/catalog.json") for r in server.records)


def _wait_for(server, count: int) -> list[str]:  # type: ignore[no-untyped-def]
    """The documents requested, once ``count`` of them were answered (or after 20 s)."""
    deadline = time.monotonic() + 20
    while len(_documents(server)) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    server.wait_idle(timeout=10)
    return _documents(server)


def test_a_plan_starts_reading_the_catalog_and_the_request_reads_it_once(tmp_path: Path):
    catalog = _quadrants(tmp_path)
    geometries = gpd.GeoSeries([BOX], crs="EPSG:4326")
    with serve_with_latency(tmp_path, round_trip=ROUND_TRIP) as server:
        http = stac_provider(tmp_path, "http", server.url + "catalog.json")
        cas.configure(provider_files=[http, stac_provider(tmp_path, "disk", str(catalog))])
        make_plan(
            geometries, ["http:dem"], aggregation="mean", time_range=None, batch_size=10,
            settings=get_settings(),
        )  # fmt: skip
        # nothing was opened, yet the catalog, the collection and its four items come
        assert len(_wait_for(server, 6)) == 6
        remote = cas.extract_table(geometries, ["http:dem"])
        assert len(_documents(server)) == 6  # the request took what the plan read
    disk = cas.extract_table(geometries, ["disk:dem"])
    assert np.isfinite(remote["http:dem_mean"]).all()
    np.testing.assert_allclose(remote["http:dem_mean"], disk["disk:dem_mean"], rtol=0, atol=1e-12)


def test_callers_at_once_share_one_read_of_the_documents(tmp_path: Path):
    catalog = _quadrants(tmp_path)
    with serve_with_latency(tmp_path, round_trip=ROUND_TRIP) as server:
        source = StaticStacSource(server.url + "catalog.json", "dem", provider="p")
        source.prefetch()
        got: list[list[pystac.Item]] = []
        threads = [threading.Thread(target=lambda: got.append(source.items())) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(_documents(server)) == 6  # catalog, collection, four items: once each
    on_disk = StaticStacSource(str(catalog), "dem", provider="p").items()
    assert len(got) == 3
    for items in got:
        assert [(it.id, it.bbox, it.properties) for it in items] == [
            (it.id, it.bbox, it.properties) for it in on_disk
        ]


def test_a_failed_read_ahead_raises_when_opened_and_is_not_kept(tmp_path: Path):
    with (
        serve_status(401) as url,
        serve_with_latency(upstream="http://" + urlsplit(url).netloc, round_trip=0) as relay,
    ):
        source = StaticStacSource(relay.url + "catalog.json", "dem", provider="p")
        source.prefetch()  # raises nothing
        with pytest.raises(SourceError, match="HTTP 401") as caught:
            source.open(bbox=(10.1, 49.2, 10.9, 49.9))
        assert (caught.value.kind, caught.value.provider) == ("http", "p")
        asked = _catalogs(relay)
        with pytest.raises(SourceError, match="HTTP 401"):
            source.items()
        assert _catalogs(relay) == asked + 1  # the failure was not kept: asked again


def test_documents_are_retried_within_the_settings(tmp_path: Path):
    with (
        serve_status(503) as url,
        serve_with_latency(upstream="http://" + urlsplit(url).netloc, round_trip=0) as relay,
    ):
        cas.configure(http_retries=2)
        source = StaticStacSource(relay.url + "catalog.json", "dem", provider="p")
        with pytest.raises(SourceError, match="HTTP 503") as caught:
            source.items()
        assert caught.value.kind == "http"
        assert _catalogs(relay) == 3  # the first try and two retries


def test_a_document_slower_than_the_deadline_times_out(tmp_path: Path):
    _quadrants(tmp_path)
    with serve_with_latency(tmp_path, round_trip=2.0) as server:
        cas.configure(provider_timeout_s=1, http_retries=0)
        source = StaticStacSource(server.url + "catalog.json", "dem", provider="p")
        with pytest.raises(SourceError) as caught:
            source.items()
        assert caught.value.kind == "timeout"


def _nested(folder: Path) -> Path:
    """Collection ``dem`` with two sub-catalogs (years) of two items each (quadrants)."""
    (folder / "flat").mkdir()
    flat = _quadrants(folder / "flat")
    collection = pystac.Catalog.from_file(str(flat)).get_child("dem")
    assert isinstance(collection, pystac.Collection)
    items = sorted(collection.get_items(), key=lambda it: it.id)
    nested = collection.full_copy()
    nested.clear_items()
    for year, pair in (("y2020", items[:2]), ("y2021", items[2:])):
        sub = pystac.Catalog(id=year, description=year)
        for item in pair:
            copy = item.full_copy()
            for key, asset in copy.assets.items():
                asset.href = item.assets[key].get_absolute_href() or asset.href
            sub.add_item(copy)
        nested.add_child(sub)
    root = pystac.Catalog(id="catalog", description="nested")
    root.add_child(nested)
    root.normalize_hrefs(str(folder / "nested"))
    root.make_all_asset_hrefs_relative()
    root.save(catalog_type=pystac.CatalogType.SELF_CONTAINED)
    return folder / "nested" / "catalog.json"


def test_sub_catalogs_are_read_a_level_at_a_time(tmp_path: Path):
    catalog = _nested(tmp_path)
    cas.configure(max_concurrent_requests_per_host=4)
    with serve_with_latency(tmp_path, round_trip=ROUND_TRIP) as server:
        remote = StaticStacSource(server.url + "nested/catalog.json", "dem", provider="p")
        items = remote.items()
        records = [r for r in server.records if r.path.endswith(".json")]
    years = [r for r in records if r.path.endswith("/catalog.json") and "/y20" in r.path]
    leaves = [r for r in records if r.path.count("/") == 5]  # /nested/dem/y2020/q00/q00.json
    assert len(records) == 8  # catalog, collection, two years, four items
    assert _peak(years) == 2
    assert _peak(leaves) >= 3  # the items of both years at once
    on_disk = StaticStacSource(str(catalog), "dem", provider="p").items()
    assert [it.id for it in items] == [it.id for it in on_disk] == ["q00", "q01", "q10", "q11"]
    assert [it.properties for it in items] == [it.properties for it in on_disk]


def test_collections_whose_hrefs_do_not_name_them_are_read_at_once(tmp_path: Path):
    rng = np.random.default_rng(3)
    specs = []
    for k, name in enumerate(("alpha", "beta", "gamma")):
        cog = make_cog(
            tmp_path / f"{name}.tif", rng.normal(size=(64, 64)).astype("float32"),
            transform=Affine(0.01, 0.0, 10.0 + k, 0.0, -0.01, 50.0), crs="EPSG:4326",
            blocksize=32,
        )  # fmt: skip
        item = StacItemSpec(f"{name}-1", cog, dt.datetime(2020, 1, 1))
        specs.append(StacCollectionSpec(name, name, [item]))
    catalog = make_stac_catalog(tmp_path / "cat", specs)
    text = catalog.read_text(encoding="utf-8")
    for k, name in enumerate(("alpha", "beta", "gamma")):  # folders that do not name them
        shutil.move(tmp_path / "cat" / name, tmp_path / "cat" / f"c{k}")
        text = text.replace(f"./{name}/collection.json", f"./c{k}/collection.json")
    catalog.write_text(text, encoding="utf-8")
    with serve_with_latency(tmp_path, round_trip=ROUND_TRIP) as server:
        items = StaticStacSource(server.url + "cat/catalog.json", "gamma").items()
        documents = [r for r in server.records if r.path.endswith("/collection.json")]
    collections = [r for r in documents if r.status == 200]
    assert [it.id for it in items] == ["gamma-1"]
    assert len(collections) == 3
    assert [(r.path, r.status) for r in documents if r.status != 200] == [
        ("/cat/gamma/collection.json", 404)  # the usual place, asked for with the catalog
    ]
    assert _peak(collections) >= 2  # at once (pystac reads them in turn)


def test_a_layer_read_by_tile_does_not_import_odc_stac(tmp_path: Path):
    catalog = _quadrants(tmp_path)
    code = f"""
import sys
from cas_xr.sources._stac_static import StaticStacSource

source = StaticStacSource({str(catalog)!r}, "dem", provider="p")
da = source.open(bbox=(10.2, 49.3, 10.25, 49.35))
assert da.data.name.startswith("cas-stac-tiles"), da.data.name  # read by tile
print(float(da.mean().compute()), sorted(m for m in sys.modules if m.startswith("odc.stac")))
"""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    mean, imported = done.stdout.split(" ", 1)
    assert np.isfinite(float(mean))
    assert imported.strip() == "[]"


def test_the_collection_document_is_asked_for_with_the_catalog(tmp_path: Path):
    """In the usual layout the collection's document is requested before the catalog's
    answer names it: one round trip less, and each document still read once."""
    catalog = _quadrants(tmp_path)
    with serve_with_latency(tmp_path, round_trip=ROUND_TRIP) as server:
        items = StaticStacSource(server.url + "catalog.json", "dem", provider="p").items()
        records = [r for r in server.records if r.path.endswith(".json")]
    paths = [r.path for r in records]
    assert sorted(paths) == sorted(set(paths)) and len(paths) == 6  # catalog, collection, 4
    first = {r.path: r for r in records}
    assert first["/dem/collection.json"].started < first["/catalog.json"].finished
    on_disk = StaticStacSource(str(catalog), "dem", provider="p").items()
    assert [(it.id, it.properties) for it in items] == [(it.id, it.properties) for it in on_disk]


def test_a_collection_elsewhere_is_read_where_the_catalog_says(tmp_path: Path):
    catalog = _quadrants(tmp_path)
    shutil.move(tmp_path / "dem", tmp_path / "elsewhere")
    text = catalog.read_text(encoding="utf-8").replace("./dem/", "./elsewhere/")
    catalog.write_text(text, encoding="utf-8")
    with serve_with_latency(tmp_path, round_trip=ROUND_TRIP) as server:
        items = StaticStacSource(server.url + "catalog.json", "dem", provider="p").items()
        asked = [(r.path, r.status) for r in server.records if r.path.endswith(".json")]
    assert ("/dem/collection.json", 404) in asked  # the guess, once
    assert [p for p, status in asked if status != 200] == ["/dem/collection.json"]
    on_disk = StaticStacSource(str(catalog), "dem", provider="p").items()
    assert [(it.id, it.properties) for it in items] == [(it.id, it.properties) for it in on_disk]
