"""Benchmark harness: each measurement runs in a fresh process (wall time, peak RSS)."""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class Measurement:
    workload: str
    tool: str
    seconds: float
    peak_rss_mb: float
    result: Any = None
    error: str | None = None

    @property
    def error_line(self) -> str:
        """The last line of the error (the exception), or ``""``."""
        return self.error.strip().splitlines()[-1] if self.error else ""


def size_parser(doc: str, sizes: dict[str, Any], skip_help: str) -> argparse.ArgumentParser:
    """The command line every runner shares: ``--size``, ``--data`` and ``--skip``."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--size", choices=sorted(sizes), default="smoke")
    parser.add_argument(
        "--data", type=Path, default=Path(os.environ.get("CAS_BENCH_DATA", "/tmp/cas_xr_bench"))
    )
    parser.add_argument("--skip", nargs="*", default=[], help=f"tools to skip: {skip_help}")
    return parser


def _warm_up() -> None:
    """Import the stack and compile cas_xr's kernel, so timings measure work, not start-up."""
    import dask.array  # noqa: F401
    import exactextract  # noqa: F401
    import geopandas as gpd
    import numpy as np
    import rioxarray  # noqa: F401
    import shapely
    import xarray as xr
    import xvec  # noqa: F401

    from cas_xr.zonal import zonal

    da = xr.DataArray(
        np.ones((4, 4)),
        dims=("y", "x"),
        coords={"y": [3.5, 2.5, 1.5, 0.5], "x": [0.5, 1.5, 2.5, 3.5]},
    )
    geoms = gpd.GeoSeries([shapely.box(0.5, 0.5, 2.5, 2.5), shapely.Point(1, 1)], crs="EPSG:32633")
    for weights in ("exact", "center"):
        zonal(da.rio.write_crs("EPSG:32633"), geoms, ["mean"], weights=weights).compute()


def _peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM; unlike ru_maxrss it resets on exec)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child(queue: Any, func: Callable[..., Any], args: tuple[Any, ...]) -> None:
    try:
        _warm_up()
        started = time.perf_counter()
        result = func(*args)
        seconds = time.perf_counter() - started
        peak = _peak_rss_mb()
        queue.put((seconds, peak, result, None))
    except Exception:  # report, don't hang the parent
        queue.put((float("nan"), float("nan"), None, traceback.format_exc(limit=3)))


def measure(
    workload: str, tool: str, func: Callable[..., Any], *args: Any, timeout: float = 3600
) -> Measurement:
    """Run ``func(*args)`` in a fresh spawned process; time it and read its peak RSS.

    Every process first imports the same stack and compiles cas_xr's numba kernel (from
    its on-disk cache when present), so start-up is excluded for every tool alike; the
    peak RSS includes that common baseline (about 300 MB).
    """
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(queue, func, args))
    proc.start()
    try:
        seconds, peak, result, error = queue.get(timeout=timeout)
    except Exception:  # the queue's Empty on timeout
        proc.kill()
        seconds, peak, result, error = (
            float("nan"),
            float("nan"),
            None,
            f"timeout after {timeout} s",
        )
    proc.join()
    return Measurement(workload, tool, seconds, peak, result, error)


def print_table(title: str, rows: list[dict[str, Any]]) -> None:
    """Print rows (dicts with the same keys) as an aligned text table."""
    if not rows:
        return
    keys = list(rows[0])
    cells = [[_fmt(r.get(k)) for k in keys] for r in rows]
    widths = [max(len(k), *(len(c[i]) for c in cells)) for i, k in enumerate(keys)]
    print(f"\n## {title}\n")
    print("  ".join(k.ljust(w) for k, w in zip(keys, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for c in cells:
        print("  ".join(v.ljust(w) for v, w in zip(c, widths, strict=True)))


def print_markdown(title: str, rows: list[dict[str, Any]]) -> None:
    """Print rows (dicts with the same keys) as a markdown table under a ``##`` title."""
    if not rows:
        return
    keys = list(rows[0])
    print(f"\n## {title}\n")
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for row in rows:
        print("| " + " | ".join(_fmt(row.get(k)) for k in keys) + " |")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if value != value:  # NaN
            return "-"
        return f"{value:.3g}" if abs(value) < 1e-2 and value else f"{value:.2f}"
    return "" if value is None else str(value)
