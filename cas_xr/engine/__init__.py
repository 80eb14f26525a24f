"""The engine: the one pipeline every front end is a view of.

plan (validated geometries, datasets, statistics, time, limits) -> units (datasets
opened once per grid, geometries in Hilbert batches) -> run (cache, scheduler, progress,
failures) -> cube (an xvec vector data cube with quality, coverage and provenance).
"""

from cas_xr.engine._cube import assemble
from cas_xr.engine._plan import Plan, make_plan
from cas_xr.engine._run import run

__all__ = ["Plan", "assemble", "make_plan", "run"]
