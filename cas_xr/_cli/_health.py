"""``cas-xr health``: each provider's test read (:func:`cas_xr.check_providers`) as a table."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from cas_xr._cli._common import EXIT_ALL_MISSING, EXIT_OK, EXIT_SOME_MISSING

if TYPE_CHECKING:
    from cas_xr.models import HealthCheckResult

__all__ = ["add_health", "health_status"]

_NO_ANSWER = ("down", "auth_gated")
_FINE = ("healthy", "unknown")


def health_status(results: Sequence[HealthCheckResult]) -> int:
    """0 when every provider is healthy (or has no test), 3 when some are not, 4 when none answered.

    Parameters
    ----------
    results
        The checks (:func:`cas_xr.check_providers`).
    """
    statuses = [r.status.value for r in results]
    tested = [s for s in statuses if s != "unknown"]
    if tested and all(s in _NO_ANSWER for s in tested):
        return EXIT_ALL_MISSING
    return EXIT_OK if all(s in _FINE for s in statuses) else EXIT_SOME_MISSING


def _cell(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _row(result: HealthCheckResult) -> list[str]:
    expected = result.expected_range
    return [
        result.provider,
        result.status.value,
        _cell(result.response_time_ms, ".0f"),
        _cell(result.test_value, ".6g"),
        "-" if expected is None else f"{expected[0]:g}..{expected[1]:g}",
        str(result.datasets_available),
        (result.error or "").replace("\n", " ")[:120],
    ]


def _run(args: argparse.Namespace, print_table: Callable[..., None]) -> int:
    import cas_xr as cas

    results = cas.check_providers_sync(args.provider)
    if args.json:
        print(json.dumps([r.model_dump(mode="json") for r in results], indent=2))
    else:
        header = ("provider", "status", "ms", "value", "expected", "datasets", "error")
        print_table(header, (_row(r) for r in results))
    return health_status(results)


def add_health(
    sub: argparse._SubParsersAction[Any],
    common: argparse.ArgumentParser,
    *,
    print_table: Callable[..., None],
) -> None:
    """Add the ``health`` command.

    Parameters
    ----------
    sub
        The sub-command parsers.
    common
        The parser of the options every command has.
    print_table
        How the command line prints a table (header, rows).
    """
    p = sub.add_parser(
        "health",
        parents=[common],
        help="check the providers: read each one's test geometry",
        description=(
            "Reads each provider's test geometry (the 'health' block of its definition) as "
            "cas_xr.check_providers does, and prints one row per provider: healthy, "
            "degraded (slower than health_slow_ms, or a value outside the expected range), "
            "down, auth_gated (HTTP 401/403) or unknown (no test geometry). Exit status: "
            "0 every provider healthy or unknown; 3 some degraded, down or auth_gated; "
            "4 no tested provider answered."
        ),
    )
    p.add_argument(
        "--provider",
        action="append",
        metavar="SLUG",
        help="only this provider (repeat for several; default: every provider)",
    )
    p.add_argument("--json", action="store_true", help="the HealthCheckResult list as JSON")
    p.set_defaults(run=lambda args: _run(args, print_table))
