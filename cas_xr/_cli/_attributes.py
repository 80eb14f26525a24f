"""``cas-xr attributes``: an attribute set for geometries, as a table with units.

A view of :func:`cas_xr.extract_attributes`: the geometries are read as ``extract`` reads
them; the table is printed with one row per attribute (its units, then one value per
geometry, ``*`` marking a value that is not GOOD) and written with ``--output`` in the
formats of ``extract`` (GeoParquet keeps the units in its metadata).
"""

from __future__ import annotations

import argparse
import math
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cas_xr._cli._common import UsageError
from cas_xr._cli._output import add_table_options, output_format, writing
from cas_xr._cli._status import exit_status, quality_counts

if TYPE_CHECKING:
    import geopandas as gpd

__all__ = ["add_attributes", "format_table"]

_DIGITS = 4


def _cell(value: Any, flag: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        text = "-"
    elif isinstance(value, float):
        text = f"{value:.{_DIGITS}g}"
    else:
        text = str(value)
    return text if flag == "good" else f"{text}*"


def format_table(table: gpd.GeoDataFrame, labels: Sequence[str]) -> list[str]:
    """Lines of the terminal view: attribute, units, then one column per geometry.

    Parameters
    ----------
    table
        The result of :func:`cas_xr.extract_attributes`.
    labels
        How the geometries are named (the ``id`` column, else ``#position``).
    """
    units = table.attrs["cas_xr"]["units"]
    rows = [["attribute", "units", *labels]]
    for name, unit in units.items():
        flags = table[f"{name}_quality"].astype(str).tolist()
        values = table[name].tolist()
        rows.append([name, unit, *(_cell(v, f) for v, f in zip(values, flags, strict=True))])
    widths = [max(len(row[k]) for row in rows) for k in range(len(rows[0]))]
    rows.insert(1, ["-" * w for w in widths])
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    notes = []
    for k, label in enumerate(labels):
        flagged = {
            name: str(table[f"{name}_quality"].iloc[k])
            for name in units
            if str(table[f"{name}_quality"].iloc[k]) != "good"
        }
        by_flag: dict[str, list[str]] = {}
        for name, flag in flagged.items():
            by_flag.setdefault(flag, []).append(name)
        for flag, names in by_flag.items():
            which = "all attributes" if len(names) == len(units) else ", ".join(names)
            notes.append(f"  {label}: {flag}: {which}")
    if notes:
        lines += ["* not GOOD:", *notes]
    return lines


def _run(
    args: argparse.Namespace,
    read_geometries: Callable[[str, str | None], Any],
    labels_of: Callable[[Any], list[str]],
    write_table: Callable[[Any, str, Path | None], None],
) -> int:
    import cas_xr as cas
    from cas_xr.errors import CasWarning

    fmt = output_format(args.format, args.output) if args.output or args.format else None
    frame = read_geometries(args.geometry, args.geometry_crs)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CasWarning)
        try:
            table = cas.extract_attributes(frame, args.set, time_range=args.time_range)
        except KeyError as err:
            raise UsageError(str(err.args[0]) if err.args else str(err)) from None
    notes = [str(w.message).splitlines()[0] for w in caught if issubclass(w.category, CasWarning)]
    if notes:
        print(f"warnings ({len(notes)}):", *(f"  {n}" for n in notes), sep="\n", file=sys.stderr)
    if fmt is not None:
        with writing(args.output):
            write_table(table, fmt, args.output)
    if args.output is not None:
        print(f"wrote {fmt} to {args.output}", file=sys.stderr)
    if fmt is None or args.output is not None:
        name = table.attrs["cas_xr"]["attribute_set"]
        print(f"attribute set {name!r}, {len(table)} geometries")
        print("\n".join(format_table(table, labels_of(frame))), flush=True)
    counts = quality_counts(table, table.attrs["cas_xr"]["units"])
    return exit_status(counts, strict=args.strict)


def add_attributes(
    sub: argparse._SubParsersAction[Any],
    common: argparse.ArgumentParser,
    *,
    time_range: Callable[[str], Any],
    read_geometries: Callable[[str, str | None], Any],
    labels_of: Callable[[Any], list[str]],
    write_table: Callable[[Any, str, Path | None], None],
) -> None:
    """Add the ``attributes`` command.

    Parameters
    ----------
    sub
        The sub-command parsers.
    common
        The parser of the options every command has.
    time_range
        The argparse ``type`` of ``--time-range``.
    read_geometries, labels_of, write_table
        How ``extract`` reads geometries, names them, and writes a table.
    """
    p = sub.add_parser(
        "attributes",
        parents=[common],
        help="an attribute set (e.g. camels, sample) for geometries, as a table with units",
        description=(
            "Computes an attribute set for the geometries as cas_xr.extract_attributes does: "
            "one row per geometry, one column per attribute and a <attribute>_quality "
            "column each. Prints the attributes with their units (* marks values that are "
            "not GOOD); --output writes the table (GeoParquet keeps the units in its "
            "metadata)."
        ),
    )
    p.add_argument(
        "geometry",
        metavar="GEOMETRY",
        help="a vector file (GeoJSON, GeoPackage, Shapefile, GeoParquet...), @file, or "
        "inline GeoJSON",
    )
    p.add_argument(
        "--set",
        required=True,
        metavar="NAME_OR_FILE",
        help="an attribute set: a name (camels, sample, or one a plugin registers) or a YAML file",
    )
    p.add_argument(
        "--time-range",
        type=time_range,
        metavar="START/END",
        help="the days to use instead of the set's time range (attributes with their own keep it)",
    )
    add_table_options(
        p,
        format_help="write this format (default: from the --output suffix); without "
        "--output, to stdout instead of the printed table",
        output_help="write the table here",
        strict_help="exit with status 3 when any attribute is not GOOD (partial, suspect... too)",
    )
    p.set_defaults(run=lambda args: _run(args, read_geometries, labels_of, write_table))
