"""The modis_13q1 definition read offline: a real STAC API (rustac) over synthetic MODIS tiles.

The items mirror the published ones (``tests/fixtures/upstream/``): int16 COGs in the MODIS
sinusoidal projection on its 231.66 m lattice, asset ``250m_16_days_NDVI`` whose
``raster:bands`` are the collection's (int16, scale 0.0001, no nodata), no ``datetime``
but the composite's ``start_datetime``/``end_datetime``, ``proj:wkt2`` and no EPSG code;
Terra composites start on the 1st of each month of 2021, Aqua ones 8 days later. Nothing
in the files or the items names the fill value: only the definition's nodata (-3000) can
mask it. A catchment in lon/lat whose outline is a whole-cell rectangle of the sinusoidal
grid (densified, so it stays one after projection) across the seam of two tiles gives
per-step means that are plain means of the designed cells, and the camels set's
``ndvi_max``/``ndvi_diff`` are checked against the monthly means of those.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import pytest
import shapely
import yaml
from affine import Affine

import cas_xr as cas
from cas_xr.attributes import get_attribute_set
from cas_xr.errors import MissingDependencyError
from cas_xr.testing import (
    StacApiServerError,
    StacCollectionSpec,
    StacItemSpec,
    make_cog,
    make_stac_catalog,
    read_static_collection,
    serve_folder,
    serve_stac_api,
)

UPSTREAM = Path(__file__).parent / "fixtures" / "upstream"
ITEM = json.loads(
    (UPSTREAM / "MOD13Q1.A2022033.h09v05.061.2022051005101.json").read_text(encoding="utf-8")
)
BUILTIN = Path(cas.__file__).parent / "catalog" / "providers" / "modis_13q1.yaml"
ASSET = "250m_16_days_NDVI"
WKT = ITEM["properties"]["proj:wkt2"]
CELL = ITEM["properties"]["proj:transform"][0]  # 231.656... m, the MODIS 250 m lattice
LATTICE_X0, LATTICE_Y0 = (
    ITEM["properties"]["proj:transform"][2],
    ITEM["properties"]["proj:transform"][5],
)
FILL = -3000
N = 40  # cells a side of a synthetic tile
#: the rectangle of whole cells (rows and columns of the two-tile mosaic) the catchment is
RECT = (slice(12, 30), slice(25, 58))


def _lattice_origin() -> tuple[float, float]:
    """A corner of the real lattice near Manhattan, Kansas (-96.6, 39.1)."""
    x, y = pyproj.Transformer.from_crs(4326, WKT, always_xy=True).transform(-96.6, 39.1)
    col, row = np.floor((x - LATTICE_X0) / CELL), np.floor((LATTICE_Y0 - y) / CELL)
    return LATTICE_X0 + col * CELL, LATTICE_Y0 - row * CELL


def _steps() -> list[tuple[str, dt.datetime, int]]:
    """(platform, composite start, base value) of each step: Terra on the 1st, Aqua on the 9th."""
    out = []
    for month in range(1, 13):
        base = 2000 + 500 * (month - 1 if month <= 7 else 13 - month)  # a summer peak
        out.append(("terra", dt.datetime(2021, month, 1), base))
        out.append(("aqua", dt.datetime(2021, month, 9), base + 120))
    return out


def _mosaic(base: int, step: int) -> np.ndarray:
    """The designed int16 values of both tiles side by side; fill in two places."""
    rows, cols = np.mgrid[0:N, 0 : 2 * N]
    values = (base + 10 * rows + cols).astype("int16")
    values[14:19, 30:36] = FILL  # a cloud-free composite was never made here
    if step == 5:
        values[:, N:] = FILL  # the second tile missing from one composite
    return values


@dataclass(frozen=True)
class Modis:
    provider: Path
    origin: tuple[float, float]


def _serve(stack: ExitStack, collection: dict[str, Any], items: list[dict[str, Any]]) -> str:
    try:
        return stack.enter_context(serve_stac_api(collection, items))
    except (MissingDependencyError, StacApiServerError) as err:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the STAC API server could not be started: {err}")
        pytest.skip(f"the STAC API server could not be started: {err}")


def _like_the_published_item(item: dict[str, Any]) -> dict[str, Any]:
    """Give a generated item the published item's shape (datetime, projection, bands)."""
    props = item["properties"]
    props["datetime"] = None
    props["proj:epsg"] = None
    props.pop("proj:code", None)
    props["proj:wkt2"] = WKT
    item["assets"][ASSET]["raster:bands"] = ITEM["assets"][ASSET]["raster:bands"]
    return item


@pytest.fixture(scope="module")
def modis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Modis]:
    root = tmp_path_factory.mktemp("modis")
    x0, y0 = _lattice_origin()
    specs = []
    for k, (platform, start, base) in enumerate(_steps()):
        mosaic = _mosaic(base, k)
        for h in range(2):
            transform = Affine(CELL, 0, x0 + h * N * CELL, 0, -CELL, y0)
            product = "MOD13Q1" if platform == "terra" else "MYD13Q1"
            name = f"{product}.A2021{start.timetuple().tm_yday:03d}.h{h}"
            path = make_cog(
                root / f"{name}.tif", mosaic[:, h * N : (h + 1) * N], transform=transform, crs=WKT
            )  # no nodata in the file, as published
            end = start + dt.timedelta(days=15, hours=23, minutes=59, seconds=59)
            spec = StacItemSpec(
                id=name, href=path, datetime=None, start_datetime=start, end_datetime=end,
                asset_key=ASSET, properties={"platform": platform},
            )  # fmt: skip
            specs.append(spec)
    catalog = make_stac_catalog(root, [StacCollectionSpec("modis-13Q1-061", "MODIS", specs)])
    definition = yaml.safe_load(BUILTIN.read_text(encoding="utf-8"))
    with ExitStack() as stack:
        files = stack.enter_context(serve_folder(root))
        collection, items = read_static_collection(catalog, "modis-13Q1-061", base_url=files)
        api = _serve(stack, collection, [_like_the_published_item(i) for i in items])
        definition.update(slug="modis_local", endpoint=api, options={})
        definition.pop("health")
        provider = root / "modis_local.yaml"
        provider.write_text(yaml.safe_dump(definition), encoding="utf-8")
        yield Modis(provider, (x0, y0))


def _catchment(origin: tuple[float, float]) -> gpd.GeoDataFrame:
    """RECT's cells as a lon/lat polygon, densified so that projected it is RECT again."""
    x0, y0 = origin
    rows, cols = RECT
    box = shapely.box(
        x0 + cols.start * CELL, y0 - rows.stop * CELL, x0 + cols.stop * CELL, y0 - rows.start * CELL
    )
    dense = shapely.segmentize(box, CELL / 8)
    to_lonlat = pyproj.Transformer.from_crs(WKT, 4326, always_xy=True)
    return gpd.GeoDataFrame(
        {"id": ["seam"]}, geometry=[shapely.ops.transform(to_lonlat.transform, dense)], crs=4326
    ).set_index("id")


def _expected_means() -> pd.Series:
    """Each step's mean of RECT's cells that are not fill, in stored units (x 10^4)."""
    out = {}
    for k, (_, start, base) in enumerate(_steps()):
        cells = _mosaic(base, k)[RECT].astype(float)
        out[pd.Timestamp(start)] = cells[cells != FILL].mean()
    return pd.Series(out).sort_index()


@pytest.fixture
def configured(modis: Modis) -> Iterator[Modis]:
    cas.configure(progress=False, provider_files=[modis.provider])
    try:
        yield modis
    finally:
        cas.configure(provider_files=[])


def test_the_catchment_is_the_rectangle_of_cells(modis: Modis) -> None:
    to_sinu = pyproj.Transformer.from_crs(4326, WKT, always_xy=True)
    back = shapely.ops.transform(to_sinu.transform, _catchment(modis.origin).geometry.iloc[0])
    rows, cols = RECT
    x0, y0 = modis.origin
    cells = shapely.box(
        x0 + cols.start * CELL, y0 - rows.stop * CELL, x0 + cols.stop * CELL, y0 - rows.start * CELL
    )
    assert back.symmetric_difference(cells).area < 1e-6 * cells.area
    assert cols.start < N < cols.stop  # across the seam of the two tiles


def test_each_composite_is_read_with_the_fill_masked(configured: Modis) -> None:
    frame = _catchment(configured.origin)
    with pytest.warns(cas.errors.QualityWarning):  # the step without the second tile
        table = cas.extract_table(
            frame, ["modis_local:ndvi"], time_range=("2021-01-01", "2021-12-31")
        )
    means = table["modis_local:ndvi_mean"]
    times = pd.DatetimeIndex(table.index.get_level_values("time"))
    expected = _expected_means()
    assert list(times) == list(expected.index)  # the composites' starts, Terra and Aqua
    np.testing.assert_allclose(means.to_numpy(), expected.to_numpy(), rtol=1e-9)
    assert (means > 1000).all()  # a -3000 left in would pull a mean far down
    quality = table["modis_local:ndvi_quality"].astype(str).to_numpy()
    assert quality[5] == "partial" and set(np.delete(quality, 5)) == {"good"}


def test_camels_ndvi_max_and_diff_of_the_monthly_means(configured: Modis) -> None:
    aset = get_attribute_set("camels").model_dump(mode="json")
    aset["attributes"] = [
        {**a, "dataset": "modis_local:ndvi", "time_range": {"start": "2021-01-01T00:00:00Z",
                                                            "end": "2021-12-31T23:59:59Z"}}
        for a in aset["attributes"] if a["name"] in ("ndvi_max", "ndvi_diff")
    ]  # fmt: skip
    with pytest.warns(cas.errors.QualityWarning):
        table = cas.extract_attributes(_catchment(configured.origin), aset)
    expected = _expected_means()
    monthly = expected.groupby(expected.index.month).mean() * 0.0001
    row = table.iloc[0]
    assert row["ndvi_max"] == pytest.approx(monthly.max(), rel=1e-9)
    assert row["ndvi_diff"] == pytest.approx(monthly.max() - monthly.min(), rel=1e-9)
    assert table.attrs["cas_xr"]["units"] == {"ndvi_max": "1", "ndvi_diff": "1"}
    assert str(row["ndvi_max_quality"]) == "partial"  # the worst step with a value
