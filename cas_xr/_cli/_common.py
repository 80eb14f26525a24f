"""What every command shares: the usage error and the documented exit statuses."""

from __future__ import annotations

__all__ = [
    "EXIT_ALL_MISSING",
    "EXIT_ERROR",
    "EXIT_OK",
    "EXIT_SOME_MISSING",
    "EXIT_USAGE",
    "UsageError",
]

#: Every result has a value (``--strict``: every result is GOOD).
EXIT_OK = 0
#: A run-time failure of the whole command.
EXIT_ERROR = 1
#: Invalid arguments or input (files, geometries, dataset ids, outputs).
EXIT_USAGE = 2
#: Some results are MISSING or DEGRADED (``--strict``: some are not GOOD).
EXIT_SOME_MISSING = 3
#: Every result is MISSING.
EXIT_ALL_MISSING = 4


class UsageError(Exception):
    """Bad command-line input (exit status 2)."""
