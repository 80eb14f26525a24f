"""Run a batch: serve what the result cache holds, compute the rest unit by unit.

Units are built lazily, batch after batch, and at most a few are in flight, so the memory
of the client and of each worker stays bounded however many geometries there are. Each
finished unit goes straight into the result cache (in memory, and on disk when
``result_cache_dir`` is set), so an interrupted run resumes where it stopped. A unit that
fails is retried dataset by dataset; what still fails becomes MISSING with its error.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from cas_xr.config import SettingsBoundCache
from cas_xr.engine._entries import Block, decode, encode
from cas_xr.engine._failures import failure_kind
from cas_xr.engine._plan import Plan
from cas_xr.engine._progress import ProgressBar, progress_bar
from cas_xr.engine._provenance import Record
from cas_xr.engine._scheduler import Scheduler, current_scheduler
from cas_xr.engine._store import digest, persistent_store
from cas_xr.engine._targets import Target
from cas_xr.engine._units import (
    Member,
    Recipe,
    Unit,
    compute_unit,
    group,
    lonlat_bounds,
    open_member,
    to_blocks,
)
from cas_xr.engine._weights import weights_on

__all__ = ["MEMORY", "RECORDS", "Failure", "Outcome", "Report", "run"]

_VERSION = 6  # bump when what a cache entry means changes

#: ``report(done, total)``: how many of a request's results (geometry x dataset) are made
Report = Callable[[int, int], None]

#: Cache entries (bytes) kept in memory, rebuilt by configure().
MEMORY: SettingsBoundCache[bytes] = SettingsBoundCache(
    lambda s: (s.result_cache_ttl_s, s.result_cache_max_entries)
)
_MAX_RECORDS = 4096
#: Provenance records (what a read opened, where each item lies) kept in memory: few and
#: small, not counted in ``result_cache_max_entries``.
RECORDS: SettingsBoundCache[bytes] = SettingsBoundCache(
    lambda s: (s.result_cache_ttl_s, _MAX_RECORDS if s.result_cache_max_entries > 0 else 0)
)


@dataclass(frozen=True)
class Failure:
    """Results that could not be computed: a dataset (or every one) over some geometries."""

    dataset_id: str | None
    kind: str
    message: str
    positions: npt.NDArray[np.intp]


@dataclass
class Outcome:
    """Blocks of values per dataset id, failures, provenance records and counts of a run.

    Each block names (``Block.source``) the record of the read that gave its values,
    found in ``records`` under its dataset id.
    """

    blocks: dict[str, list[Block]]
    failures: list[Failure] = field(default_factory=list)
    records: dict[str, dict[bytes, Record]] = field(default_factory=dict)
    computed: int = 0
    cached: int = 0
    scheduler: str = ""
    #: per dataset id, the positions whose values came from the result cache, and the
    #: milliseconds the call that computed each took to have it
    hits: dict[str, dict[int, float]] = field(default_factory=dict)


def _steps(plan: Plan, target: Target) -> Any:
    """The time steps a plan asks of ``target`` (None for static data: they have one)."""
    if not target.is_temporal:
        return None
    tr = plan.time_range
    if tr is not None:
        return (tr.start.isoformat(), tr.end.isoformat())
    return "latest" if plan.latest_step else "all"


class _Cache:
    """The two tiers of the result cache for one plan: memory, then disk.

    One key scheme for every entry point: a digest of the dataset (its definition, or a
    cube's token), the statistics, the time steps, the weights (mode, area weighting and
    the weights raster's dataset), and the geometry's key. Each value names the
    provenance record of the read that made it (:class:`~cas_xr.engine._provenance.Record`,
    under a digest of the dataset's prefix and its content), stored after the values.

    A request with user reductions (Python functions) bypasses the cache, both ways: what
    a function computes depends on its code, defaults, closure, the globals and helpers
    it calls, and no key captures all of that honestly across processes (a function of
    the same name, edited, would get the old numbers), so its results are always computed.
    Reductions that name a statistic (xvec's ``("q90", "quantile", {"q": 0.9})``) are
    the kernel's own statistics under a label: they are cached, keyed by label and
    statistic.
    """

    def __init__(self, plan: Plan) -> None:
        self.off = any(r.style != "statistic" for r in plan.reductions)
        self.memory = MEMORY.current()
        self.records = RECORDS.current()
        self.disk = persistent_store()
        common: tuple[Any, ...] = (
            tuple(plan.stats), plan.settings.zonal_weights, plan.settings.area_weighted,
        )  # fmt: skip
        if plan.reductions:
            common += ("reductions", tuple((r.name, r.statistic) for r in plan.reductions))
        if plan.weights is not None:
            w = plan.weights
            common += ("weights_raster", w.dataset_id, w.fingerprint(), _steps(plan, w))
        self.prefixes = {
            t.dataset_id: digest(
                "result", _VERSION, t.dataset_id, t.fingerprint(), _steps(plan, t), common
            )
            for t in plan.targets
        }

    def keys(self, target: Target, geometry_keys: list[str]) -> list[bytes]:
        prefix = self.prefixes[target.dataset_id]
        return [
            hashlib.blake2b(prefix + k.encode(), digest_size=16).digest() for k in geometry_keys
        ]

    def get_many(self, keys: list[bytes], *, records: bool = False) -> dict[bytes, bytes]:
        """The values (or provenance ``records``) of those ``keys`` the cache holds."""
        if self.off:
            return {}
        found = (self.records if records else self.memory).get_many(keys)
        if self.disk is not None:
            found.update(self.disk.get_many([k for k in keys if k not in found] if found else keys))
        return found

    @property
    def room(self) -> int | None:
        """How many of the latest entries are worth storing (None: all of them)."""
        if self.off:
            return 0
        if self.disk is not None:
            return None
        return self.memory.max_entries if self.memory.ttl_s > 0 else 0

    def put_many(self, items: list[tuple[bytes, bytes]], record: tuple[bytes, bytes]) -> None:
        """Store values, then the provenance record they name (so it outlives them)."""
        if self.off:
            return
        if self.memory.ttl_s > 0 and self.memory.max_entries > 0:
            for key, value in items[-self.memory.max_entries :]:
                self.memory.set(key, value)
            self.records.set(*record)
        if self.disk is not None:
            self.disk.put_many([*items, record])


def _computed_ms(block: Block) -> npt.NDArray[np.float64]:
    return block.computed_ms if block.computed_ms is not None else np.zeros(block.positions.size)


def _plain_whole(series: Any, positions: npt.NDArray[np.intp]) -> bool:
    """Whether ``positions`` are all of ``series``, in order, and its index a plain range."""
    import pandas as pd

    n = len(series)
    return (
        positions.size == n
        and bool((positions == np.arange(n)).all())
        and isinstance(series.index, pd.RangeIndex)
        and series.index.name is None
        and series.index.equals(pd.RangeIndex(n))
    )


class _Runner:
    def __init__(self, plan: Plan, scheduler: Scheduler) -> None:
        self.plan = plan
        self.scheduler = scheduler
        self.bar = progress_bar(0, desc="")  # silent until run() knows the total
        self.cache = _Cache(plan)
        self.outcome = Outcome(
            blocks={t.dataset_id: [] for t in plan.targets},
            records={t.dataset_id: {} for t in plan.targets},
            scheduler=scheduler.description,
        )
        self.missing: dict[str, npt.NDArray[np.bool_]] = {}
        self.keys: dict[str, list[bytes]] = {}
        self.started = time.perf_counter()

    # -- cache ------------------------------------------------------------------------

    def lookup(self) -> int:
        """Serve cached results; return how many results are left to compute."""
        plan, todo = self.plan, 0
        computable = np.concatenate(plan.batches) if plan.batches else np.empty(0, np.intp)
        positions = computable.tolist()  # Python ints: 10^5 of them are walked per dataset
        for target in plan.targets:
            keys = self.cache.keys(target, plan.keys)
            self.keys[target.dataset_id] = keys
            wanted = [keys[i] for i in positions]
            found = self.cache.get_many(wanted)
            payloads = list(map(found.get, wanted))  # None where not held; else never empty
            hits = list(itertools.compress(positions, payloads))
            blocks = self._with_records(target, decode(hits, list(filter(None, payloads))))
            self.outcome.blocks[target.dataset_id] += blocks
            served = self.outcome.hits[target.dataset_id] = {}
            for b in blocks:
                served.update(zip(b.positions.tolist(), _computed_ms(b).tolist(), strict=True))
            missing = np.zeros(len(plan.keys), dtype=bool)
            missing[computable] = True
            missing[np.fromiter(served, dtype=np.intp, count=len(served))] = False
            self.missing[target.dataset_id] = missing
            self.outcome.cached += len(served)
            todo += int(missing.sum())
        return todo

    def _with_records(self, target: Target, blocks: list[Block]) -> list[Block]:
        """The cached ``blocks`` whose provenance record the cache still holds (kept).

        A value whose record is gone is computed again: its provenance would be lost.
        """
        if not blocks:
            return blocks
        stored = self.cache.get_many(sorted({b.source for b in blocks}), records=True)
        records = self.outcome.records[target.dataset_id]
        records.update((key, Record.loads(raw)) for key, raw in stored.items())
        return [b for b in blocks if b.source in records]

    def _record(self, member: Member) -> bytes:
        """The key of the provenance record of a computed member (kept in the outcome)."""
        prefix = self.cache.prefixes[member.target.dataset_id]
        key, record = Record.read(member.data.attrs, prefix)
        self.outcome.records[member.target.dataset_id][key] = record
        return key

    def _store(self, member: Member, block: Block) -> None:
        """Keep a computed block and its provenance record in the result cache."""
        keys, room = self.keys[member.target.dataset_id], self.cache.room
        if not block.degraded and room != 0:  # a degraded result is read again next time
            items = list(zip([keys[p] for p in block.positions], encode(block), strict=True))
            record = self.outcome.records[member.target.dataset_id][block.source]
            self.cache.put_many(
                items if room is None else items[-room:], (block.source, record.dumps())
            )

    # -- units ------------------------------------------------------------------------

    def _fail(self, targets: list[Target], positions: npt.NDArray[np.intp], err: Any) -> None:
        kind, message = failure_kind(err), str(err) or type(err).__name__
        for target in targets:
            self.outcome.failures.append(Failure(target.dataset_id, kind, message, positions))
        self.bar.update(positions.size * len(targets))

    def _units(self, positions: npt.NDArray[np.intp], targets: list[Target]) -> Iterator[Unit]:
        import geopandas as gpd

        series = self.plan.series
        geometries = (
            series  # what the GeoSeries below would be (a small request's one batch)
            if _plain_whole(series, positions)
            else gpd.GeoSeries(series.to_numpy()[positions], crs=series.crs)
        )
        bounds = lonlat_bounds(geometries)
        members: list[Member] = []
        for target in targets:
            try:
                members.append(
                    open_member(
                        target, bounds, self.plan.time_range, latest_step=self.plan.latest_step
                    )
                )
            except Exception as err:  # a dataset that cannot open is MISSING, not fatal
                self._fail([target], positions, err)
        weights = self.plan.weights
        if weights is not None and members:
            try:
                raw = open_member(
                    weights, bounds, self.plan.time_range, latest_step=self.plan.latest_step
                ).data
            except Exception as err:  # no weights: the weighted results are MISSING
                self._fail([m.target for m in members], positions, err)
                return
        for members_on_grid in group(
            members, distribution=self.plan.distribution or self.plan.weighted_distribution
        ):
            aligned = None
            if weights is not None:  # another grid raises: it is the request that is wrong
                first = members_on_grid[0]
                aligned = weights_on(
                    raw, first.data, weights_id=weights.dataset_id,
                    values_id=first.target.dataset_id,
                )  # fmt: skip
            yield Unit(positions, geometries, members_on_grid, aligned)

    def _batch_units(self) -> Iterator[Unit]:
        for batch in self.plan.batches:
            by_set: dict[bytes, tuple[npt.NDArray[np.intp], list[Target]]] = {}
            for target in self.plan.targets:
                positions = batch[self.missing[target.dataset_id][batch]]
                if positions.size:
                    by_set.setdefault(positions.tobytes(), (positions, []))[1].append(target)
            for positions, targets in by_set.values():
                yield from self._units(positions, targets)

    def compute(self, units: Iterator[Unit], *, retry: bool) -> list[Unit]:
        """Compute ``units``; return the failed multi-dataset units to retry one by one."""
        again: list[Unit] = []
        settings = self.plan.settings
        recipe = Recipe(
            self.plan.stats, settings.zonal_weights, settings.area_weighted,
            self.scheduler.task_scheduler, settings.small_request_cells,
            window=settings.chunk_size,  # windows as large as before, whatever sources' chunks
            reductions=self.plan.reductions,
        )  # fmt: skip
        jobs = ((unit, compute_unit, (unit, recipe)) for unit in units)
        for unit, result, error in self.scheduler.unordered(jobs):
            if error is not None or result is None:
                if retry and len(unit.members) > 1:
                    again.append(unit)
                else:
                    self._fail([m.target for m in unit.members], unit.positions, error)
                continue
            blocks = to_blocks(unit, recipe, *result)
            so_far = np.full(unit.positions.size, (time.perf_counter() - self.started) * 1000)
            for member, (target, computed) in zip(unit.members, blocks, strict=True):
                block = dataclasses.replace(
                    computed, computed_ms=so_far, source=self._record(member)
                )
                self.outcome.blocks[target.dataset_id].append(block)
                self._store(member, block)
            self.outcome.computed += unit.results
            self.bar.update(unit.results)
        return again

    def run(self, bar: ProgressBar) -> Outcome:
        self.bar = bar
        again = self.compute(self._batch_units(), retry=True)
        singles = (
            Unit(u.positions, u.geometries, [m], u.weights) for u in again for m in u.members
        )
        self.compute(singles, retry=False)
        return self.outcome


class _Reporting:
    """A progress bar that calls ``report(done, total)`` (counting cached results too)."""

    def __init__(self, report: Report, done: int, total: int) -> None:
        self.report, self.done, self.total = report, done, total
        if done:
            report(done, total)

    def update(self, n: float = 1) -> None:
        self.done += int(n)
        self.report(self.done, self.total)

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        """Nothing to show."""

    def close(self) -> None:
        """Nothing to close."""


def run(
    plan: Plan, *, report: Report | None = None, min_bar: int = 0, desc: str = "cas_xr"
) -> Outcome:
    """Compute every (geometry, dataset) result of ``plan`` that the cache does not hold.

    Parameters
    ----------
    plan
        The validated request.
    report
        Called as ``report(done, total)`` as results are made (cached ones first), instead
        of showing a progress bar; an exception it raises stops the run.
    min_bar
        Show a progress bar (``progress`` setting) only from this many results to compute.
    desc
        The progress bar's label.

    Returns
    -------
    Outcome
        Blocks per dataset id (cached and computed), failures (the plan's geometry
        problems included), provenance and counts.
    """
    scheduler = current_scheduler(plan.settings)
    runner = _Runner(plan, scheduler)
    todo = runner.lookup()
    bar: ProgressBar
    if report is not None:
        total = len(plan.series) * len(plan.targets)
        bar = _Reporting(report, total - todo, total)
    else:
        bar = progress_bar(todo if todo >= min_bar else 0, desc=f"{desc} ({scheduler.description})")
    try:
        outcome = runner.run(bar)
    finally:
        bar.close()
    for problem in plan.problems:
        outcome.failures.append(Failure(None, problem.kind, problem.message, problem.positions))
    return outcome
