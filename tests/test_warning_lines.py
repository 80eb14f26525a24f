"""cas_xr's warnings point at the caller's line, and do not tear through the progress bar."""

from __future__ import annotations

import asyncio
import inspect
import json
import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import cas_xr as cas
from cas_xr.errors import BatchFailureWarning, QualityWarning
from cas_xr.sample import sample_catchments_path

FEATURES = json.loads(sample_catchments_path().read_text("utf-8"))["features"]
K06 = next(f["geometry"] for f in FEATURES if f["properties"]["id"] == "K06")  # PARTIAL
NOWHERE = {"type": "Point", "coordinates": [0, 0]}  # no data there: MISSING, failed
ONE = {"geometry": K06, "dataset_ids": ["sample:elevation"]}
BATCH = {"geometries": [K06, NOWHERE], "dataset_ids": ["sample:elevation"]}


def _frame() -> Any:
    import geopandas as gpd
    import shapely

    return gpd.GeoDataFrame(geometry=[shapely.geometry.shape(K06)], crs="EPSG:4326")


def _caught(call: Callable[[], Any]) -> list[warnings.WarningMessage]:
    cas.configure(progress=False, result_cache_ttl_s=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        call()
    return [w for w in caught if issubclass(w.category, QualityWarning | BatchFailureWarning)]


def _here() -> int:
    """The line number of the caller's next line."""
    frame = inspect.currentframe()
    assert frame is not None and frame.f_back is not None
    return frame.f_back.f_lineno + 1


def _assert_at(caught: list[warnings.WarningMessage], line: int, n: int = 1) -> None:
    assert len(caught) == n, [str(w.message) for w in caught]
    assert {(w.filename, w.lineno) for w in caught} == {(__file__, line)}


def test_extract_sync():
    line = _here()
    _assert_at(_caught(lambda: cas.extract_sync(ONE)), line)


def test_batch_extract_sync():
    line = _here()
    _assert_at(_caught(lambda: cas.batch_extract_sync(BATCH)), line)


def test_extract_awaited():
    line = _here() + 2

    async def user_code() -> None:
        await cas.extract(ONE)

    _assert_at(_caught(lambda: asyncio.run(user_code())), line)


def test_batch_extract_awaited():
    line = _here() + 2

    async def user_code() -> None:
        await cas.batch_extract(BATCH)

    _assert_at(_caught(lambda: asyncio.run(user_code())), line)


@pytest.mark.parametrize("entry", ["extract_table", "extract_cube"])
def test_table_and_cube(entry: str):
    function, frame = getattr(cas, entry), _frame()
    line = _here()
    _assert_at(_caught(lambda: function(frame, "sample:elevation")), line)


SCRIPT = """\
import warnings

import dask.array as da
import geopandas as gpd
import numpy as np
import rioxarray  # noqa: F401
import shapely
import xarray as xr

import cas_xr as cas


def noisy(block):
    warnings.warn("a library's warning while the bar shows", RuntimeWarning, stacklevel=1)
    return block


cas.configure(progress=True, result_cache_ttl_s=0)
cells = da.ones((200, 200), chunks=50).map_blocks(noisy, dtype=float)
axis = np.arange(200) * 0.01 + 0.005
cube = xr.DataArray(cells, dims=("y", "x"), coords={"y": axis[::-1], "x": axis})
cube = cube.rio.write_crs("EPSG:4326")
inside = [shapely.box(0.1 * i, 0.1, 0.1 * i + 0.05, 0.15) for i in range(1, 15)]
beyond = [shapely.box(1.95, 1.5, 2.05, 1.6)]  # half outside: PARTIAL
frame = gpd.GeoDataFrame(geometry=inside + beyond, crs="EPSG:4326")
table = cas.extract_table(frame, {"mine": cube})
print(table["mine_quality"].value_counts().to_dict())
"""


def test_warnings_are_written_above_the_bar(tmp_path: Path):
    script = tmp_path / "user_script.py"
    script.write_text(SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert "'good': 14" in done.stdout and "'partial': 1" in done.stdout
    lines = done.stderr.split("\n")
    assert any("cas_xr (threads):" in line for line in lines)  # the bar was shown
    source = SCRIPT.splitlines()
    warn_at = next(i for i, code in enumerate(source, 1) if "warnings.warn(" in code)
    call_at = next(i for i, code in enumerate(source, 1) if "cas.extract_table(" in code)
    library = [line for line in lines if f"{script}:{warn_at}: RuntimeWarning" in line]
    assert library
    for line in library:  # on a line of its own: the bar was cleared first (\r, blanks, \r)
        assert line.split("\r")[-1].startswith(f"{script}:{warn_at}: RuntimeWarning")
    (ours,) = [line for line in lines if "QualityWarning" in line]  # at the user's line
    assert ours.split("\r")[-1].startswith(f"{script}:{call_at}: QualityWarning: 1 of 15")
