"""numba's on-disk cache of the kernel is invalidated when any kernel module changes.

numba stamps a cached function with its own source file only; the kernel (in
``_compiled``) calls the coverage code of ``_coverage``, and both use the constants of
``_codes`` (compiled in), so without ``_jit``'s stamp a changed ``_coverage.py`` or
``_codes.py`` would leave stale code in the cache, loaded by the next process: wrong
numbers without an error.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import cas_xr
from cas_xr.zonal._jit import KERNEL_MODULES

ZONAL = Path(cas_xr.__file__).parent / "zonal"

_RUN = """
import json
import numpy as np
from cas_xr.zonal._coverage import cell_weights

buf = np.zeros((4, 4))
square = np.array([[0.25, 0.25], [2.25, 0.25], [2.25, 2.25], [0.25, 2.25], [0.25, 0.25]])
cell_weights(buf, 0, 0, square, np.array([0, 5]), 0, 1, 0, 1e-9)  # mode 0: MODE_EXACT
print(json.dumps({"corner": buf[0, 0], "loaded": sum(cell_weights.stats.cache_hits.values())}))
"""
#: Modes 0 and 1 swapped: mode 0 becomes centre-in-polygon.
_MODES = "MODE_EXACT, MODE_CENTER, MODE_ALL_TOUCHED = range(3)"
_SWAPPED = "MODE_CENTER, MODE_EXACT, MODE_ALL_TOUCHED = range(3)"


def _imports_of(module: str) -> set[str]:
    """What the ``cas_xr.zonal`` module ``module`` imports: modules and ``module.name``.

    ``name.attribute`` expressions count too, as ``numba.njit`` after ``import numba``.
    """
    tree = ast.parse((ZONAL / f"{module}.py").read_text("utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            found.add(f"{node.value.id}.{node.attr}")
    return found


def test_the_stamp_covers_every_module_that_compiled_code_depends_on():
    modules = {path.stem: _imports_of(path.stem) for path in ZONAL.glob("*.py")}
    jitted = {m for m, imports in modules.items() if "cas_xr.zonal._jit" in imports}
    assert {"_compiled", "_coverage", "_lines"} <= jitted
    needed = set(jitted)  # and the modules whose names (constants, functions) they use
    for module in jitted:
        needed |= {i.split(".")[2] for i in modules[module] if i.startswith("cas_xr.zonal.")}
    assert needed <= set(KERNEL_MODULES), needed - set(KERNEL_MODULES)
    # numba's decorators are used by _jit only (every jitted function is stamped)
    decorators = {f"numba.{name}" for name in ("jit", "njit", "cfunc", "vectorize", "guvectorize")}
    users = {m for m, imports in modules.items() if imports & decorators}
    assert users == {"_jit"}, users


def _run(package: Path) -> dict[str, float]:
    """The coverage of a cell in a fresh process of the copied package (its own cache)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NUMBA_", "CAS_"))}
    done = subprocess.run(
        [sys.executable, "-c", _RUN], capture_output=True, text=True, timeout=600,
        env={**env, "PYTHONPATH": str(package)}, cwd=package, check=True,
    )  # fmt: skip
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


@pytest.mark.slow
def test_a_changed_module_recompiles_the_functions_that_use_it(tmp_path: Path):
    # a copy of the package, with numba's cache beside it (NUMBA_CACHE_DIR unset), as
    # for an installed package; the coverage code of _coverage.py uses the constants of
    # _codes.py, which numba compiles in
    copy = tmp_path / "cas_xr"
    shutil.copytree(ZONAL.parent, copy, ignore=shutil.ignore_patterns("__pycache__"))
    assert _run(tmp_path) == {"corner": 0.5625, "loaded": 0}  # exact coverage, compiled
    assert _run(tmp_path) == {"corner": 0.5625, "loaded": 1}  # the next process loads it

    codes = copy / "zonal" / "_codes.py"
    source = codes.read_text("utf-8")
    assert _MODES in source, "update this test: the line it changes is gone"
    codes.write_text(source.replace(_MODES, _SWAPPED), "utf-8")
    # mode 0 is now the centre's: the cell's centre is inside, not the stale 0.75 x 0.75
    assert _run(tmp_path) == {"corner": 1.0, "loaded": 0}
