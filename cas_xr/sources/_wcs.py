"""An OGC WCS (2.0.1 or 1.0.0) coverage opened lazily: GetCoverage requests of the chunks used.

The coverage's grid comes from DescribeCoverage, checked (and its dtype and nodata
learned) with one small GetCoverage of its corner; both are cached for
``metadata_cache_ttl_s``. ``open()`` snaps the box outward onto that grid and cuts it into
Dask chunks of 128 cells a side. A chunk is fetched only when a computation needs it, with
a request for exactly its cells, checked to be on the asked grid; computed through
:func:`~cas_xr.zonal._reads.compute`, the cells needed are fetched together, in few
rectangles of at most ``tile_size`` cells a side that read little else (see
:func:`~cas_xr.zonal._cover.cover`), several requests in flight.
A tile the server still answers with an HTTP error after the retries becomes nodata and
is reported in ``attrs["cas_failed_chunks"]`` (see :mod:`cas_xr.sources._wcs_tiles`).
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyproj
from affine import Affine

from cas_xr.config import SettingsBoundCache
from cas_xr.errors import ConfigurationError, ProviderDefinitionError, SourceError
from cas_xr.sources._footprints import FOOTPRINTS, Footprint
from cas_xr.sources._grid import lonlat_bounds_to_crs, snap_bounds
from cas_xr.sources._wcs_describe import CoverageGrid, parse_describe
from cas_xr.sources._wcs_io import Tile, check_tile, get_geotiff, get_xml
from cas_xr.sources._wcs_options import WcsOptions, check_options
from cas_xr.sources._wcs_tiles import TileReader, tile_arrays

if TYPE_CHECKING:
    import xarray as xr

    from cas_xr.models import TimeRange
    from cas_xr.sources._definitions import DatasetDefinition, ProviderDefinition

__all__ = ["DescribedCoverage", "WcsOptions", "WcsSource", "from_definition"]

_PROBE_CELLS = 2  # the corner request that checks the described grid (2 avoids 1-cell quirks)


def _num(value: float) -> str:
    return format(value, ".15g")


#: Chunk side (cells) of a coverage's Dask array: what a computation that needs a chunk
#: requests, merged with its neighbours up to ``tile_size``.
_BLOCK = 128


def _lengths(n: int, size: int) -> tuple[int, ...]:
    """Chunk lengths of ``n`` cells in chunks of ``size`` (the last one shorter)."""
    return (size,) * (n // size) + ((n % size,) if n % size else ())


def _tiles(
    transform: Affine, blocks: tuple[tuple[int, ...], tuple[int, ...]], crs: str
) -> dict[str, Footprint]:
    """Where each chunk of a window lies, named by its bounds (another window's differ)."""
    t = transform
    rows = list(itertools.pairwise(itertools.accumulate(blocks[0], initial=0)))
    cols = list(itertools.pairwise(itertools.accumulate(blocks[1], initial=0)))
    out: dict[str, Footprint] = {}
    for (r0, r1), (c0, c1) in itertools.product(rows, cols):
        xs, ys = (t.c + c0 * t.a, t.c + c1 * t.a), (t.f + r0 * t.e, t.f + r1 * t.e)
        bounds = [min(xs), min(ys), max(xs), max(ys)]
        out[" ".join(_num(v) for v in bounds)] = [crs, *bounds]
    return out


@dataclass(frozen=True)
class DescribedCoverage:
    """What :meth:`WcsSource.describe` learns of a coverage.

    Attributes
    ----------
    grid
        The native grid, as described (and checked against a GetCoverage answer).
    crs
        The CRS for the output (``"EPSG:n"`` when it has an EPSG code, else WKT).
    dtype
        The dtype of the GeoTIFFs the server returns.
    nodata
        The ``nodata`` option, else the described nil value, else the GeoTIFFs' nodata.
    """

    grid: CoverageGrid
    crs: str
    dtype: str
    nodata: float | None


_COVERAGES: SettingsBoundCache[DescribedCoverage] = SettingsBoundCache(
    lambda s: (s.metadata_cache_ttl_s, 256)
)


@dataclass(frozen=True)
class WcsSource:
    """One band of one coverage of an OGC Web Coverage Service.

    Parameters
    ----------
    endpoint
        The service URL (it may carry a query, e.g. ``...?map=/maps/clay.map``).
    coverage
        Coverage id (2.0.1) or name (1.0.0).
    version
        ``"2.0.1"`` (default) or ``"1.0.0"``.
    tile_size
        At most this many cells per request side (16..8192).
    read_ratio
        The requests of one computation read at most this many cells per cell under the
        geometries' windows (1..100; default 1.2): the fewest rectangles within it (see
        :func:`~cas_xr.zonal._cover.cover`). Higher takes fewer, larger requests, for a
        server whose requests cost more than their cells.
    format
        Output format asked for; the answer must be a GeoTIFF.
    crs
        The coverage's CRS, overriding the server's description.
    nodata
        Nodata value, overriding the server's.
    params
        Extra query parameters of every request, as ``(name, value)`` pairs (e.g.
        ``(("map", "/map/clay.map"),)`` for a MapServer with one map per layer).
    band
        1-based band to read.
    provider
        Provider slug, for errors and provenance.
    temporal
        Whether the dataset has time steps (not supported by this source yet).

    Notes
    -----
    Cells are never resampled: every tile is asked for on the coverage's native grid and
    a tile on any other grid is an error (``kind="grid_mismatch"``).
    """

    endpoint: str
    coverage: str
    version: str = "2.0.1"
    tile_size: int = 1024
    read_ratio: float = 1.2
    format: str = "image/tiff"
    crs: str | None = None
    nodata: float | None = None
    params: tuple[tuple[str, str], ...] = ()
    band: int = 1
    provider: str = ""
    temporal: bool = False

    def __post_init__(self) -> None:
        options = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        options["params"] = dict(self.params)
        check_options({k: v for k, v in options.items() if k in WcsOptions.model_fields})
        if self.band < 1:
            raise ConfigurationError(f"band is 1-based, got {self.band}")

    def _request(self, operation: str, **params: Any) -> dict[str, Any]:
        key = "COVERAGEID" if self.version == "2.0.1" else "COVERAGE"
        return {
            **dict(self.params),
            "SERVICE": "WCS",
            "VERSION": self.version,
            "REQUEST": operation,
            key: self.coverage,
            **params,
        }

    def _tile(self, grid: CoverageGrid, transform: Affine, shape: tuple[int, int]) -> Tile:
        """GetCoverage of exactly the cells ``shape`` at ``transform``, checked."""
        (rows, cols), (x0, y1) = shape, (transform.c, transform.f)
        x1, y0 = x0 + cols * transform.a, y1 + rows * transform.e
        if self.version == "2.0.1":
            extent: dict[str, Any] = {
                "SUBSET": [f"{grid.x_label}({_num(x0)},{_num(x1)})",
                           f"{grid.y_label}({_num(y0)},{_num(y1)})"],
            }  # fmt: skip
        else:
            extent = {
                "CRS": grid.request_crs,
                "BBOX": ",".join(_num(v) for v in (x0, y0, x1, y1)),
                "WIDTH": cols,
                "HEIGHT": rows,
            }
        params = self._request("GetCoverage", FORMAT=self.format, **extent)
        tile = get_geotiff(self.endpoint, params, provider=self.provider, band=self.band)
        # a crs option is trusted: servers that need one often misdescribe their CRS everywhere
        crs = None if self.crs else grid.crs
        check_tile(tile, transform=transform, shape=shape, crs=crs, provider=self.provider)
        return tile

    def describe(self) -> DescribedCoverage:
        """The coverage's grid, CRS, dtype and nodata (cached for ``metadata_cache_ttl_s``).

        Raises
        ------
        SourceError
            ``wcs_exception`` (e.g. unknown coverage), ``bad_payload``, ``unsupported``
            (a grid this source cannot read) or ``grid_mismatch``.
        """
        cache = _COVERAGES.current()
        key = dataclasses.astuple(self)
        found = cache.get(key)
        if found is None:
            found = self._describe()
            cache.set(key, found)
        return found

    def _describe(self) -> DescribedCoverage:
        params = self._request("DescribeCoverage")
        name = "CoverageDescriptions" if self.version == "2.0.1" else "CoverageDescription"
        root = get_xml(self.endpoint, params, provider=self.provider, root=name)
        try:
            grid = parse_describe(
                root, coverage=self.coverage, version=self.version, band=self.band, crs=self.crs
            )
        except (LookupError, NotImplementedError, ValueError) as err:
            kind = "unsupported" if isinstance(err, NotImplementedError) else "bad_payload"
            raise SourceError(
                f"cannot use the description of coverage {self.coverage!r}: {err}",
                provider=self.provider,
                url=self.endpoint,
                kind=kind,
            ) from err
        crs = pyproj.CRS.from_user_input(grid.crs)
        probe = (min(_PROBE_CELLS, grid.shape[0]), min(_PROBE_CELLS, grid.shape[1]))
        tile = self._tile(grid, grid.transform, probe)
        nodata = next((v for v in (self.nodata, grid.nodata, tile.nodata) if v is not None), None)
        epsg = crs.to_epsg()
        return DescribedCoverage(
            grid, f"EPSG:{epsg}" if epsg else crs.to_wkt(), str(tile.data.dtype), nodata
        )

    def _window(
        self, grid: CoverageGrid, bbox: tuple[float, float, float, float] | None, crs: str
    ) -> tuple[Affine, tuple[int, int]]:
        """The cells of the grid covering ``bbox`` (lon/lat), snapped outward and clipped."""
        if bbox is None:
            return grid.transform, grid.shape
        g = grid.transform
        window, (rows, cols) = snap_bounds(g, lonlat_bounds_to_crs(bbox, crs))
        col0, row0 = round((window.c - g.c) / g.a), round((window.f - g.f) / g.e)
        c0, c1 = max(col0, 0), min(col0 + cols, grid.shape[1])
        r0, r1 = max(row0, 0), min(row0 + rows, grid.shape[0])
        if c1 <= c0 or r1 <= r0:
            rows_all, cols_all = grid.shape
            extent = (g.c, g.f + rows_all * g.e, g.c + cols_all * g.a, g.f)
            raise SourceError(
                f"bbox {bbox} does not intersect coverage {self.coverage!r} "
                f"(its extent in {crs}: {tuple(_num(v) for v in extent)})",
                provider=self.provider,
                url=self.endpoint,
                kind="no_data",
            )
        return g @ Affine.translation(c0, r0), (r1 - r0, c1 - c0)

    def open(
        self,
        *,
        bbox: tuple[float, float, float, float] | None = None,
        time_range: TimeRange | None = None,
        chunks: int | None = None,
    ) -> xr.DataArray:
        """Open the cells covering ``bbox``, lazily (see :class:`~cas_xr.sources.Source`).

        Parameters
        ----------
        bbox
            ``(min_lon, min_lat, max_lon, max_lat)``; None for the whole coverage.
        time_range
            Unused: static coverages have no time axis.
        chunks
            Chunk size in cells (default 128); never more than ``tile_size``. Only the
            chunks a computation needs are requested; neighbouring ones are requested
            together, up to ``tile_size`` cells a side (see :func:`~cas_xr.zonal._reads.compute`).

        Returns
        -------
        xarray.DataArray
            Dims ``(y, x)`` with cell-centre coords, CRS written, attrs ``nodata``,
            ``cas_provenance``, ``cas_footprints`` (where each chunk lies: a result
            counts the ``tiles`` its geometry touches) and ``cas_failed_chunks`` (one
            element per tile: None, or
            the :class:`~cas_xr.errors.SourceError` of a tile the server answered with an
            HTTP error after the retries, filled with nodata; NaN for float coverages
            without one).

        Raises
        ------
        SourceError
            As :meth:`describe`; ``kind="no_data"`` when ``bbox`` misses the coverage,
            ``kind="unsupported"`` for temporal datasets.
        """
        import rioxarray  # noqa: F401  (registers .rio)
        import xarray as xr
        from dask.base import tokenize
        from rioxarray.rioxarray import affine_to_coords

        if self.temporal:
            raise SourceError(
                "temporal WCS coverages are not supported yet (only static ones); serve the "
                "time steps as separate coverages or through STAC",
                provider=self.provider,
                url=self.endpoint,
                kind="unsupported",
            )
        coverage = self.describe()
        transform, (rows, cols) = self._window(coverage.grid, bbox, coverage.crs)
        size = min(chunks or _BLOCK, self.tile_size)
        blocks = (_lengths(rows, size), _lengths(cols, size))
        reader = TileReader(self, coverage, transform)
        data, failed = tile_arrays(
            reader, blocks, f"wcs-{self.coverage}-{tokenize(reader, blocks)}"
        )
        coords = affine_to_coords(transform, cols, rows)
        da = xr.DataArray(
            data,
            dims=("y", "x"),
            coords={"y": coords["y"], "x": coords["x"]},
            attrs={
                "nodata": coverage.nodata,
                "cas_failed_chunks": failed,
                "cas_provenance": {
                    "protocol": "wcs",
                    "endpoint": self.endpoint,
                    "coverage": self.coverage,
                    "version": self.version,
                    "tiles": len(blocks[0]) * len(blocks[1]),
                },
                FOOTPRINTS: {"tiles": _tiles(transform, blocks, coverage.crs)},
            },
        )
        return da.rio.write_crs(coverage.crs).rio.write_transform(transform)


def from_definition(provider: ProviderDefinition, dataset: DatasetDefinition) -> WcsSource:
    """The source of ``dataset`` of a ``wcs`` provider (catalog factory).

    Raises
    ------
    ProviderDefinitionError
        If the provider's or dataset's ``options`` are not valid WCS options.
    """
    try:
        options = check_options(provider.options_for(dataset))
    except ConfigurationError as err:
        raise ProviderDefinitionError(
            f"provider {provider.slug!r}, dataset {dataset.name!r}: {err}"
        ) from None
    return WcsSource(
        endpoint=provider.endpoint,
        coverage=dataset.coverage or dataset.name,
        provider=provider.slug,
        band=dataset.band,
        temporal=dataset.is_temporal,
        **options.model_dump(exclude={"params"}),
        params=tuple(sorted(options.params.items())),
    )
