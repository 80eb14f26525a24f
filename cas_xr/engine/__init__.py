"""The engine: the one pipeline every front end is a view of.

:func:`make_plan` (geometries validated once, one key each, datasets, statistics, time,
limits, per-geometry problems) -> units (each dataset opened once per grid, geometries in
Hilbert batches) -> :func:`compute` (result cache, scheduler, retries, progress, failures)
-> one xvec vector data cube with statistics, coverage, quality and provenance. The
front ends (:mod:`cas_xr.frontends`) turn that cube into responses, tables or cubes.
"""

from cas_xr.engine._classes import CLASS_STATISTICS, class_label, class_value
from cas_xr.engine._compute import Result, compute
from cas_xr.engine._cube import FLAGS
from cas_xr.engine._failures import warn_summary
from cas_xr.engine._plan import Plan, Problem, make_plan
from cas_xr.engine._quality import assess_quality
from cas_xr.engine._run import Report
from cas_xr.engine._targets import Target

__all__ = [
    "CLASS_STATISTICS",
    "FLAGS",
    "Plan",
    "Problem",
    "Report",
    "Result",
    "Target",
    "assess_quality",
    "class_label",
    "class_value",
    "compute",
    "make_plan",
    "warn_summary",
]
