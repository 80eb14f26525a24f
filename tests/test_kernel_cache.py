"""numba's on-disk cache of the kernel is invalidated when any kernel module changes.

numba stamps a cached function with its own source file only; the kernel (in
``_compiled``) calls the coverage code of ``_coverage`` and uses the constants of
``_codes``, so without ``_jit``'s stamp a changed ``_coverage.py`` would leave the stale
kernel in the cache, loaded by the next process: wrong numbers without an error.
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
from cas_xr.zonal import _codes as K, _kernel

square = np.array([[0.5, 0.5], [2.5, 0.5], [2.5, 2.5], [0.5, 2.5], [0.5, 0.5]])
codes = np.array([K.COUNT, K.MEAN])
stats, count, pixels, _, _ = _kernel.zonal_kernel(
    np.arange(16.0).reshape(1, 4, 4), 0.0, False, np.empty((0, 4, 4), np.uint8), square,
    np.array([0, 5]), np.array([0, 1]), np.ones(4), np.ones(4), np.arange(4.0),
    np.arange(4.0), np.empty((0, 4, 4)), K.MODE_EXACT, codes, np.zeros(2), np.empty(0),
    False, K.empty_stats(codes), K.COVERAGE_NOISE, K.options(),
)
kernel = _kernel._kernels["float64"]
print(json.dumps({"count": stats[0, 0, 0], "mean": stats[0, 0, 1],
                  "loaded": sum(kernel.stats.cache_hits.values())}))
"""
#: Exact coverage of the square turned into "any coverage counts as the whole cell".
_EXACT = "buf[line, j] = cover if cover >= noise else 0.0"
_CHANGED = "buf[line, j] = 1.0 if cover >= noise else 0.0"


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
    """The kernel's numbers in a fresh process of the copied package (its own cache)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NUMBA_", "CAS_"))}
    done = subprocess.run(
        [sys.executable, "-c", _RUN], capture_output=True, text=True, timeout=600,
        env={**env, "PYTHONPATH": str(package), "CAS_PROGRESS": "false"}, cwd=package,
        check=True,
    )  # fmt: skip
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


@pytest.mark.slow
def test_a_changed_coverage_module_recompiles_the_kernel_that_calls_it(tmp_path: Path):
    # a copy of the package, with numba's cache beside it (NUMBA_CACHE_DIR unset), as
    # for an installed package
    copy = tmp_path / "cas_xr"
    shutil.copytree(ZONAL.parent, copy, ignore=shutil.ignore_patterns("__pycache__"))
    first = _run(tmp_path)
    assert first == {"count": 4.0, "mean": 5.0, "loaded": 0}  # compiled, and cached
    assert _run(tmp_path) == {**first, "loaded": 1}  # the next process loads it

    coverage = copy / "zonal" / "_coverage.py"
    source = coverage.read_text("utf-8")
    assert _EXACT in source, "update this test: the line it changes is gone"
    coverage.write_text(source.replace(_EXACT, _CHANGED), "utf-8")
    changed = _run(tmp_path)
    # the 9 cells the square touches, each whole: not the stale kernel's 4.0
    assert changed == {"count": 9.0, "mean": 5.0, "loaded": 0}
