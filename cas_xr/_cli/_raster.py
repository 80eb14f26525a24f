"""``cas-xr raster``: a dataset's cells inside a box, as a GeoTIFF (or Zarr), in-process."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cas_xr._cli._common import EXIT_OK, UsageError

__all__ = ["add_raster"]

_RESAMPLING = ("nearest", "bilinear", "cubic", "average")


def _run(args: argparse.Namespace) -> int:
    import cas_xr as cas

    output: Path = args.output
    if not output.name or (output.is_dir() and output.suffix.lower() != ".zarr"):
        raise UsageError(f"--output {str(output)!r} is a folder; give a file name such as dem.tif")
    try:
        result = cas.extract_raster_sync(
            args.dataset_id,
            tuple(args.bbox),
            output.parent,
            filename=output.name,
            target_resolution=args.resolution,
            target_crs=args.crs,
            resampling=args.resampling,
            time_range=args.time_range,
            format=args.format,
            overwrite=args.overwrite,
        )
    except PermissionError as err:
        raise UsageError(str(err)) from None
    print(result.model_dump_json(indent=2))
    rows, cols = result.shape
    print(f"wrote {result.path}: {rows} x {cols} cells in {result.crs}", file=sys.stderr)
    times = result.provenance.get("times")
    if times and args.time_range is None:
        print(
            f"note: {args.dataset_id} is temporal; without --time-range the raster holds its "
            f"latest step only ({times[-1]})",
            file=sys.stderr,
        )
    return EXIT_OK


def add_raster(
    sub: argparse._SubParsersAction[Any],
    common: argparse.ArgumentParser,
    *,
    time_range: Callable[[str], Any],
) -> None:
    """Add the ``raster`` command.

    Parameters
    ----------
    sub
        The sub-command parsers.
    common
        The parser of the options every command has.
    time_range
        The argparse ``type`` of ``--time-range``.
    """
    p = sub.add_parser(
        "raster",
        parents=[common],
        help="a dataset's cells inside a box, as a Cloud-Optimized GeoTIFF (or Zarr)",
        description=(
            "Writes the cells of DATASET_ID inside the lon/lat box as cas_xr.extract_raster "
            "does: native grid and CRS unless asked otherwise, tiles mosaicked, written "
            "atomically. Prints the RasterResult as JSON."
        ),
    )
    p.add_argument("dataset_id", metavar="DATASET_ID", help="e.g. sample:elevation")
    p.add_argument(
        "--bbox",
        nargs=4,
        type=float,
        required=True,
        metavar=("MIN_LON", "MIN_LAT", "MAX_LON", "MAX_LAT"),
        help="the box, in degrees",
    )
    p.add_argument(
        "-o",
        "--output",
        type=Path,
        required=True,
        metavar="PATH",
        help="the file to write (.tif, or .zarr); its folder is created",
    )
    p.add_argument("--resolution", type=float, help="cell size in the output CRS's units")
    p.add_argument("--crs", help="output CRS (default: the dataset's own)")
    p.add_argument(
        "--resampling", default="nearest", choices=_RESAMPLING, help="(default: nearest)"
    )
    p.add_argument(
        "--time-range",
        type=time_range,
        metavar="START/END",
        help="temporal datasets: one band per step in range (default: the latest step only)",
    )
    p.add_argument(
        "--format", choices=("geotiff", "zarr"), help="default: from the suffix, else geotiff"
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing file")
    p.set_defaults(run=_run)
