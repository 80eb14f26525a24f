"""Packaging and code-quality gates, run as tests so that one `pytest` covers them.

- environment.yml (conda-forge) lists the same dependencies as pyproject.toml;
- `ruff check`, `ruff format --check` and `mypy` pass;
- `mkdocs build --strict` builds the documentation without a warning.

The tools run as subprocesses of the interpreter running the tests (`sys.executable -m
...`), so they are the versions installed with the `dev` and `docs` extras.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]

#: conda-forge packages whose name differs from the PyPI distribution they stand for
CONDA_TO_PYPI: dict[str, str] = {"redis-py": "redis"}
#: PyPI extras that conda-forge ships as a package of its own: (name, extra) -> conda name
EXTRA_PACKAGES = {("mkdocstrings", "python"): "mkdocstrings-python"}
#: conda entries that are not dependencies of cas_xr
CONDA_TOOLING = {"python", "pip"}

_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[([^\]]*)\])?\s*([^;]*)")


def normalise(name: str) -> str:
    """PEP 503-style name: lower case, runs of ``-``, ``_`` and ``.`` become ``-``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def parse(requirement: str) -> tuple[str, list[str], str]:
    """``(normalised name, extras, version specifier)`` of a PEP 508 or conda spec."""
    match = _REQUIREMENT.match(requirement)
    assert match is not None, f"cannot parse requirement {requirement!r}"
    name, extras, spec = match.groups()
    extra_list = [e.strip() for e in (extras or "").split(",") if e.strip()]
    spec = spec.strip().replace(" ", "")
    if spec.startswith("="):  # conda's `python=3.11` style
        spec = spec if spec.startswith("==") else "=" + spec
    return normalise(name), extra_list, spec


def pyproject() -> dict[str, Any]:
    with (ROOT / "pyproject.toml").open("rb") as f:
        return tomllib.load(f)


def pypi_requirements() -> dict[str, str]:
    """Every runtime and optional dependency of pyproject.toml: name -> specifier.

    An extra that conda ships as its own package (``mkdocstrings[python]``) adds that
    package too, with no specifier.
    """
    project = pyproject()["project"]
    specs = list(project["dependencies"])
    for group in project.get("optional-dependencies", {}).values():
        specs += group
    out: dict[str, str] = {}
    for spec in specs:
        name, extras, version = parse(spec)
        if name == "cas-xr":  # an extra depending on another extra of this package
            continue
        out[name] = version
        for extra in extras:
            conda_name = EXTRA_PACKAGES.get((name, extra))
            assert conda_name is not None, (
                f"pyproject.toml asks for {spec!r}: add the conda-forge package that provides "
                f"the [{extra}] extra to EXTRA_PACKAGES in tests/test_packaging.py"
            )
            out.setdefault(normalise(conda_name), "")
    return out


def conda_requirements() -> tuple[dict[str, str], list[str]]:
    """environment.yml's conda dependencies (name -> specifier) and its pip entries."""
    env = yaml.safe_load((ROOT / "environment.yml").read_text(encoding="utf-8"))
    assert "conda-forge" in env.get("channels", []), "environment.yml must use conda-forge"
    conda: dict[str, str] = {}
    pip: list[str] = []
    for entry in env["dependencies"]:
        if isinstance(entry, dict):
            pip += entry.get("pip", [])
            continue
        name, _, version = parse(str(entry))
        if name in CONDA_TOOLING:
            continue
        conda[normalise(CONDA_TO_PYPI.get(name, name))] = version
    return conda, pip


def pip_only(pip_entries: list[str]) -> dict[str, str]:
    """Dependencies that environment.yml installs with pip (local paths and options aside)."""
    out = {}
    for entry in pip_entries:
        entry = entry.strip()
        if entry.startswith("-") or entry.startswith(".") or "/" in entry:
            continue  # `-e .`, options and paths install cas_xr itself
        name, _, version = parse(entry)
        out[name] = version
    return out


def test_environment_lists_the_pyproject_dependencies() -> None:
    conda, pip = conda_requirements()
    listed = {**conda, **pip_only(pip)}
    wanted = pypi_requirements()
    missing = sorted(set(wanted) - set(listed))
    extra = sorted(set(listed) - set(wanted))
    assert not missing and not extra, (
        "environment.yml and pyproject.toml disagree:\n"
        f"  in pyproject.toml only: {missing}\n"
        f"  in environment.yml only: {extra}\n"
        "list every [project].dependencies and optional-dependencies entry in environment.yml "
        "(conda-forge names; map differing names in CONDA_TO_PYPI of tests/test_packaging.py)"
    )


def test_environment_lower_bounds_match() -> None:
    conda, pip = conda_requirements()
    listed = {**conda, **pip_only(pip)}
    wanted = pypi_requirements()
    wrong = [
        f"{name}: pyproject {spec!r}, environment.yml {listed[name]!r}"
        for name, spec in wanted.items()
        if name in listed and spec and listed[name] and spec != listed[name]
    ]
    assert not wrong, "version specifiers differ:\n  " + "\n  ".join(wrong)


def test_environment_installs_the_package_and_python() -> None:
    env = yaml.safe_load((ROOT / "environment.yml").read_text(encoding="utf-8"))
    plain = [str(e) for e in env["dependencies"] if not isinstance(e, dict)]
    assert any(e.replace(" ", "").startswith("python=3.11") for e in plain)
    _, pip = conda_requirements()
    assert "-e ." in pip, "environment.yml should pip-install cas_xr itself (`-e .`)"


def test_requires_python_matches() -> None:
    assert pyproject()["project"]["requires-python"] == ">=3.11"


def test_ci_script_runs_the_readme_test_command() -> None:
    command = 'python -m pip install ".[dev,docs]" && python -m pytest'
    script = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert command in readme
    assert command in script.splitlines(), ".ci/run must run the README test command verbatim"
    assert "set -euo pipefail" in script


# -- tools --------------------------------------------------------------------------------


def run_tool(*args: str, timeout: float = 900) -> None:
    """Run ``python -m <args>`` from the repository root; fail with its output."""
    command = [sys.executable, "-m", *args]
    env = {**os.environ, "NO_COLOR": "1", "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run(
        command,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )
    if proc.returncode != 0:
        output = (proc.stdout + "\n" + proc.stderr).strip()
        pytest.fail(
            f"`{' '.join(['python', '-m', *args])}` failed with exit code {proc.returncode}:\n"
            f"{output}",
            pytrace=False,
        )


def needs(module: str) -> None:
    """Skip when a tool of the dev/docs extras is not installed at all."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed; install the extras: pip install '.[dev,docs]'")


def test_ruff_check() -> None:
    needs("ruff")
    run_tool("ruff", "check", "--no-cache", ".")


def test_ruff_format() -> None:
    needs("ruff")
    run_tool("ruff", "format", "--no-cache", "--check", ".")


@pytest.mark.slow
def test_mypy(tmp_path: Path) -> None:
    needs("mypy")
    run_tool("mypy", "--cache-dir", str(tmp_path / "mypy_cache"))


@pytest.mark.slow
def test_mkdocs_build_strict(tmp_path: Path) -> None:
    needs("mkdocs")
    site = tmp_path / "site"
    run_tool("mkdocs", "build", "--strict", "--site-dir", str(site))
    assert (site / "index.html").is_file()
    assert (site / "api" / "facade" / "index.html").is_file()
    shutil.rmtree(site)
