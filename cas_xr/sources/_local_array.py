"""The Zarr and NetCDF half of :class:`~cas_xr.sources.LocalSource`.

Zarr stores and NetCDF files are opened by xarray (NetCDF with the ``h5netcdf`` engine
unless the ``engine`` option names another), remote ones through fsspec with
``storage_options``; values are kept as stored (no mask, no scale). A Zarr store at an
HTTP(S) URL without ``storage_options`` is read through cas_xr's HTTP layer instead
(:mod:`cas_xr.sources._zarr_store`: per-host cap, retries, deadline), and with the
store's own chunks each window is read by batchable tasks
(:mod:`cas_xr.sources._zarr_reads`): the chunks a computation needs are fetched together.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import numpy as np
from affine import Affine

from cas_xr.config import get_settings
from cas_xr.errors import MissingDependencyError
from cas_xr.sources._local_options import NOT_FOUND, is_url
from cas_xr.sources._opened import frozen, opened

if TYPE_CHECKING:
    import dask.array
    import xarray as xr

    from cas_xr.models import TimeRange
    from cas_xr.sources._local import LocalSource
    from cas_xr.sources._zarr_store import HttpStore

__all__ = ["open_array"]

_ENGINE_PACKAGES = {"h5netcdf": "h5netcdf h5py", "netcdf4": "netCDF4", "scipy": "scipy"}
_DIMS = {"latitude": "y", "longitude": "x", "lat": "y", "lon": "x"}


def _http_store(source: LocalSource) -> HttpStore | None:
    """The store of a Zarr at an HTTP(S) URL read through cas_xr's HTTP layer, or None.

    None for local stores, other protocols (``s3://``...), stores given
    ``storage_options`` (headers, credentials) and zarr 2: fsspec reads those.
    """
    if source.file_format != "zarr" or source.storage_options:
        return None
    if urlsplit(source.path).scheme not in ("http", "https"):
        return None
    try:
        from cas_xr.sources._zarr_store import HttpStore
    except ImportError:  # zarr 2 has no async stores: fsspec reads it
        return None

    return HttpStore(source.path, provider=source.provider)


def _open_store(
    source: LocalSource, *, native_chunks: bool, store: HttpStore | None = None
) -> xr.Dataset:
    import xarray as xr

    remote = is_url(source.path)
    if not remote and not Path(source.path).exists():
        raise source._error(NOT_FOUND, kind="not_found")
    if source.file_format == "netcdf" and source.engine not in xr.backends.list_engines():
        raise MissingDependencyError(
            f"reading NetCDF with engine {source.engine!r} needs its package: "
            f"pip install {_ENGINE_PACKAGES[source.engine]} (or set the dataset option 'engine')"
        )
    common: dict[str, Any] = {"mask_and_scale": False, "decode_coords": "all"}
    try:
        if source.file_format == "zarr":
            return xr.open_zarr(
                source.path if store is None else store,
                chunks={} if native_chunks else None,
                consolidated=source.consolidated,
                storage_options=dict(source.storage_options) if remote and store is None else None,
                **common,
            )
        target: Any = source.path
        if remote:
            import fsspec

            target = fsspec.open(source.path, mode="rb", **source.storage_options).open()
        return xr.open_dataset(target, engine=source.engine, chunks=None, cache=False, **common)
    except FileNotFoundError as err:
        raise source._error(f"not found: {err}", kind="not_found") from err
    except ImportError as err:  # fsspec names the package of a remote protocol
        raise MissingDependencyError(f"reading {source.path} needs a package: {err}") from err
    except (OSError, ValueError, KeyError) as err:
        raise source._error(
            f"cannot read {source.file_format} (corrupt or truncated?): {err}", kind="read"
        ) from err


def _variable(source: LocalSource, ds: xr.Dataset) -> xr.DataArray:
    if source.array is not None:
        if source.array not in ds.data_vars:
            raise source._error(
                f"variable {source.array!r} is not in the data; its variables are "
                f"{sorted(map(str, ds.data_vars))}",
                kind="definition",
            )
        return ds[source.array]
    gridded = [
        name
        for name, var in ds.data_vars.items()
        if {_DIMS.get(str(d), str(d)) for d in var.dims} >= {"y", "x"}
    ]
    if len(gridded) != 1:
        raise source._error(
            f"cannot choose a variable among {sorted(map(str, gridded))}; set the dataset's "
            "'array'",
            kind="definition",
        )
    return ds[gridded[0]]


@dataclass(frozen=True)
class _Opened:
    """The variable of a store as opened (kept across calls): every box is cut from it.

    ``da`` has dims renamed to ``y``/``x`` (last), extra dims of one step dropped and its
    CRS written (``rio.write_crs``, under the grid mapping ``grid_mapping``); ``token``
    names this open in the Dask keys of what is cut from it. ``chunks`` reads windows of
    a remote Zarr array by batchable tasks (None: xarray's graph is cut).
    """

    da: xr.DataArray
    crs: Any
    transform: Affine
    nodata: float | None
    grid_mapping: str
    token: str
    chunks: _ChunkReads | None = None


@dataclass(frozen=True)
class _ChunkReads:
    """A remote Zarr variable's array, and its axes as named in the opened ``da``.

    ``axes`` are the array's dims renamed (``y``, ``x``); those not in ``da`` were
    dropped (one step); the last two are ``y`` and ``x``, in either order.
    """

    array: Any  # zarr.AsyncArray
    axes: tuple[str, ...]

    def window(
        self, whole: xr.DataArray, da: xr.DataArray, rows: slice, cols: slice, token: str
    ) -> dask.array.Array | None:
        """The cells of ``da`` by chunk, or None when its time steps are not in a row.

        ``da`` is cut from the opened variable ``whole`` at ``rows, cols`` and maybe some
        of its time steps.
        """
        from cas_xr.sources._zarr_reads import window_array

        at = {"y": rows, "x": cols}
        if "time" in da.dims and da.sizes["time"] != whole.sizes["time"]:  # some steps
            steps = whole.indexes["time"].get_indexer(da.indexes["time"])
            first = int(steps[0])
            if not np.array_equal(steps, np.arange(first, first + len(steps))):
                return None
            at["time"] = slice(first, first + len(steps))
        window = [at.get(d, slice(0, da.sizes[d])) if d in da.dims else 0 for d in self.axes]
        data = window_array(self.array, window, f"cas-zarr-{token}")
        kept = [d for d in self.axes if d in da.dims]
        order = [kept.index(str(d)) for d in da.dims]
        return data if order == sorted(order) else data.transpose(order)


def _chunk_reads(store: HttpStore, source: LocalSource, raw: xr.DataArray) -> _ChunkReads | None:
    """How to read windows of the variable ``raw`` of ``store`` by chunk, or None.

    None when xarray decodes what it reads (its dtype is not the store's) or the last
    two dims are not the grid's (xarray's graph reads it then).
    """
    import zarr

    axes = tuple(_DIMS.get(str(d), str(d)) for d in raw.dims)
    if set(axes[-2:]) != {"y", "x"}:
        return None
    group = zarr.open_group(store, mode="r", use_consolidated=source.consolidated)
    array = group[str(raw.name)]
    if not isinstance(array, zarr.Array) or array.dtype != raw.dtype:
        return None
    return _ChunkReads(array.async_array, axes)


def _open_variable(source: LocalSource, *, native_chunks: bool) -> _Opened:
    """Open the store and find its variable on a y/x grid (what does not depend on the box)."""
    import uuid

    import rioxarray  # noqa: F401  (registers .rio)

    store = _http_store(source)
    da = _variable(source, _open_store(source, native_chunks=native_chunks, store=store))
    chunks = _chunk_reads(store, source, da) if store is not None and native_chunks else None
    da = da.rename({d: _DIMS[str(d)] for d in da.dims if str(d) in _DIMS})
    if not {"y", "x"} <= set(da.dims):
        raise source._error(
            f"{da.name!r} has dims {tuple(map(str, da.dims))}; it needs y/x (or lat/lon, "
            "latitude/longitude) dimensions",
            kind="definition",
        )
    crs = da.rio.crs or source._fallback_crs()
    extra = [d for d in da.dims if d not in ("time", "y", "x")]
    if any(da.sizes[d] > 1 for d in extra):
        raise source._error(
            f"{da.name!r} has extra dimensions {extra}; only time, y and x are read",
            kind="definition",
        )
    if "time" in da.dims and da.sizes["time"] == 1 and not source.temporal:
        extra.append("time")
    da = da.squeeze(extra, drop=True).transpose(..., "y", "x")
    transform = da.rio.transform(recalc=True)
    nodata = da.attrs.get("_FillValue", da.attrs.get("missing_value"))
    da = da.rio.write_crs(crs, inplace=True)  # this open's own DataArray
    da.attrs.pop("transform", None)  # as rio.write_transform drops it
    return _Opened(
        da=da,
        crs=crs,
        transform=transform,
        nodata=None if nodata is None else float(nodata),
        grid_mapping=da.rio.grid_mapping,
        token=uuid.uuid4().hex,
        chunks=chunks,
    )


def open_array(
    source: LocalSource,
    bbox: tuple[float, float, float, float] | None,
    time_range: TimeRange | None,
    chunks: int | None,
) -> xr.DataArray:
    """The variable of a Zarr store or NetCDF file covering ``bbox`` and ``time_range``.

    Dims are renamed to ``y``/``x`` (from lat/lon or latitude/longitude), a ``time`` of
    one step is dropped for static datasets, and the data are rechunked to ``chunks``
    (a Zarr store keeps its own chunks when ``chunks`` is None). The store is opened
    once per process while its files are unchanged (:mod:`cas_xr.sources._opened`); each
    call cuts its box from it and labels it as ``rio.write_crs(...).rio.write_transform``
    would.
    """
    native_chunks = source.file_format == "zarr" and chunks is None  # keep the store's chunks
    layer = opened(
        ("array", frozen(source), native_chunks),
        lambda: _open_variable(source, native_chunks=native_chunks),
        paths=(source.path,),
    )
    da = layer.da
    steps: Any = None
    if time_range is not None and "time" in da.dims:
        steps = slice(_naive_utc(time_range.start), _naive_utc(time_range.end))
        da = da.sel(time=steps)
        if da.sizes["time"] == 0:
            raise source._error(
                f"no time step in {time_range.start.isoformat()}..{time_range.end.isoformat()}",
                kind="no_data",
            )
    transform = layer.transform
    rows, cols = source._window(transform, (da.sizes["y"], da.sizes["x"]), layer.crs, bbox)
    da = da.isel(y=rows, x=cols)
    if layer.chunks is not None:  # a remote Zarr's chunks: read by batchable tasks
        data = layer.chunks.window(layer.da, da, rows, cols, f"{layer.token}-{rows}-{cols}-{steps}")
        da = da if data is None else da.copy(data=data)
    if not native_chunks:
        size = chunks or get_settings().chunk_size
        token = f"{layer.token}-{rows}-{cols}-{steps}"  # not a hash of the file's arrays
        da = da.chunk(
            {"y": size, "x": size, **({"time": 1} if "time" in da.dims else {})}, token=token
        )
    # this call's own labels (the kept open's stay as they are); the transform is written,
    # not left to be recomputed: one row or column of coordinates has no spacing
    da = da.copy(deep=False)
    window = transform * Affine.translation(cols.start, rows.start)
    da[layer.grid_mapping].attrs["GeoTransform"] = " ".join(map(str, window.to_gdal()))
    return source._with_nodata(da, layer.nodata)


def _naive_utc(value: Any) -> Any:
    return value if value.tzinfo is None else value.astimezone(UTC).replace(tzinfo=None)
