"""First-run benchmark (issue 13): a new user's first ``cas-xr demo`` and ``import cas_xr``.

Usage: python benchmarks/first_run_bench.py [--size smoke|full] [--data DIR] [--repeat N]

The repository is installed (not timed) the way a new user installs it: at full size into
a new virtual environment with ``pip install .`` (kept in ``--data`` and refreshed with
``pip install --no-deps --force-reinstall .`` on later runs; pip's wheel cache makes that
quick); at smoke size with ``pip install --no-deps --target`` for the current interpreter.
Then each measurement runs in a fresh process of that installation, ``--repeat`` times
(3 at full size), and the median counts:

- ``first demo, NUMBA_CACHE_DIR unset``: ``cas-xr demo`` after deleting numba's cache
  files (``*.nbi``, ``*.nbc``) from the installed package, so the kernels compile beside
  it as on a new install;
- ``first demo, NUMBA_CACHE_DIR empty``: the same with ``NUMBA_CACHE_DIR`` pointing at a
  new empty folder;
- ``next demo (cached kernels)``: once more, with the kernels the run before compiled;
- ``anchor: import xarray, rioxarray, exactextract``: what any user of the stack waits for;
- ``import cas_xr``: ``python -c "import cas_xr"`` minus ``python -c pass``, medians of 5
  runs each (per repetition).

For each demo, ``first_output_s`` is the time to the first line on standard output and
``done_s`` the time to the process's exit; ``compiled`` says whether the kernels were
compiled (the announcement on standard error), which must be yes for a first run and no
for the next; ``cache_files`` is how many numba index files a first run left where the
next run looks for them (beside the installed package, or in ``NUMBA_CACHE_DIR``): none
would mean they went elsewhere (numba's user-wide folder). ``runs_load`` is the 1-minute
load average at the start of each run: the machine is shared, so read the times with it.
Targets (issue 13): first output within 2 s, done within 15 s, import at most 0.6 s.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _harness import print_table, size_parser

ROOT = Path(__file__).resolve().parents[1]
SIZES = {"smoke": 1, "full": 3}  # repetitions of each measurement
IMPORT_RUNS = 5
ANNOUNCEMENT = "preparing the statistics kernels, first run only"
DEMO_ROWS = 35
TARGETS = {"first_output_s": 2.0, "done_s": 15.0, "import_s": 0.6}


@dataclass
class Install:
    """Where the benchmark's copy of cas_xr lives and how to run it."""

    python: Path
    script: Path  # the cas-xr console script
    package: Path  # the installed cas_xr folder
    env: dict[str, str] = field(default_factory=dict)  # what every run adds to a clean env


def _clean_env(install: Install, **extra: str) -> dict[str, str]:
    """The environment of a run: no PYTHONPATH or NUMBA_/CAS_ settings of the caller."""
    drop = ("PYTHONPATH", "NUMBA_", "CAS_", "VIRTUAL_ENV")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    return {**env, **install.env, **extra}


def _run(cmd: list[str], **kwargs: Any) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, **kwargs)
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")


def install(data: Path, size: str) -> Install:
    """Install the repository (untimed): a new venv at full size, ``--target`` at smoke."""
    if size == "full":
        venv = data / "venv"
        python = venv / "bin" / "python"
        if not python.exists():
            _run([sys.executable, "-m", "venv", str(venv)])
            _run([str(python), "-m", "pip", "install", "--quiet", str(ROOT)], cwd=data)
        else:  # the same dependencies; this checkout's cas_xr
            _run(
                [str(python), "-m", "pip", "install", "--quiet", "--no-deps",
                 "--force-reinstall", str(ROOT)],
                cwd=data,
            )  # fmt: skip
        site = subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        return Install(python, venv / "bin" / "cas-xr", Path(site) / "cas_xr")
    target = data / "target"
    shutil.rmtree(target, ignore_errors=True)
    _run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target",
         str(target), str(ROOT)],
        cwd=data,
    )  # fmt: skip
    env = {"PYTHONPATH": str(target)}
    return Install(Path(sys.executable), target / "bin" / "cas-xr", target / "cas_xr", env)


def _forget_kernels(package: Path) -> int:
    """Delete numba's cache files of the installed package; how many there were."""
    files = [*package.rglob("*.nbi"), *package.rglob("*.nbc")]
    for path in files:
        path.unlink()
    return len(files)


def _demo(install: Install, env: dict[str, str], cwd: Path, cache: Path) -> dict[str, Any]:
    """One ``cas-xr demo``: time to the first stdout line and to exit; did it compile?

    ``cache`` is where the next run looks for the kernels (its index files are counted).
    """
    load = os.getloadavg()[0]
    with tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(
            [str(install.script), "demo"], stdout=subprocess.PIPE, stderr=err, env=env, cwd=cwd
        )
        assert proc.stdout is not None
        first = float("nan")
        lines = []
        for raw in proc.stdout:
            if first != first:  # NaN: this is the first line
                first = time.perf_counter() - started
            lines.append(raw.decode(errors="replace"))
        proc.wait()
        done = time.perf_counter() - started
        err.seek(0)
        stderr = err.read().decode(errors="replace")
    rows = sum(1 for line in lines if "  sample:" in line)  # a table row: catchment, dataset
    problem = ""
    if proc.returncode or rows != DEMO_ROWS:
        problem = f"exit {proc.returncode}, {rows} rows: {stderr.strip()[-300:]}"
    return {
        "first_output_s": first,
        "done_s": done,
        "compiled": ANNOUNCEMENT in stderr,
        "cache_files": len(list(cache.rglob("*.nbi"))),
        "load": load,
        "error": problem,
    }


def _seconds(install: Install, code: str, cwd: Path, runs: int = 1) -> list[float]:
    """Wall time of ``python -c code`` in fresh processes."""
    env = _clean_env(install)
    out = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([str(install.python), "-c", code], env=env, cwd=cwd, check=True)
        out.append(time.perf_counter() - started)
    return out


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def measure(install: Install, repeat: int, work: Path) -> dict[str, list[dict[str, Any]]]:
    """Every measurement, ``repeat`` times, round-robin: their runs by name."""
    runs: dict[str, list[dict[str, Any]]] = {}

    def add(name: str, run: dict[str, Any]) -> None:
        runs.setdefault(name, []).append(run)

    for _ in range(repeat):
        _forget_kernels(install.package)
        beside = install.package
        add("first demo, NUMBA_CACHE_DIR unset", _demo(install, _clean_env(install), work, beside))
        add("next demo (cached kernels)", _demo(install, _clean_env(install), work, beside))
        with tempfile.TemporaryDirectory(dir=work) as empty:
            env = _clean_env(install, NUMBA_CACHE_DIR=empty)
            add("first demo, NUMBA_CACHE_DIR empty", _demo(install, env, work, Path(empty)))
        (anchor,) = _seconds(install, "import xarray, rioxarray, exactextract", work)
        add("anchor: import xarray, rioxarray, exactextract", {"done_s": anchor})
        nothing = _median(_seconds(install, "pass", work, IMPORT_RUNS))
        ours = _median(_seconds(install, "import cas_xr", work, IMPORT_RUNS))
        add("import cas_xr (minus python -c pass)", {"done_s": ours - nothing})
    return runs


def _row(name: str, runs: list[dict[str, Any]], anchor: float) -> dict[str, Any]:
    first = [r["first_output_s"] for r in runs if "first_output_s" in r]
    done = [r["done_s"] for r in runs]
    compiled = {r["compiled"] for r in runs if "compiled" in r}
    expected = name.startswith("first demo")
    errors = [r["error"] for r in runs if r.get("error")]
    if compiled and compiled != {expected}:
        errors.append(f"compiled={sorted(compiled)}, expected {expected}")
    is_import = name.startswith("import")
    verdicts = []
    if first:
        verdicts.append(_median(first) <= TARGETS["first_output_s"])
    if name.startswith(("first demo", "next demo")):
        verdicts.append(_median(done) <= TARGETS["done_s"])
    if is_import:
        verdicts.append(_median(done) <= TARGETS["import_s"])
    return {
        "measurement": name,
        "first_output_s": _median(first),
        "done_s": _median(done),
        "x_anchor": _median(done) / anchor,
        "runs_done_s": " ".join(f"{v:.2f}" for v in done),
        "runs_first_s": " ".join(f"{v:.2f}" for v in first),
        "runs_load": " ".join(f"{r['load']:.1f}" for r in runs if "load" in r),
        "compiled": "/".join("yes" if c else "no" for c in sorted(compiled)) or "",
        "cache_files": " ".join(str(r["cache_files"]) for r in runs if "cache_files" in r),
        "target": "" if not verdicts else ("PASS" if all(verdicts) else "FAIL"),
        "error": "; ".join(errors),
    }


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = size_parser(__doc__, SIZES, "none")
    parser.add_argument("--repeat", type=int, help="runs of each measurement (default: by size)")
    args = parser.parse_args(argv)
    data = args.data / "first_run"
    data.mkdir(parents=True, exist_ok=True)
    install_ = install(data, args.size)
    repeat = args.repeat or SIZES[args.size]
    runs = measure(install_, repeat, data)
    anchor = _median([r["done_s"] for r in runs["anchor: import xarray, rioxarray, exactextract"]])
    rows = [_row(name, measured, anchor) for name, measured in runs.items()]
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    title = (
        f"first run, size={args.size} ({install_.python.parent.parent}), median of {repeat}, "
        f"{os.cpu_count()} cores, load {load}; targets: first output <= 2 s, done <= 15 s, "
        "import <= 0.6 s"
    )
    print_table(title, rows)
    return rows


if __name__ == "__main__":
    main()
