"""Small local catalogs for tests, built with the public cas_xr.testing helpers."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
from affine import Affine

from cas_xr.testing import StacCollectionSpec, StacItemSpec, make_cog, make_stac_catalog

# a 20 x 20 grid of 0.01 deg cells over lon 10..10.2, lat 50..50.2, values = 100 + row
GRID = Affine(0.01, 0, 10.0, 0, -0.01, 50.2)
VALUES = 100.0 + np.arange(20, dtype="float32")[:, None] * np.ones((1, 20), "float32")


def make_catalog(root: Path, *, collection: str = "height", broken_href: bool = False) -> Path:
    """A static STAC catalog with one float32 COG item; returns catalog.json's path."""
    root.mkdir(parents=True, exist_ok=True)
    cog = make_cog(root / "tile.tif", VALUES, transform=GRID, crs="EPSG:4326", nodata=-9999.0)
    catalog = make_stac_catalog(
        root,
        [
            StacCollectionSpec(
                id=collection,
                description="test heights",
                items=[StacItemSpec(id="tile", href=cog, datetime=dt.datetime(2020, 1, 1))],
            )
        ],
    )
    if broken_href:
        cog.unlink()
    return catalog


def provider_yaml(
    path: Path,
    *,
    slug: str,
    endpoint: Path | str,
    dataset: str = "height",
    collection: str = "height",
) -> Path:
    """Write a provider YAML file with one dataset."""
    path.write_text(
        f"""slug: {slug}
protocol: stac_static
endpoint: {endpoint}
license: CC-BY-4.0
datasets:
  - name: {dataset}
    collection: {collection}
    variables:
      - name: height
        units: m
        nodata_value: -9999
        valid_range: [0, 1000]
""",
        encoding="utf-8",
    )
    return path
