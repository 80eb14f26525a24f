"""Where ``cas-xr extract`` writes, and in which format: refused before any work if wrong."""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cas_xr._cli._common import UsageError

__all__ = ["FORMATS", "SUFFIX_FORMATS", "output_format", "writing"]

FORMATS = ("json", "geojson", "csv", "parquet")
SUFFIX_FORMATS = {
    ".json": "json",
    ".geojson": "geojson",
    ".csv": "csv",
    ".parquet": "parquet",
    ".geoparquet": "parquet",
}


def add_table_options(
    parser: argparse.ArgumentParser, *, format_help: str, output_help: str, strict_help: str
) -> None:
    """Add ``--geometry-crs``, ``--format``, ``-o/--output`` and ``--strict`` to ``parser``.

    The options of the commands that read geometries and write a table (``extract``,
    ``attributes``); the help texts say what each command writes.

    Parameters
    ----------
    parser
        The command's parser.
    format_help, output_help, strict_help
        The help of ``--format``, ``--output`` and ``--strict``.
    """
    parser.add_argument(
        "--geometry-crs",
        help="the CRS of GeoJSON coordinates (default: EPSG:4326); other files are read in "
        "the CRS they declare",
    )
    parser.add_argument("--format", choices=FORMATS, help=format_help)
    parser.add_argument("-o", "--output", type=Path, metavar="PATH", help=output_help)
    parser.add_argument("--strict", action="store_true", help=strict_help)


def _check_writable(output: Path) -> None:
    name = str(output)
    if not output.parent.is_dir():
        raise UsageError(
            f"cannot write {name!r}: the directory {str(output.parent)!r} does not exist"
        )
    writable = os.access(output, os.W_OK) if output.exists() else os.access(output.parent, os.W_OK)
    if not writable:
        raise UsageError(f"cannot write {name!r}: permission denied; choose a writable place")


def output_format(fmt: str | None, output: Path | None) -> str:
    """The format to write (``--format``, else from ``output``'s suffix, else json).

    Parameters
    ----------
    fmt
        ``--format``, or None.
    output
        ``--output``, or None for standard output.

    Raises
    ------
    UsageError
        For a suffix that names no format, parquet to standard output, or an output
        that cannot be written (checked before any work).
    """
    if output is not None and output.is_dir():
        raise UsageError(f"cannot write {str(output)!r}: it is a folder; give a file name")
    if fmt is None and output is not None:
        fmt = SUFFIX_FORMATS.get(output.suffix.lower())
        if fmt is None:
            suffixes = ", ".join(SUFFIX_FORMATS)
            raise UsageError(
                f"cannot tell the format of {str(output)!r} from its suffix "
                f"{output.suffix or '(none)'!r}: use {suffixes}, or give --format"
            )
    if fmt == "parquet" and output is None:
        raise UsageError("--format parquet writes a file: give --output PATH")
    if output is not None:
        _check_writable(output)
    return fmt or "json"


@contextmanager
def writing(output: Path | None) -> Iterator[None]:
    """Turn a failure to write ``output`` into a :class:`UsageError` that names it."""
    try:
        yield
    except BrokenPipeError:
        raise
    except OSError as err:
        if output is None:
            raise
        raise UsageError(f"cannot write {str(output)!r}: {err.strerror or err}") from None
