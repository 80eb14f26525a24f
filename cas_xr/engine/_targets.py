"""The datasets of a request: catalog datasets, or a user's own cubes.

A :class:`Target` is what the rest of the pipeline needs of a dataset, whoever provides
it: its name (the prefix of its results), its variable's metadata, whether it is
temporal, a fingerprint for the result cache, and a way to open it around geometries.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from cas_xr.catalog import Connector, resolve
from cas_xr.config import Settings
from cas_xr.errors import (
    ArgumentTypeError,
    InvalidArgumentError,
    InvalidDatasetIdError,
    LimitExceededError,
    MissingDimensionError,
)
from cas_xr.models import DataType, TimeRange, Variable
from cas_xr.sources import _footprints

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["Target", "check_layer_names", "targets_of"]

# pad the box so that cells east/south of an edge-touching point (the point rule) are read
_BBOX_PAD_DEG = 1e-6


@dataclass(frozen=True)
class Target:
    """One requested dataset: from the catalog (``connector``) or a user's ``cube``."""

    dataset_id: str
    connector: Connector | None
    name: str
    cube: xr.DataArray | None = None
    #: the cube's other dimensions (neither spatial nor ``time``), in its order, each with
    #: its labels (its coordinate, else the positions ``0..n-1``); none for the catalog's
    layers: tuple[tuple[str, npt.NDArray[Any]], ...] = ()

    @property
    def layer_count(self) -> int:
        """How many layers the other dimensions hold (1 without any)."""
        return int(np.prod([labels.size for _, labels in self.layers], dtype=np.int64))

    @property
    def variable(self) -> Variable:
        """The dataset's variable (units, nodata, valid range, class names)."""
        if self.connector is not None:
            return self.connector.definition_of(self.name).variables[0]
        attrs = self.cube.attrs if self.cube is not None else {}
        valid = attrs.get("valid_range")
        if valid is not None:  # CF: in the stored (packed) units; the values are unpacked
            scale, offset = float(attrs.get("scale_factor", 1)), float(attrs.get("add_offset", 0))
            valid = sorted(float(v) * scale + offset for v in valid)
        return Variable(
            name=self.name if self.cube is None or self.cube.name is None else str(self.cube.name),
            units=str(attrs.get("units", "")),
            description=str(attrs.get("long_name", "")),
            data_type=DataType.CONTINUOUS,
            valid_range=None if valid is None else (float(valid[0]), float(valid[1])),
        )

    @property
    def provider(self) -> str:
        """The provider slug, or ``"user"`` for a user's cube."""
        return self.connector.slug if self.connector is not None else "user"

    @property
    def is_temporal(self) -> bool:
        """Whether the dataset has time steps."""
        if self.connector is not None:
            return bool(self.connector.definition_of(self.name).is_temporal)
        return self.cube is not None and "time" in self.cube.dims

    def metadata(self) -> dict[str, str]:
        """License and citation (empty for a user's cube)."""
        if self.connector is None:
            return {"license": "", "citation": ""}
        dataset = self.connector.dataset(self.name)
        return {"license": dataset.license or "", "citation": dataset.citation or ""}

    def fingerprint(self) -> str:
        """What the cache must know of the dataset: its definition, or the cube's token."""
        if self.connector is not None:
            return self.connector.fingerprint
        from dask.base import tokenize

        return f"cube:{tokenize(self.cube)}"

    def prefetch(self) -> None:
        """Start fetching what opening the dataset waits for (a catalog's documents).

        See :meth:`~cas_xr.catalog.Connector.prefetch`; nothing for a user's cube.
        """
        if self.connector is not None:
            self.connector.prefetch(self.name)

    def open(
        self, bounds: tuple[float, ...], time_range: TimeRange | None, *, latest_step: bool
    ) -> xr.DataArray:
        """The dataset around the lon/lat ``bounds``, lazily, with the steps to use.

        Parameters
        ----------
        bounds
            ``(min_lon, min_lat, max_lon, max_lat)`` of the geometries; padded slightly so
            that a point on the edge of the box still reads the cell it belongs to.
        time_range
            The steps to keep (temporal datasets).
        latest_step
            Keep only the latest step (the CAS rule without a time range).
        """
        if self.cube is not None:
            da = self.cube
            if "time" in da.dims:
                da = da.transpose("time", ...)
                if time_range is not None:
                    start, end = (_naive(t) for t in (time_range.start, time_range.end))
                    da = da.sel(time=slice(start, end))
        else:
            assert self.connector is not None
            x0, y0, x1, y1 = bounds
            pad = _BBOX_PAD_DEG
            box = (float(x0) - pad, float(y0) - pad, float(x1) + pad, float(y1) + pad)
            da = self.connector.open(self.name, bbox=box, time_range=time_range)
            nodata = da.attrs.get("nodata")
            if nodata is not None:
                import rioxarray  # noqa: F401  (registers .rio)

                # in place: the connector made this DataArray for this call (a copy costs
                # a small request more than its statistics)
                da = da.rio.write_nodata(nodata, encoded=False, inplace=True)
        return _footprints.latest_step(da) if latest_step else da


def _naive(stamp: Any) -> Any:
    """A timestamp comparable with a cube's (numpy datetime64) time coordinate."""
    import pandas as pd

    value = pd.Timestamp(stamp)
    return value.tz_convert("UTC").tz_localize(None) if value.tzinfo else value


#: Names of the result's own dimensions and coordinates, and of the variables of the cube
#: ``zonal()`` labels inside a unit, which a cube's other dimensions cannot take.
_TAKEN_DIMS = (
    "geometry", "zonal_statistics", "index", "class", "class_name", "coverage_fraction",
    "pixel_count", "distribution", "weighted_distribution", "x", "y",
)  # fmt: skip


def _layers(name: str, cube: xr.DataArray) -> tuple[tuple[str, npt.NDArray[Any]], ...]:
    """The other dimensions of ``cube`` (neither spatial nor ``time``) and their labels."""
    import pandas as pd

    from cas_xr.zonal._dims import spatial_dims

    try:
        spatial = spatial_dims(cube)
    except MissingDimensionError:
        raise MissingDimensionError(
            f"cube {name!r} has dimensions {tuple(cube.dims)}: cannot tell which are x and "
            "y; rename them, e.g. da.rename(easting='x', northing='y') (y/x, lat/lon and "
            "latitude/longitude are found, as are CF axis, standard_name and units)"
        ) from None
    layers = []
    for dim in cube.dims:
        if dim in spatial or dim == "time":
            continue
        if not isinstance(dim, str) or dim in _TAKEN_DIMS:
            raise InvalidArgumentError(
                f"cube {name!r} has a dimension named {dim!r}: not a string, or a name "
                f"the results or the spatial dimensions use ({', '.join(_TAKEN_DIMS)}); "
                f"rename it, e.g. da.rename({{{dim!r}: 'band'}})"
            )
        labels = cube[dim].values if dim in cube.coords else np.arange(cube.sizes[dim])
        if labels.size == 0:
            raise InvalidArgumentError(
                f"dimension {dim!r} of cube {name!r} is empty: nothing to compute"
            )
        if not pd.Index(labels).is_unique:
            raise InvalidArgumentError(
                f"the labels of dimension {dim!r} of cube {name!r} repeat; give each layer "
                f"its own label, e.g. da.assign_coords({dim}=range({labels.size}))"
            )
        layers.append((dim, labels))
    return tuple(layers)


def _cube_target(name: str, cube: Any) -> Target:
    """A user's cube as a dataset, checked: any dimensions, spatial ones found, a CRS."""
    import xarray as xr

    if not isinstance(cube, xr.DataArray):
        raise ArgumentTypeError(
            f"dataset {name!r} must be a dataset id (str), an xarray.DataArray or an "
            f"xarray.Dataset, got {type(cube).__name__}"
        )
    if ":" in name or not name:
        raise InvalidDatasetIdError(
            f"{name!r} cannot name a cube: use a non-empty name without ':' (ids with ':' "
            "are catalog datasets)"
        )
    layers = _layers(name, cube)
    import rioxarray  # noqa: F401  (registers .rio)

    if cube.rio.crs is None:
        raise InvalidArgumentError(
            f"cube {name!r} has no CRS; set one (da.rio.write_crs('EPSG:...')): cas_xr never "
            "assumes a CRS"
        )
    return Target(name, None, name, cube, layers)


def check_layer_names(targets: Sequence[Target], taken: Sequence[Any]) -> None:
    """Refuse a cube dimension named as a result's column, variable or index level.

    ``taken`` are names the caller's output holds besides the datasets' own (the input
    index's level names, a table's input columns).

    Raises
    ------
    InvalidArgumentError
        For a dimension named after a dataset (or a column ``<dataset>_...``), or after
        one of ``taken``.
    """
    for target in targets:
        for dim, _ in target.layers:
            clash = [t for t in taken if t is not None and str(t) == dim]
            clash += [
                t.dataset_id
                for t in targets
                if dim == t.dataset_id or dim.startswith(f"{t.dataset_id}_")
            ]
            if clash:
                raise InvalidArgumentError(
                    f"cube {target.dataset_id!r} has a dimension {dim!r}, which would clash "
                    f"with the result's own {clash[0]!r} (an index level, an input column, a "
                    "dataset or one of its columns); rename the dimension, e.g. "
                    f"da.rename({{{dim!r}: 'layer_{dim}'}})"
                )


def _entries(datasets: Any) -> list[tuple[str, Any]]:
    """``(name, id or cube)`` pairs of ``datasets``, in order."""
    if isinstance(datasets, str):
        return [(datasets, datasets)]
    if isinstance(datasets, Mapping):
        return [(str(k), v) for k, v in datasets.items()]
    if not isinstance(datasets, Sequence):
        raise ArgumentTypeError(
            "dataset_ids must be an id, a list of ids, or name -> cube mappings in the list "
            f"(e.g. ['sample:elevation', {{'my_dem': dataarray}}]), got {type(datasets).__name__}"
        )
    out: list[tuple[str, Any]] = []
    for item in datasets:
        if isinstance(item, Mapping):
            out += [(str(k), v) for k, v in item.items()]
        else:
            out.append((item if isinstance(item, str) else repr(item), item))
    return out


def targets_of(datasets: Any, settings: Settings) -> list[Target]:
    """Resolve the requested datasets (catalog ids, or ``{name: DataArray}`` entries).

    Raises
    ------
    ValueError
        For an empty list, or a cube of unsupported dimensions.
    TypeError
        For an entry that is neither an id nor a DataArray.
    InvalidDatasetIdError, UnknownProviderError, UnknownDatasetError
        For a malformed or unknown dataset id (before any work).
    LimitExceededError
        For more datasets than ``max_datasets_per_request``.
    """
    entries = list(dict(_entries(datasets)).items())  # a repeated name counts once
    if not entries:
        raise InvalidArgumentError(
            "dataset_ids is empty; name at least one, e.g. 'sample:elevation'"
        )
    if len(entries) > settings.max_datasets_per_request:
        raise LimitExceededError(
            f"{len(entries)} datasets requested, more than max_datasets_per_request "
            f"({settings.max_datasets_per_request}); split the request or raise the setting"
        )
    import xarray as xr

    targets = []
    for name, value in entries:
        if isinstance(value, str):
            targets.append(Target(value, *resolve(value)))  # unknown ids fail before any work
        elif isinstance(value, xr.Dataset):  # one dataset per variable: "<name>.<variable>"
            if not value.data_vars:
                raise InvalidArgumentError(f"dataset {name!r} is an xarray.Dataset without data")
            for var, da in value.data_vars.items():
                key = f"{name}.{var}"
                targets.append(_cube_target(key, da))
        else:
            targets.append(_cube_target(name, value))
    if len(targets) > settings.max_datasets_per_request:
        raise LimitExceededError(
            f"{len(targets)} datasets requested (the variables of a Dataset count one each), "
            f"more than max_datasets_per_request ({settings.max_datasets_per_request}); split "
            "the request or raise the setting"
        )
    return targets
