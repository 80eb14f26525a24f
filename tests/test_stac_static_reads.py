"""A static STAC catalog over HTTP: its item documents are read at once, not one by one."""

from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path

import numpy as np
from affine import Affine

import cas_xr as cas
from cas_xr.sources._stac_static import StaticStacSource
from cas_xr.testing import (
    StacCollectionSpec,
    StacItemSpec,
    make_cog,
    make_stac_catalog,
    serve_with_latency,
)
from tests.test_remote_reads import GRID, TILE, _values

ROUND_TRIP = 0.1


def _quadrants(folder: Path) -> Path:
    """A catalog of one collection of four items, the quadrants of the test raster."""
    values, half = _values(), 512
    specs = []
    for i, j in itertools.product(range(2), repeat=2):
        cog = make_cog(
            folder / f"q{i}{j}.tif", values[i * half : (i + 1) * half, j * half : (j + 1) * half],
            transform=GRID @ Affine.translation(j * half, i * half), crs="EPSG:4326",
            blocksize=TILE, nodata=-9999.0,
        )  # fmt: skip
        specs.append(StacItemSpec(f"q{i}{j}", cog, dt.datetime(2020, 1, 1)))
    return make_stac_catalog(folder, [StacCollectionSpec("dem", "quadrants", specs)])


def _peak(records) -> int:  # type: ignore[no-untyped-def]
    events = sorted([(r.started, 1) for r in records] + [(r.finished, -1) for r in records])
    return max(itertools.accumulate(step for _, step in events))


def test_item_documents_are_read_at_once_and_equal_those_on_disk(tmp_path: Path):
    catalog = _quadrants(tmp_path)
    cas.configure(max_concurrent_requests_per_host=3)
    box = (10.1, 49.2, 10.9, 49.9)
    on_disk = StaticStacSource(str(catalog), "dem", provider="p", temporal=False)
    with serve_with_latency(tmp_path, round_trip=ROUND_TRIP) as server:
        remote = StaticStacSource(server.url + "catalog.json", "dem", provider="p", temporal=False)
        items = remote.items()
        documents = [r for r in server.records if r.path.endswith(".json")]
        opened = remote.open(bbox=box)
        np.testing.assert_array_equal(opened.values, on_disk.open(bbox=box).values)
    item_reads = [r for r in documents if r.path.count("/") > 2]  # /dem/q00/q00.json
    assert len(documents) == 6  # catalog, collection, four items
    assert len(item_reads) == 4
    assert 2 <= _peak(item_reads) <= 3  # at once, within the host's cap
    assert [it.id for it in items] == [it.id for it in on_disk.items()]
    assert [(it.bbox, it.properties) for it in items] == [
        (it.bbox, it.properties) for it in on_disk.items()
    ]
