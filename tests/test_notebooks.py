"""Every notebook in notebooks/ runs top to bottom without an error, and is stored clean.

The notebooks run with nbclient on a kernel of this very interpreter (``sys.executable``):
a kernelspec written to a temporary Jupyter data folder, so whatever ``python3`` kernel
happens to be installed elsewhere is never used.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
KERNEL_NAME = "cas-xr-test-python3"
CELL_TIMEOUT_S = 300


def write_kernelspec(python: str, folder: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Write a kernelspec that starts ipykernel with ``python``; return its name."""
    spec_dir = folder / "jupyter" / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [python, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": f"Python ({python})",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec), encoding="utf-8")
    monkeypatch.setenv("JUPYTER_PATH", str(folder / "jupyter"))
    # keep the kernel from reading or writing the user's IPython profile
    monkeypatch.setenv("IPYTHONDIR", str(folder / "ipython"))
    return KERNEL_NAME


def run_notebook(path: Path, kernel_name: str, folder: Path) -> nbformat.NotebookNode:
    """Execute the notebook at ``path`` in ``folder``; fail the test on any error."""
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT_S,
        kernel_name=kernel_name,
        resources={"metadata": {"path": str(folder)}},  # the kernel's working directory
    )
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as err:
        pytest.fail(f"{path.name} failed:\n{err}", pytrace=False)
    errors = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if output.output_type == "error"
    ]
    assert not errors, f"{path.name}: cells produced errors: {errors}"
    return notebook


@pytest.fixture
def kernel_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A kernelspec that starts ipykernel with the interpreter running the tests."""
    return write_kernelspec(sys.executable, tmp_path, monkeypatch)


def test_there_are_notebooks() -> None:
    assert any(p.name == "quickstart.ipynb" for p in NOTEBOOKS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stored_without_outputs(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    dirty = [
        i
        for i, cell in enumerate(notebook.cells)
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None)
    ]
    assert not dirty, f"{path.name}: clear the outputs of cells {dirty} before committing"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs(path: Path, tmp_path: Path, kernel_name: str) -> None:
    run_notebook(path, kernel_name, tmp_path)
