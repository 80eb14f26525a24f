"""Every front end is a view of one pipeline: the same numbers, and one result cache.

The same geometries go through ``extract``, ``batch_extract``, ``extract_table``, the
``.cas`` accessor, the CLI and the service under uvicorn. After the first front end has
computed them, every other one (in this process or another, through the persistent
cache) serves them from the cache: counted, not timed. The accessor computes on the cube
it is given and is uncached, so it takes part in the numbers only.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import geopandas as gpd
import httpx
import numpy as np
import pytest

import cas_xr as cas
from tests.test_service_distributed import run_job
from tests.test_service_support import live_service

SAMPLE = Path(cas.__file__).parent / "sample" / "data" / "catchments.geojson"
IDS = ["sample:elevation", "sample:clay_0-5cm"]


@pytest.fixture
def frame() -> gpd.GeoDataFrame:
    catchments = gpd.read_file(SAMPLE)
    return catchments[catchments["id"] != "K06"].reset_index(drop=True)  # K06: PARTIAL


def _values(responses: list[Any]) -> np.ndarray:
    return np.array([[r.value for r in resp.results] for resp in responses], dtype=float)


def test_every_front_end_gives_the_same_numbers_from_one_cache(
    frame: gpd.GeoDataFrame, tmp_path: Path
):
    cache = tmp_path / "cache"
    cas.configure(result_cache_dir=cache, progress=False)
    geometries = [g.__geo_interface__ for g in frame.geometry]
    n = len(geometries)

    # 1. extract, one geometry at a time: computed
    single = [cas.extract_sync({"geometry": g, "dataset_ids": IDS}) for g in geometries]
    assert not any(r.cached for resp in single for r in resp.results)
    expected = _values(single)
    assert np.isfinite(expected).all()

    # 2. batch_extract: every result from the cache, the same numbers and geometry keys
    batch = cas.batch_extract_sync({"geometries": geometries, "dataset_ids": IDS})
    assert all(r.cached for resp in batch.responses for r in resp.results)
    # a cached result reports this call's time, and the original computation's apart
    for resp, first in zip(batch.responses, single, strict=True):
        for cached, computed in zip(resp.results, first.results, strict=True):
            assert "computed_elapsed_ms" not in computed.provenance
            assert 0 < cached.provenance["computed_elapsed_ms"] <= first.elapsed_ms
            assert cached.elapsed_ms <= batch.elapsed_ms
    np.testing.assert_array_equal(_values(batch.responses), expected)
    assert [r.geometry_hash for r in batch.responses] == [r.geometry_hash for r in single]

    # 3. extract_table: all cached, same numbers
    table = cas.extract_table(frame, IDS)
    assert table.attrs["cas_xr"]["summary"]["cached"] == n * len(IDS)
    assert table.attrs["cas_xr"]["summary"]["computed"] == 0
    columns = [f"{d}_mean" for d in IDS]
    np.testing.assert_array_equal(table[columns].to_numpy(), expected)

    # 4. the accessor (uncached): the same numbers from the same cells
    for k, dataset_id in enumerate(IDS):
        cube = cas.open_dataset(dataset_id, bbox=tuple(frame.total_bounds))
        zonal = cube.cas.zonal(frame.geometry, ["mean"])
        got = zonal[cube.name].sel(zonal_statistics="mean").to_numpy()
        np.testing.assert_allclose(got, expected[:, k], rtol=1e-12)

    # 5. the CLI (another process, the persistent cache): cached, same numbers
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAS_")}
    env.update(CAS_RESULT_CACHE_DIR=str(cache), CAS_PROGRESS="false")
    source = tmp_path / "catchments.geojson"
    frame.to_file(source, driver="GeoJSON")
    out = tmp_path / "out.parquet"
    datasets = [arg for d in IDS for arg in ("-d", d)]
    command = [sys.executable, "-m", "cas_xr", "extract", str(source), *datasets, "-o", str(out)]
    subprocess.run(command, env=env, check=True, capture_output=True, timeout=300)
    cli = gpd.read_parquet(out)
    np.testing.assert_array_equal(cli[columns].to_numpy(), expected)
    assert cli.attrs["cas_xr"]["summary"]["cached"] == n * len(IDS)

    # 6. the service under uvicorn (another process, the persistent cache)
    (tmp_path / "service").mkdir()
    with (
        live_service(tmp_path / "service", env={"CAS_RESULT_CACHE_DIR": str(cache)}) as service,
        httpx.Client(base_url=service.url, timeout=60) as http,
    ):
        answer = run_job(http, "batch-extract", {"geometries": geometries, "dataset_ids": IDS})
    results = [resp["results"] for resp in answer["responses"]]
    assert all(r["cached"] for rs in results for r in rs)
    served = np.array([[r["value"] for r in rs] for rs in results], dtype=float)
    np.testing.assert_array_equal(served, expected)
    assert json.dumps(served.tolist()) == json.dumps(expected.tolist())
