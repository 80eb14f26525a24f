"""``open_dataset``: a catalog dataset as a lazy, Dask-backed DataArray."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from cas_xr.catalog import resolve
from cas_xr.errors import ArgumentTypeError, InvalidArgumentError
from cas_xr.models import BoundingBox, TimeRange, validated

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["open_dataset"]


def open_dataset(
    dataset_id: str,
    *,
    bbox: BoundingBox | Sequence[float] | Mapping[str, float] | None = None,
    time_range: TimeRange | Sequence[datetime | str] | Mapping[str, datetime | str] | None = None,
    chunks: int | None = None,
) -> xr.DataArray:
    """Open a dataset of the catalog lazily, on its native grid and CRS.

    Parameters
    ----------
    dataset_id
        ``"provider:name"``, e.g. ``"sample:elevation"`` (see ``cas-xr datasets``).
    bbox
        Longitude/latitude box ``(min_lon, min_lat, max_lon, max_lat)`` (a
        :class:`~cas_xr.models.BoundingBox`, a 4-sequence or a mapping); the data are
        clipped to it, snapped outward to whole cells. None for the whole dataset.
    time_range
        ``(start, end)`` (a :class:`~cas_xr.models.TimeRange`, a 2-sequence or a mapping);
        temporal datasets keep the steps inside it. Ignored by static datasets.
    chunks
        Dask chunk size in cells along ``y`` and ``x`` (default: the ``chunk_size``
        setting; Zarr stores keep their own chunks unless this is given).

    Returns
    -------
    xarray.DataArray
        Named after the dataset's first variable, dims ``(y, x)`` or ``(time, y, x)``,
        Dask-backed (nothing is read before ``.compute()``), with the CRS readable by
        rioxarray and odc-geo and attrs ``nodata``, ``units``, ``valid_range``,
        ``license``, ``citation``, ``class_names`` (categorical data) and
        ``cas_provenance`` (and, where it lists items, files or tiles,
        ``cas_footprints``: where each lies, for the engine); sources that survive lost
        chunks (WCS) add ``cas_failed_chunks`` (one element per chunk: None, or the
        error of a chunk read as nodata). Values are as stored: nodata is not masked and no scale is
        applied (the variable's ``scale``/``offset`` are in the catalog metadata).

    Raises
    ------
    InvalidDatasetIdError
        If ``dataset_id`` is not of the form ``provider:name``.
    UnknownProviderError, UnknownDatasetError
        If the catalog does not know the provider or the dataset.
    pydantic.ValidationError
        If ``bbox`` or ``time_range`` is invalid (a ``ValueError``).
    SourceError
        If the data cannot be opened (missing file, unreachable server, nothing in the box).

    Examples
    --------
    >>> import cas_xr as cas
    >>> da = cas.open_dataset("sample:elevation", bbox=(-96.6, 38.9, -96.4, 39.1))
    >>> da.dims, da.attrs["units"]
    (('y', 'x'), 'm')
    """
    if chunks is not None and (isinstance(chunks, bool) or not isinstance(chunks, int)):
        raise ArgumentTypeError(f"chunks must be a number of cells (int) or None, got {chunks!r}")
    if chunks is not None and chunks < 1:
        raise InvalidArgumentError(f"chunks must be a positive number of cells, got {chunks}")
    connector, name = resolve(dataset_id)
    box = None if bbox is None else validated(BoundingBox, bbox)
    period = None if time_range is None else validated(TimeRange, time_range)
    return connector.open(
        name,
        bbox=None if box is None else box.as_tuple(),
        time_range=period,
        chunks=chunks,
    )
