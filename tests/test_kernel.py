"""The compiled kernel: few specialisations (dtype families), compiled once, announced.

The statistics themselves are checked against exactextract in test_zonal*.py; here: every
dtype of a family gives the same numbers, and a first run in a fresh numba cache compiles
one kernel, says so once on stderr and streams the demo; the next run compiles nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rioxarray  # noqa: F401  (the .rio accessor)
import shapely
import xarray as xr

import cas_xr
from cas_xr.errors import InvalidArgumentError
from cas_xr.zonal import _kernel
from cas_xr.zonal._announce import ANNOUNCEMENT
from cas_xr.zonal._kernel import family_of

SCRIPT = Path(sys.executable).with_name("cas-xr")


@pytest.mark.parametrize(
    ("dtypes", "family"),
    [
        (["bool", "int8", "uint8", "int16", "uint16", "float16", "float32"], "float32"),
        (["int32", "uint32", "float64"], "float64"),
        (["int64"], "int64"),
        (["uint64"], "uint64"),
    ],
)
def test_each_dtype_has_a_family_that_holds_its_values_exactly(dtypes: list[str], family: str):
    for name in dtypes:
        dtype = np.dtype(name)
        assert family_of(dtype) == family
        if dtype.kind in "iu":
            info = np.iinfo(dtype)
            if dtype.itemsize <= 2:
                values = np.arange(info.min, info.max + 1, dtype=dtype)
            else:
                edges = [info.min, info.min + 1, 0, 1, info.max - 1, info.max]
                values = np.array(edges, dtype=dtype)
            cast = values.astype(family)
            assert np.array_equal(cast.astype(dtype), values)
            assert np.unique(cast).size == np.unique(values).size  # no two values merge


def test_values_that_are_not_real_numbers_are_refused():
    with pytest.raises(InvalidArgumentError, match="real numbers.*complex128") as info:
        family_of(np.dtype("complex128"))
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("n", [0, 1, 2, 15, 16, 17, 33, 1000, 4099])
def test_the_kernels_pooling_is_numpys_unique_with_summed_weights(n: int):
    from cas_xr.zonal._compiled import _pooled

    rng = np.random.default_rng(n)
    for x in (
        rng.integers(0, 5, n).astype(float),  # many ties
        rng.normal(size=n),
        np.sort(rng.normal(size=n)).copy(),
        np.sort(rng.normal(size=n))[::-1].copy(),
        np.ones(n),
        np.r_[np.zeros(n // 2), -np.zeros(n - n // 2)],  # -0.0 == 0.0: one value
    ):
        weights = rng.uniform(0.1, 1, size=n)
        padded = np.r_[x, rng.normal(size=3)]  # only x[:n] is pooled
        values, pooled = _pooled(padded, np.r_[weights, 1.0, 1.0, 1.0], n)
        expected, inverse = np.unique(x, return_inverse=True)
        np.testing.assert_array_equal(values, expected)
        np.testing.assert_allclose(pooled, np.bincount(inverse, weights), rtol=1e-12)


def _cube(values: np.ndarray, nodata: object) -> xr.DataArray:
    da = xr.DataArray(
        values, dims=("y", "x"), coords={"y": np.arange(9.5, 0, -1), "x": np.arange(0.5, 10)}
    )
    return da.rio.write_crs("EPSG:32633").rio.write_nodata(nodata)


@pytest.mark.parametrize(
    "name", ["uint8", "int16", "uint16", "int32", "float32", "float64", "int64"]
)
def test_every_dtype_gives_the_numbers_of_float64(name: str):
    rng = np.random.default_rng(7)
    codes = rng.integers(0, 40, size=(10, 10))
    polygons = gpd.GeoSeries(
        [shapely.box(0.3, 0.6, 7.2, 8.9), shapely.box(2.5, 2.5, 9.9, 4.1).buffer(0.7)],
        crs="EPSG:32633",
    )
    stats = ["mean", "std", "min", "max", "median", "p10", "majority", "minority", "unique"]
    reference = cas_xr.zonal(_cube(codes.astype("float64"), 7.0), polygons, stats).compute()
    result = cas_xr.zonal(_cube(codes.astype(name), 7), polygons, stats).compute()
    np.testing.assert_array_equal(result["value"].values, reference["value"].values)
    np.testing.assert_array_equal(result["pixel_count"].values, reference["pixel_count"].values)


# -- a first run in a fresh numba cache ----------------------------------------------------


def _env(cache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CAS_", "NUMBA_"))}
    return {**env, "NUMBA_CACHE_DIR": str(cache), "CAS_PROGRESS": "true"}


@pytest.fixture(scope="module")
def first_demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """``cas-xr demo`` with an empty numba cache: stdout and stderr as one stream."""
    assert SCRIPT.exists(), f"{SCRIPT} not installed; run `pip install -e .`"
    cache = tmp_path_factory.mktemp("numba_cache")
    done = subprocess.run(
        [str(SCRIPT), "demo"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env=_env(cache), timeout=300, check=False, cwd=cache,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout
    return done.stdout, cache


def test_first_demo_prints_its_header_then_announces_compilation_then_its_rows(
    first_demo: tuple[str, Path],
):
    output, _ = first_demo
    lines = output.replace("\r", "\n").splitlines()
    title = next(i for i, line in enumerate(lines) if line.startswith("cas_xr demo:"))
    header = next(i for i, line in enumerate(lines) if line.startswith("catchment"))
    announced = [i for i, line in enumerate(lines) if line.startswith(ANNOUNCEMENT)]
    rows = [i for i, line in enumerate(lines) if line.startswith(("K0", "U0"))]
    assert title == 0 and header < announced[0] < rows[0], output
    # tqdm's bar of the compiled functions, out of those expected: all of them
    expected = _kernel.FIRST_KERNEL_FUNCTIONS
    assert f"{expected}/{expected} [" in lines[announced[-1]], output
    assert len(rows) == 35, output


def test_the_first_demo_compiles_the_one_family_it_prepares(first_demo: tuple[str, Path]):
    # the demo starts compiling its family (cli._DEMO_FAMILY) before it needs it: a
    # second kernel would mean that the sample rasters need another family than it says
    _, cache = first_demo
    assert len(list(cache.rglob("_compiled._zonal_kernel-*.nbc"))) == 1


def test_a_prepared_kernel_is_the_one_later_calls_use():
    _kernel.prepare("float64").join(timeout=300)
    prepared = _kernel._kernels["float64"]
    assert _kernel._kernel("float64") is prepared


_ZONAL = """
import json, logging, sys
import geopandas as gpd, numpy as np, rioxarray, shapely, xarray as xr
import cas_xr
from cas_xr.zonal import _kernel

logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
polygon = gpd.GeoSeries([shapely.box(0.3, 0.6, 7.2, 8.9)], crs="EPSG:32633")
stats = sys.argv[1].split(",")
for name in sys.argv[2:]:
    da = xr.DataArray(np.ones((10, 10), dtype=name), dims=("y", "x"),
                      coords={"y": np.arange(9.5, 0, -1), "x": np.arange(0.5, 10)})
    cas_xr.zonal(da.rio.write_crs("EPSG:32633"), polygon, stats).compute()
print(json.dumps({f: len(k.signatures) for f, k in _kernel._kernels.items()}))
"""


def _zonal_in_fresh_process(
    cache: Path, *dtypes: str, stats: str = "mean,majority"
) -> tuple[dict[str, int], str]:
    # run away from the checkout, so that `python -c` imports the cas_xr the demo ran (the
    # installed one): numba's cache is keyed by the source file's path
    done = subprocess.run(
        [sys.executable, "-c", _ZONAL, stats, *dtypes], capture_output=True, text=True,
        env={**_env(cache), "CAS_PROGRESS": "false"}, timeout=300, check=True, cwd=cache,
    )  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


def test_after_a_first_run_the_kernels_come_from_the_cache_one_per_family(
    first_demo: tuple[str, Path],
):
    _, cache = first_demo
    # the demo's uint8, int16 and float32 rasters share one kernel, now in numba's cache
    kernels, stderr = _zonal_in_fresh_process(cache, "uint8", "int16", "float32", "bool")
    assert kernels == {"float32": 1}
    assert ANNOUNCEMENT not in stderr, stderr
    # a new family compiles its kernel once, said once (a log line; no bar: progress off)
    kernels, stderr = _zonal_in_fresh_process(cache, "int32", "float64", "uint32")
    assert kernels == {"float64": 1}
    assert stderr.count(ANNOUNCEMENT) == 1, stderr
    assert "statistics kernels ready" in stderr, stderr


def test_the_statistics_the_demo_does_not_ask_for_compile_once_when_first_asked(
    first_demo: tuple[str, Path],
):
    # quantiles, cell centres and weighted statistics are a function of their own,
    # compiled (announced) by the first request that asks for one, then cached
    _, cache = first_demo
    assert not list(cache.rglob("_compiled._more_statistics-*.nbc"))
    stats = "mean,median,min_center_x"
    kernels, stderr = _zonal_in_fresh_process(cache, "float32", stats=stats)
    assert kernels == {"float32": 1}
    assert stderr.count(ANNOUNCEMENT) == 1, stderr
    assert f"({_kernel.MORE_FUNCTIONS} compiled in" in stderr, stderr
    kernels, stderr = _zonal_in_fresh_process(cache, "float32", stats=stats)
    assert ANNOUNCEMENT not in stderr, stderr
