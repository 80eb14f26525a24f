"""A light ``import cas_xr``: heavy dependencies load on first use, never at import.

Each check runs in a fresh interpreter and reads its ``sys.modules``.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

#: Loaded on first use only: the compiler, GDAL, the cluster, STAC loading, YAML, the
#: service, the catalog, the engine and the readers.
HEAVY = [
    "numba",
    "rasterio",
    "distributed",
    "odc",
    "yaml",
    "exactextract",
    "fastapi",
    "uvicorn",
    "cas_xr.catalog",
    "cas_xr.engine",
    "cas_xr.sources",
]


def _loaded_after(code: str, modules: list[str]) -> list[str]:
    """Which of ``modules`` (or their submodules) a fresh interpreter holds after ``code``."""
    script = (
        f"import json, sys\n{code}\n"
        f"print(json.dumps([m for m in {modules!r} if m in sys.modules or any("
        "k.startswith(m + '.') for k in sys.modules)]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    return list(json.loads(out.stdout.strip().splitlines()[-1]))


def test_import_cas_xr_loads_nothing_heavy():
    assert _loaded_after("import cas_xr", HEAVY) == []


def test_public_names_stay_light_until_called():
    code = "import cas_xr as cas\ncas.AttributeRequest, cas.Settings, cas.get_settings()"
    assert _loaded_after(code, ["xarray", *HEAVY]) == []


def test_sources_and_front_ends_load_their_modules_on_first_use():
    stac = ["pystac", "pystac_client", "cas_xr.sources._stac_static", "cas_xr.sources._wcs"]
    raster = ["cas_xr.frontends._raster", "cas_xr.frontends._health", "cas_xr.mosaic"]
    assert _loaded_after("import cas_xr.sources, cas_xr.frontends", stac + raster) == []
    code = "from cas_xr.sources import LocalSource\nfrom cas_xr.frontends import extract_table"
    assert _loaded_after(code, stac + raster) == []
    assert _loaded_after("from cas_xr.sources import WcsSource", stac) == ["cas_xr.sources._wcs"]
    import cas_xr.sources

    assert "StaticStacSource" in dir(cas_xr.sources)
    with pytest.raises(AttributeError, match="no attribute 'Nothing'"):
        cas_xr.sources.Nothing  # noqa: B018


@pytest.mark.parametrize(
    "code",
    [
        "import cas_xr.client",
        "from cas_xr.cli import main\nmain(['--help'])",
        "from cas_xr.cli import main\nmain(['extract', '--help'])",
    ],
    ids=["client", "cli-help", "cli-extract-help"],
)
def test_client_and_cli_help_do_not_load_xarray(code: str):
    assert _loaded_after(code, ["xarray", *HEAVY]) == []


@pytest.mark.parametrize(
    "code",
    [
        "import cas_xr\nimport xarray as xr",
        "import xarray as xr\nimport cas_xr",
        "import cas_xr.zonal\nimport xarray as xr",
        "import cas_xr.client\nimport xarray as xr",
    ],
    ids=["cas_xr-first", "xarray-first", "zonal-first", "client-first"],
)
def test_the_accessor_is_registered_whichever_comes_first(code: str):
    script = (
        f"{code}\nda = xr.DataArray([[1.0]], dims=('y', 'x'))\n"
        "print(callable(da.cas.zonal), da.cas.zonal.__name__, callable(da.cas.clip))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.split() == ["True", "zonal", "True"]


def test_the_accessor_keeps_the_functions_signature_after_the_data():
    import inspect

    import xarray as xr

    import cas_xr

    da = xr.DataArray([[1.0]], dims=("y", "x"))
    full = list(inspect.signature(cas_xr.zonal.zonal).parameters)
    assert list(inspect.signature(da.cas.zonal).parameters) == full[1:]
    assert da.cas.zonal.__doc__ == cas_xr.zonal.zonal.__doc__
