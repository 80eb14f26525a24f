"""One run of the pipeline: a plan in, the result cube (and what views need) out."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cas_xr.engine._cube import assemble
from cas_xr.engine._plan import Plan
from cas_xr.engine._provenance import Provenance, provenance_of
from cas_xr.engine._run import Report, run

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["Result", "compute"]


@dataclass(frozen=True)
class Result:
    """The cube of a plan, and what its views need besides.

    Attributes
    ----------
    plan
        The plan computed.
    cube
        The xvec vector data cube (see :func:`~cas_xr.extract_cube`).
    flagged
        ``(dataset_id, flag) -> [count, a reason]`` of the cube's results that are not
        GOOD, for the warning.
    hits
        Per dataset id, the positions whose values came from the result cache, and the
        milliseconds the call that computed each took to have it.
    elapsed_ms
        Wall time of the run.
    provenance
        Per dataset id, the provenance of each result (what its geometry's read
        touched) and of the whole call (the cube's ``cas_provenance``).
    """

    plan: Plan
    cube: xr.Dataset
    flagged: dict[tuple[str, str], list[Any]]
    hits: dict[str, dict[int, float]]
    elapsed_ms: float
    provenance: dict[str, Provenance]


def compute(
    plan: Plan, *, report: Report | None = None, min_bar: int = 0, desc: str = "cas_xr"
) -> Result:
    """Run ``plan`` (blocking): cached results served, the rest computed, one cube built.

    Parameters
    ----------
    plan
        From :func:`~cas_xr.engine.make_plan`.
    report, min_bar, desc
        Progress: see :func:`cas_xr.engine._run.run`.
    """
    started = time.perf_counter()
    outcome = run(plan, report=report, min_bar=min_bar, desc=desc)
    provenance = provenance_of(plan.series, outcome.blocks, outcome.records)
    cube, flagged = assemble(plan, outcome, {d: p.whole() for d, p in provenance.items()})
    elapsed = (time.perf_counter() - started) * 1000
    return Result(plan, cube, flagged, outcome.hits, elapsed, provenance)
