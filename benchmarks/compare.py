"""Compare the zonal, scale and service benchmarks of two git revisions, back to back.

Usage: python benchmarks/compare.py [--base REV] [--head REV] [--bench zonal,scale,service]
       [--size smoke|full] [--rounds 3] [--anchors all|first|none] [--threshold 1.10]

Each revision is checked out with ``git worktree add --detach`` in a temporary folder
and imported by this Python through ``PYTHONPATH``; the benchmark scripts are the same for
both (by default the HEAD checkout's ``benchmarks/``), so only cas_xr differs. Each run is a
fresh interpreter started in the run folder (never in a checkout, whose ``cas_xr`` would
shadow ``PYTHONPATH``) that checks which cas_xr it imported.

First every selected benchmark runs once per revision at smoke size, unmeasured: it
compiles and caches (in a numba cache folder per revision) the kernel specialisations the
measured runs use, and shows early that the scripts work with both revisions. Then, in
each of ``--rounds`` rounds, each benchmark runs for both revisions one after the other
(base first in odd rounds, head first in even ones). The report gives each revision's
median table (per row and column, over the rounds that ran the row: ``n``) and, for every
cas_xr row, the base and head medians of the timed columns, head/base, every run's value
and PASS or FAIL against ``--threshold``. A row also fails when any of its runs errored,
lost a job or disagreed with the reference; a row that only the head can run (the base
errs: a statistic or option added since) and the head runs cleanly is NEW, not failed.
``--anchors first`` runs the other tools (exactextract, xvec, rasterstats) in round 1
only, ``none`` never.

The report, every run's rows (``runs.json``, which ``--from-runs`` reports again) and
output (``*.log``) are written to ``--out``. Exit status: 0 if every row passes, 1 if one
fails, 2 if a run could not complete. Timings and noise: ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DEFAULT_BASE = "a724151"  # main before issue 11 (one pipeline)


@dataclass(frozen=True)
class Bench:
    """How to run one benchmark and read its rows."""

    module: str
    key: tuple[str, ...]  # the columns naming a row
    timed: tuple[str, ...]  # the columns compared between revisions (seconds)
    anchors: tuple[str, ...]  # ``--skip`` names of the tools that are not cas_xr
    argv: Callable[[str, Path], list[str]]
    tolerance: float | None  # largest max_rel_diff_mean of a cas_xr row, if reported
    approximate: tuple[str, ...] = ()  # cas_xr tools not meant to equal the reference

    def ours(self, row: dict[str, Any]) -> bool:
        """Whether a row measures cas_xr (the rows the threshold applies to)."""
        return str(row.get("tool", "cas_xr")).startswith("cas_xr")

    def problems(self, row: dict[str, Any]) -> list[str]:
        """What went wrong in one run of a row (error, lost jobs, disagreement)."""
        found = [str(row["error"])] if row.get("error") else []
        for column in ("errors", "lost_jobs"):
            if row.get(column):
                found.append(f"{column}={row[column]}")
        diff = row.get("max_rel_diff_mean")
        checked = self.ours(row) and row.get("tool") not in self.approximate
        tolerance = float("inf") if self.tolerance is None or not checked else self.tolerance
        if isinstance(diff, float) and diff > tolerance:  # NaN (nothing to compare) passes
            found.append(f"max_rel_diff_mean={diff:.3g}")
        return found


BENCHES = {
    "zonal": Bench(
        module="zonal_bench",
        key=("workload", "tool"),
        timed=("wall_s",),
        anchors=("xvec", "rasterstats", "exactextract"),
        argv=lambda size, data: ["--size", size, "--data", str(data)],
        tolerance=1e-6,
        approximate=("cas_xr center",),  # cell centres, compared with exact coverage
    ),
    "scale": Bench(
        module="scale_bench",
        key=("tool",),
        timed=("wall_s",),
        anchors=("xvec", "exactextract"),
        argv=lambda size, data: ["--size", size, "--data", str(data)],
        tolerance=1e-9,
    ),
    "service": Bench(
        module="service_load",
        key=(),
        timed=("wall_s", "p50_s", "p95_s"),
        anchors=(),
        argv=lambda size, data: (
            ["--requests", "200", "--timeout", "900"]
            if size == "full"
            else ["--requests", "20", "--timeout", "120"]
        ),
        tolerance=None,
    ),
}

# Runs in each measured interpreter: import the benchmark, run it, keep its rows as JSON.
_CHILD = """
import importlib, json, sys
tree, scripts, module, out = sys.argv[1:5]
import cas_xr
if not cas_xr.__file__.startswith(tree):
    sys.exit(f"cas_xr was imported from {cas_xr.__file__}, not from {tree}")
sys.path.insert(0, scripts)
result = importlib.import_module(module).main(sys.argv[5:])
rows = result if isinstance(result, list) else [result]
with open(out, "w", encoding="utf-8") as f:
    json.dump(rows, f, default=lambda o: o.item() if hasattr(o, "item") else str(o))
"""


class RunFailed(RuntimeError):
    """A benchmark run did not complete (its log says why)."""


@dataclass(frozen=True)
class Revision:
    label: str  # "base" or "head"
    sha: str
    tree: Path
    numba_cache: Path


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    )
    return done.stdout.strip()


@contextmanager
def _checkouts(repo: Path, revs: dict[str, str], keep: bool) -> Iterator[dict[str, Revision]]:
    """Detached worktrees of each revision in a temporary folder, removed afterwards."""
    tmp = Path(tempfile.mkdtemp(prefix="cas_xr_compare_"))
    made: list[Path] = []
    try:
        out = {}
        for label, rev in revs.items():
            sha = _git(repo, "rev-parse", "--verify", f"{rev}^{{commit}}")
            tree = tmp / label
            _git(repo, "worktree", "add", "--detach", str(tree), sha)
            made.append(tree)
            out[label] = Revision(label, sha, tree, tmp / f"numba_{label}")
        yield out
    finally:
        if keep:
            print(f"kept the checkouts in {tmp}", file=sys.stderr)
        else:
            for tree in made:
                subprocess.run(
                    ["git", "-C", str(repo), "worktree", "remove", "--force", str(tree)],
                    check=False,
                    capture_output=True,
                )
            shutil.rmtree(tmp, ignore_errors=True)


def _run(
    rev: Revision, scripts: Path, bench: Bench, argv: list[str], out: Path, timeout: float
) -> tuple[list[dict[str, Any]], float]:
    """One benchmark run for one revision in a fresh interpreter: its rows and wall time."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAS_")}
    env["PYTHONPATH"] = str(rev.tree)
    env["NUMBA_CACHE_DIR"] = str(rev.numba_cache)
    command = [sys.executable, "-c", _CHILD, str(rev.tree), str(scripts), bench.module]
    rows_path = out.with_suffix(".json")
    started = time.perf_counter()
    with out.with_suffix(".log").open("w", encoding="utf-8") as log:
        try:
            done = subprocess.run(
                [*command, str(rows_path), *argv],
                env=env,
                cwd=out.parent,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise RunFailed(f"{out.name}: timed out after {timeout} s") from exc
    seconds = time.perf_counter() - started
    if done.returncode or not rows_path.exists():
        tail = out.with_suffix(".log").read_text(encoding="utf-8").strip().splitlines()[-5:]
        raise RunFailed(f"{out.name} failed (exit {done.returncode}):\n" + "\n".join(tail))
    return json.loads(rows_path.read_text(encoding="utf-8")), seconds


Key = tuple[str, ...]


def _keyed(bench: Bench, rows: list[dict[str, Any]]) -> Iterator[tuple[Key, dict[str, Any]]]:
    """Each row with its name: the key columns and which occurrence of them it is.

    The zonal table repeats its ``read+decode`` rows under each workload, so the
    occurrence keeps the rows of one run apart.
    """
    seen: dict[Key, int] = {}
    for row in rows:
        key = tuple(str(row[k]) for k in bench.key)
        seen[key] = seen.get(key, -1) + 1
        yield (*key, str(seen[key])), row


def _median_rows(bench: Bench, runs: list[list[dict[str, Any]]]) -> dict[Key, dict[str, Any]]:
    """Per row, the median of each numeric column over the runs that have the row.

    NaN values (a ratio to a tool that did not run) are left out of the median.
    """
    grouped: dict[Key, list[dict[str, Any]]] = {}
    for rows in runs:
        for key, row in _keyed(bench, rows):
            grouped.setdefault(key, []).append(row)
    table = {}
    for key, group in grouped.items():
        merged: dict[str, Any] = {k: group[0][k] for k in bench.key}
        merged["n"] = len(group)
        for column in group[0]:
            if column in bench.key:
                continue
            values = [r.get(column) for r in group]
            if all(_is_number(v) for v in values):
                numbers = [v for v in values if v == v]  # NaN: not measured in that run
                merged[column] = statistics.median(numbers) if numbers else float("nan")
            else:
                merged[column] = "; ".join(sorted({str(v) for v in values if v not in ("", None)}))
        table[key] = merged
    return table


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _comparison(
    bench: Bench,
    base_runs: list[list[dict[str, Any]]],
    head_runs: list[list[dict[str, Any]]],
    threshold: float,
) -> list[dict[str, Any]]:
    """Head/base of the timed columns of every cas_xr row, with its verdict."""
    base = _median_rows(bench, base_runs)
    head = _median_rows(bench, head_runs)
    problems: dict[tuple[str, Key], list[str]] = {}
    each: dict[tuple[str, Key, str], list[str]] = {}  # every run's value, to show the spread
    for label, runs in (("base", base_runs), ("head", head_runs)):
        for rows in runs:
            for key, row in _keyed(bench, rows):
                problems.setdefault((label, key), []).extend(bench.problems(row))
                for column in bench.timed:
                    each.setdefault((label, key, column), []).append(_fmt(row.get(column)))
    out = []
    for key in dict.fromkeys([*base, *head]):
        b, h = base.get(key, {}), head.get(key, {})
        named = b or h  # the row is in at least one of them
        if not bench.ours(named):
            continue
        notes = [
            f"{label}: {p}"
            for label in ("base", "head")
            for p in dict.fromkeys(problems.get((label, key), []))
        ]
        notes += [f"missing in {label}" for label, row in (("base", b), ("head", h)) if not row]
        # a row the base cannot run (a statistic or option added since) and the head runs
        # cleanly is new: there is nothing to compare it with
        timed = [b.get(c) for c in bench.timed]
        new = (
            bool(b)
            and not any(_is_number(v) and math.isfinite(v) for v in timed)
            and not any(n.startswith("head") or n == "missing in head" for n in notes)
        )
        for column in bench.timed:
            ratio = _ratio(b.get(column), h.get(column))
            passed = ratio <= threshold and not notes
            out.append(
                {
                    **{k: named[k] for k in bench.key},
                    "column": column,
                    "base": b.get(column, float("nan")),
                    "head": h.get(column, float("nan")),
                    "head/base": ratio,
                    "verdict": "PASS" if passed else "NEW" if new else "FAIL",
                    "base runs": " ".join(each.get(("base", key, column), [])),
                    "head runs": " ".join(each.get(("head", key, column), [])),
                    "problems": "; ".join(notes),
                }
            )
    return out


def _ratio(base: Any, head: Any) -> float:
    """head / base, or NaN when either is missing (NaN fails every threshold)."""
    if _is_number(base) and _is_number(head) and base > 0:
        return float(head) / float(base)
    return float("nan")


def markdown(rows: list[dict[str, Any]]) -> str:
    """Rows (dicts with the same keys) as a Markdown table."""
    if not rows:
        return "(no rows)\n"
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(_fmt(r.get(k)) for k in keys) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if value != value:  # NaN
            return "-"
        return f"{value:.3g}" if abs(value) < 1e-2 and value else f"{value:.2f}"
    return "" if value is None else str(value).replace("|", "\\|")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default=DEFAULT_BASE, help="revision before the change")
    parser.add_argument("--head", default="HEAD", help="revision with the change")
    parser.add_argument("--bench", default="zonal,scale,service", help="comma-separated")
    parser.add_argument("--size", choices=("smoke", "full"), default="smoke")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--anchors",
        choices=("all", "first", "none"),
        default="all",
        help="run the non-cas_xr tools in every round, in round 1 only, or never",
    )
    parser.add_argument("--threshold", type=float, default=1.10, help="largest head/base")
    parser.add_argument(
        "--scripts", default="head", help="benchmark scripts: head, base or a folder"
    )
    parser.add_argument("--repo", type=Path, default=HERE.parent, help="the git repository")
    parser.add_argument(
        "--data", type=Path, default=Path(os.environ.get("CAS_BENCH_DATA", "/tmp/cas_xr_bench"))
    )
    parser.add_argument(
        "--out", type=Path, help="report folder (default: a new one in /tmp; none with --from-runs)"
    )
    parser.add_argument("--run-timeout", type=float, default=3600, help="seconds per run")
    parser.add_argument("--keep", action="store_true", help="keep the temporary checkouts")
    parser.add_argument(
        "--from-runs", type=Path, help="only print the report again from a saved runs.json"
    )
    return parser


Runs = dict[str, dict[str, list[list[dict[str, Any]]]]]  # rows by benchmark, revision, round


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    names = [n.strip() for n in args.bench.split(",") if n.strip()]
    if not names or set(names) - set(BENCHES):
        _parser().error(f"--bench takes a comma-separated subset of {sorted(BENCHES)}")
    if args.from_runs:
        saved = json.loads(args.from_runs.read_text(encoding="utf-8"))
        if isinstance(saved, list):  # the first version saved the runs alone
            saved = {"header": f"(runs of {args.from_runs})", "runs": saved}
        present = [n for n in names if any(run["bench"] == n for run in saved["runs"])]
        return _report(args, present, saved, args.out)  # written only if --out is given
    out = args.out or Path(tempfile.gettempdir()) / "cas_xr_compare" / time.strftime(
        "%Y%m%d-%H%M%S"
    )
    out.mkdir(parents=True, exist_ok=True)
    repo = Path(_git(args.repo, "rev-parse", "--show-toplevel"))
    with _checkouts(repo, {"base": args.base, "head": args.head}, args.keep) as revs:
        if args.scripts in revs:
            scripts = revs[args.scripts].tree / "benchmarks"
        else:
            scripts = Path(args.scripts).resolve()
        saved = {
            "header": (
                f"base {args.base} = {revs['base'].sha[:10]}, head {args.head} = "
                f"{revs['head'].sha[:10]}; scripts: {args.scripts}; size={args.size}, "
                f"{args.rounds} rounds, anchors: {args.anchors}; {os.cpu_count()} cores, "
                f"{time.strftime('%Y-%m-%d %H:%M')}"
            ),
            "runs": [],
        }
        print(saved["header"], file=sys.stderr)
        try:
            _measure(args, names, revs, scripts, out, saved)
        except RunFailed as exc:
            print(f"\nstopped: {exc}\n(logs in {out})", file=sys.stderr)
            return 2
    return _report(args, names, saved, out)


def _measure(
    args: argparse.Namespace,
    names: list[str],
    revs: dict[str, Revision],
    scripts: Path,
    out: Path,
    saved: dict[str, Any],
) -> None:
    """Warm every revision up, then run the rounds; each run is added to ``runs.json``."""
    started = time.perf_counter()

    def one(name: str, rev: Revision, size: str, anchors: bool, tag: str) -> None:
        bench = BENCHES[name]
        argv = bench.argv(size, args.data)
        if not anchors and bench.anchors:
            argv += ["--skip", *bench.anchors]
        path = out / f"{name}_{rev.label}_{tag}"
        rows, seconds = _run(rev, scripts, bench, argv, path, args.run_timeout)
        run = {"bench": name, "rev": rev.label, "tag": tag, "seconds": seconds, "rows": rows}
        saved["runs"].append(run)
        (out / "runs.json").write_text(json.dumps(saved, indent=1), encoding="utf-8")
        total = (time.perf_counter() - started) / 60
        print(
            f"  {name} {rev.label} {tag}: {seconds:.0f} s (total {total:.1f} min)", file=sys.stderr
        )

    print("warm-up (smoke size, not measured):", file=sys.stderr)
    for name in names:
        for label in ("base", "head"):
            one(name, revs[label], "smoke", False, "warmup")
    for r in range(args.rounds):
        order = ("base", "head") if r % 2 == 0 else ("head", "base")
        anchors = args.anchors == "all" or (args.anchors == "first" and r == 0)
        print(f"round {r + 1} of {args.rounds} ({order[0]} first):", file=sys.stderr)
        for name in names:
            for label in order:
                one(name, revs[label], args.size, anchors, f"r{r + 1}")


def _report(
    args: argparse.Namespace, names: list[str], saved: dict[str, Any], out: Path | None
) -> int:
    """Print the median tables and the comparison (and save them in ``out``); the exit status."""
    runs: Runs = {name: {"base": [], "head": []} for name in names}
    for run in saved["runs"]:
        if run["tag"] != "warmup" and run["bench"] in runs:
            runs[run["bench"]][run["rev"]].append(run["rows"])
    parts = [f"# benchmarks, base vs head\n\n{saved['header']}\n"]
    failed = False
    for name in names:
        bench, base, head = BENCHES[name], runs[name]["base"], runs[name]["head"]
        for label, label_runs in (("base", base), ("head", head)):
            table = markdown(list(_median_rows(bench, label_runs).values()))
            parts.append(f"## {name}: {label}, median of {len(label_runs)} runs\n\n{table}")
        comparison = _comparison(bench, base, head, args.threshold)
        failed |= not comparison or any(row["verdict"] == "FAIL" for row in comparison)
        parts.append(f"## {name}: head/base (threshold {args.threshold})\n\n{markdown(comparison)}")
    verdict = "FAIL" if failed else "PASS"
    parts.append(f"**{verdict}**: every cas_xr row at most {args.threshold}x base: {not failed}\n")
    report = "\n".join(parts)
    print(report)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "report.md").write_text(report, encoding="utf-8")
        print(f"(report, rows and logs in {out})", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
