"""The layout: who imports whom, one pipeline, and a light ``import cas_xr``.

Layers (docs/architecture.md): contract (models, errors, config) <- computation (zonal,
mosaic) and data (sources <- catalog) <- engine <- front ends <- service, client, CLI.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import cas_xr as cas

PACKAGE = Path(cas.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> Iterator[str]:
    """Every cas_xr module ``path`` imports, at any depth (functions, TYPE_CHECKING)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = _module_name(path).rsplit(".", 0 if path.name == "__init__.py" else 1)[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name.startswith("cas_xr"))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            if base.startswith("cas_xr"):
                yield base
                yield from (f"{base}.{a.name}" for a in node.names)


def _modules(*packages: str) -> list[Path]:
    out: list[Path] = []
    for name in packages:
        target = PACKAGE.joinpath(*name.split(".")[1:])
        out += sorted(target.rglob("*.py")) if target.is_dir() else [target.with_suffix(".py")]
    return out


def _under(module: str, *packages: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


LAYERS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # name: (its packages, the packages it must never import)
    "contract": (
        ("cas_xr.models", "cas_xr.errors", "cas_xr.config"),
        (
            "cas_xr.zonal", "cas_xr.mosaic", "cas_xr.sources", "cas_xr.catalog",
            "cas_xr.engine", "cas_xr.frontends", "cas_xr.service", "cas_xr.client",
            "cas_xr.cli", "cas_xr.accessor", "cas_xr.ogc",
        ),
    ),
    "computation": (
        ("cas_xr.zonal", "cas_xr.mosaic"),
        (
            "cas_xr.sources", "cas_xr.catalog", "cas_xr.engine", "cas_xr.frontends",
            "cas_xr.service", "cas_xr.client", "cas_xr.cli",
        ),
    ),
    "sources": (
        ("cas_xr.sources",),
        ("cas_xr.catalog", "cas_xr.engine", "cas_xr.frontends", "cas_xr.service"),
    ),
    "catalog": (("cas_xr.catalog",), ("cas_xr.engine", "cas_xr.frontends", "cas_xr.service")),
    # what the catalog builds for derived datasets, and the indices: never the engine
    "attributes (data side)": (
        (
            "cas_xr.attributes._terrain", "cas_xr.attributes._derived",
            "cas_xr.attributes._climate",
        ),
        ("cas_xr.catalog", "cas_xr.engine", "cas_xr.frontends", "cas_xr.service", "cas_xr.cli"),
    ),
    "engine": (("cas_xr.engine",), ("cas_xr.frontends", "cas_xr.service", "cas_xr.cli")),
    "front ends": (("cas_xr.frontends",), ("cas_xr.service", "cas_xr.client", "cas_xr.cli")),
    "accessor": (
        ("cas_xr.accessor",),
        ("cas_xr.engine", "cas_xr.frontends", "cas_xr.catalog", "cas_xr.sources"),
    ),
    "client": (
        ("cas_xr.client",),
        (
            "cas_xr.engine", "cas_xr.frontends", "cas_xr.catalog", "cas_xr.sources",
            "cas_xr.zonal", "cas_xr.mosaic", "cas_xr.service", "cas_xr.accessor",
        ),
    ),
}  # fmt: skip


@pytest.mark.parametrize("layer", list(LAYERS))
def test_a_layer_never_imports_a_layer_above_it(layer: str):
    packages, forbidden = LAYERS[layer]
    wrong = [
        f"{_module_name(path)} imports {name}"
        for path in _modules(*packages)
        for name in _imports(path)
        if _under(name, *forbidden)
    ]
    assert not wrong, wrong


def test_nothing_private_lies_loose_at_the_package_root():
    loose = [p.name for p in PACKAGE.glob("_*.py") if p.name not in {"__init__.py", "__main__.py"}]
    assert loose == ["_version.py"]


def _calls_of(name: str) -> dict[str, int]:
    """Modules of cas_xr (but the function's own package) that call ``name(...)``."""
    out: dict[str, int] = {}
    for path in PACKAGE.rglob("*.py"):
        count = sum(
            1
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(node, ast.Call)
            and (
                (isinstance(node.func, ast.Name) and node.func.id == name)
                or (isinstance(node.func, ast.Attribute) and node.func.attr == name)
            )
        )
        if count:
            out[_module_name(path)] = count
    return out


def test_zonal_is_called_from_one_engine_module():
    """The accessor binds the function; every entry point reaches it through the engine.

    The engine calls ``zonal_run``: ``zonal`` without labelling the cube.
    """
    calls = {**_calls_of("zonal"), **_calls_of("zonal_run")}
    callers = {m for m in calls if not m.startswith("cas_xr.zonal")}
    assert callers == {"cas_xr.engine._units"}


def test_the_old_twins_are_gone():
    names = {p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py")}
    assert not {n for n in names if n.endswith(("_aggregate.py", "_tables.py"))}, names
    assert not (PACKAGE / "batch").exists() and not (PACKAGE / "engine.py").exists()
    # one geometry key, one table builder, one cache, one warning summary
    assert _calls_of("geometry_keys").keys() <= {"cas_xr.models", "cas_xr.engine._plan"}
    assert set(_calls_of("table_of")) == {"cas_xr.frontends._cubes"}
    assert set(_calls_of("SettingsBoundCache")) >= {"cas_xr.engine._run"}
    assert "cas_xr.frontends._responses" not in _calls_of("SettingsBoundCache")
    assert set(_calls_of("warn_summary")) == {
        "cas_xr.frontends._cubes",
        "cas_xr.frontends._responses",
    }
    source = (PACKAGE / "models.py").read_text(encoding="utf-8")
    assert "sha256" not in source
    # one latest-step rule (temporal datasets without a time range), for zonal and raster
    assert set(_calls_of("latest_step")) == {
        "cas_xr.engine._targets",
        "cas_xr.frontends._raster",
    }
    taking_last = {
        p.relative_to(PACKAGE).as_posix()
        for p in PACKAGE.rglob("*.py")
        if "time=[-1]" in p.read_text(encoding="utf-8")
    }
    assert taking_last == {"sources/_footprints.py"}


def test_one_plan_and_one_cube_per_extract_sync(monkeypatch: pytest.MonkeyPatch):
    from cas_xr.engine import _compute
    from cas_xr.frontends import _responses
    from cas_xr.zonal import _api

    counts = {"plan": 0, "cube": 0, "zonal": 0}

    def counted(key: str, function: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            counts[key] += 1
            return function(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(_responses, "make_plan", counted("plan", _responses.make_plan))
    monkeypatch.setattr(_compute, "assemble", counted("cube", _compute.assemble))
    monkeypatch.setattr(_api, "zonal_run", counted("zonal", _api.zonal_run))
    cas.configure(result_cache_ttl_s=0)
    request = {
        "geometry": {"type": "Point", "coordinates": [-96.5, 39.0]},
        "dataset_ids": ["sample:elevation", "sample:clay_0-5cm"],
    }
    cas.extract_sync(request)
    # two datasets on two grids: one zonal computation each, one plan and one cube in all
    assert counts == {"plan": 1, "cube": 1, "zonal": 2}


def _fresh(code: str) -> str:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    ).stdout.strip()


def test_import_cas_xr_zonal_loads_no_catalog_engine_or_yaml():
    loaded = _fresh(
        "import sys, cas_xr.zonal as z, xarray as xr\n"
        "print(callable(z), callable(z.zonal), hasattr(xr.DataArray, 'cas'),"
        " sorted(m for m in ('cas_xr.catalog', 'cas_xr.engine', 'cas_xr.frontends', 'yaml',"
        " 'cas_xr.sources') if m in sys.modules))"
    )
    assert loaded == "True True True []"


def test_cas_zonal_is_the_callable_module():
    import cas_xr.zonal as module

    assert cas.zonal is module and callable(cas.zonal) and "zonal" in cas.__all__
    assert cas.zonal.zonal is not module and module.__signature__.parameters  # type: ignore[attr-defined]
    assert all(hasattr(cas, name) for name in cas.__all__)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        cas.nope  # noqa: B018


def test_the_architecture_page_names_modules_that_exist():
    import re

    page = (PACKAGE.parent / "docs" / "architecture.md").read_text(encoding="utf-8")
    paths = set(re.findall(r"`((?:engine|frontends)/_\w+\.py)`", page))
    assert len(paths) >= 8
    assert [p for p in sorted(paths) if not (PACKAGE / p).exists()] == []
    steps = re.findall(r"^(\d+)\. ", page.split("step by step", 1)[1], flags=re.MULTILINE)
    assert 0 < len(steps) <= 8  # the walk of one extract_sync call
