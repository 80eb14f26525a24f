"""``extract_attributes``: an attribute set for any number of geometries, as one table.

Every value comes from the engine's one pipeline, through the request that
:func:`cas_xr.extract_cube` makes (:func:`~cas_xr.frontends._cubes.compute_request`), with
area weighting on geographic grids: one call per (statistic, time range), each over the
datasets that need it. What follows the reduction is done here, per geometry: the mean
over time steps, a weighted mean of several datasets and a scale/offset, class fractions
and the dominant class of a distribution, climate indices of the area-weighted mean
daily series (:mod:`cas_xr.attributes._climate`), and the seasonal cycle of a temporal
dataset's area-weighted mean series (:mod:`cas_xr.attributes._seasonal`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from cas_xr._version import __version__
from cas_xr.attributes._climate import INDICES, INPUT_UNITS, index_value
from cas_xr.attributes._daily import daily_axis
from cas_xr.attributes._seasonal import seasonal_value
from cas_xr.attributes._sets import (
    FIXED_UNITS,
    AttributeDefinition,
    AttributeSet,
    get_attribute_set,
)
from cas_xr.attributes._values import (
    CODE,
    Value,
    area,
    combine,
    latitudes,
    time_mean,
    worst,
)
from cas_xr.catalog import resolve
from cas_xr.config import get_settings
from cas_xr.engine import FLAGS
from cas_xr.errors import InvalidArgumentError
from cas_xr.frontends._cubes import BATCH_SIZE, compute_request
from cas_xr.models import QualityFlag, TimeRange, validated

if TYPE_CHECKING:
    import geopandas as gpd
    import xarray as xr

__all__ = ["extract_attributes"]

_Key = tuple[str, str | None]  # (statistic, time range as text)


class _Extraction:
    """The cubes of one call and the attributes computed from them."""

    def __init__(self, geometries: Any, aset: AttributeSet, window: TimeRange | None) -> None:
        self.geometries = geometries
        self.aset = aset
        self.window = window
        self.cubes: dict[_Key, xr.Dataset] = {}
        self.missing_days: dict[str, list[str]] = {}  # per climate index: days filled as NaN
        self.temporal = {d: _is_temporal(d) for d in aset.dataset_ids()}
        self._check_classes()
        self._check_inputs()

    # -- planning -------------------------------------------------------------------------

    def time_range(self, attribute: AttributeDefinition) -> TimeRange | None:
        """The attribute's own time range, else the override, else the set's."""
        return attribute.time_range or self.window or self.aset.time_range

    def key(self, dataset_id: str, statistic: str, attribute: AttributeDefinition) -> _Key:
        """Which cube holds ``statistic`` of ``dataset_id`` for ``attribute``."""
        window = self.time_range(attribute) if self.temporal[dataset_id] else None
        return statistic, None if window is None else window.model_dump_json()

    def needs(self) -> dict[_Key, list[str]]:
        """The datasets of each (statistic, time range) the set needs."""
        out: dict[_Key, list[str]] = {}
        for attribute in self.aset.attributes:
            for dataset_id, statistic in self._inputs(attribute):
                ids = out.setdefault(self.key(dataset_id, statistic, attribute), [])
                if dataset_id not in ids:
                    ids.append(dataset_id)
        return out

    def _inputs(self, attribute: AttributeDefinition) -> list[tuple[str, str]]:
        if attribute.kind == "index":
            roles, _ = INDICES[attribute.statistic]
            inputs = self.aset.inputs_of(attribute)
            return [(inputs[r], "mean") for r in roles]
        if attribute.kind == "class":
            return [(attribute.datasets[0], "distribution")]
        if attribute.kind == "seasonal":
            return [(attribute.datasets[0], "mean")]
        return [(d, attribute.statistic) for d in attribute.datasets]

    def _check_classes(self) -> None:
        for attribute in self.aset.attributes:
            if attribute.statistic != "class_fraction":
                continue
            dataset_id = attribute.datasets[0]
            connector, name = resolve(dataset_id)
            names = connector.definition_of(name).variables[0].class_names or {}
            known = {*names.values(), *names}
            unknown = [c for c in attribute.classes or [] if c not in known]
            if unknown:
                raise InvalidArgumentError(
                    f"attribute {attribute.name!r}: {dataset_id} has no classes {unknown}; its "
                    f"classes are {', '.join(f'{k} ({v})' for k, v in sorted(names.items()))}"
                )

    def _check_inputs(self) -> None:
        """Climate indices read mm/day and degC: other units would give wrong numbers."""
        for attribute in self.aset.attributes:
            if attribute.kind != "index":
                continue
            inputs = self.aset.inputs_of(attribute)
            for role in INDICES[attribute.statistic][0]:
                connector, name = resolve(inputs[role])
                units = connector.definition_of(name).variables[0].units
                if units not in INPUT_UNITS[role]:
                    raise InvalidArgumentError(
                        f"attribute {attribute.name!r}: input {role} ({inputs[role]}) is in "
                        f"{units!r}; climate indices need {INPUT_UNITS[role][0]!r} "
                        f"(accepted spellings: {', '.join(INPUT_UNITS[role])})"
                    )

    def compute(self, batch_size: int) -> None:
        """One engine call per (statistic, time range), with area weighting."""
        settings = get_settings().model_copy(update={"area_weighted": True})
        for (statistic, window), ids in self.needs().items():
            span = None if window is None else TimeRange.model_validate_json(window)
            result = compute_request(
                self.geometries, ids, statistic, span, batch_size, settings=settings
            )
            self.cubes[statistic, window] = result.cube

    # -- values ---------------------------------------------------------------------------

    def cube(self, dataset_id: str, statistic: str, attribute: AttributeDefinition) -> xr.Dataset:
        """The cube holding ``statistic`` of ``dataset_id`` for ``attribute``."""
        return self.cubes[self.key(dataset_id, statistic, attribute)]

    def quality(self, dataset_id: str, cube: xr.Dataset) -> npt.NDArray[np.int8]:
        """Worst quality code of each geometry over the steps used."""
        codes = cube[f"{dataset_id}_quality"].values
        return worst(codes, axis=1) if codes.ndim == 2 else worst(codes)

    def value(self, attribute: AttributeDefinition) -> Value:
        """An attribute's values and qualities."""
        if attribute.kind == "area":
            return area(self.geometries)
        if attribute.kind == "class":
            return self._class(attribute)
        if attribute.kind == "index":
            return self._index(attribute)
        if attribute.kind == "seasonal":
            return self._seasonal(attribute)
        return self._zonal(attribute)

    def _zonal(self, attribute: AttributeDefinition) -> Value:
        columns, qualities = [], []
        for dataset_id in attribute.datasets:
            cube = self.cube(dataset_id, attribute.statistic, attribute)
            values = cube[dataset_id].sel(zonal_statistics=attribute.statistic).values
            columns.append(time_mean(values) if values.ndim == 2 else values.astype(np.float64))
            qualities.append(self.quality(dataset_id, cube))
        weights = attribute.transform.weights or [1.0]
        stacked = np.stack(columns, axis=1)
        mean = stacked @ np.asarray(weights) / float(np.sum(weights))
        values = mean * attribute.transform.scale + attribute.transform.offset
        quality = combine(*qualities)
        quality[np.isnan(values)] = CODE[QualityFlag.MISSING]
        return Value(values, quality)

    def _class(self, attribute: AttributeDefinition) -> Value:
        dataset_id = attribute.datasets[0]
        cube = self.cube(dataset_id, "distribution", attribute)
        dist = cube[f"{dataset_id}_distribution"].values  # geometry, [time,] class
        # a step without any valid class area (all 0 or NaN) has no distribution
        empty = ~(np.nansum(dist, axis=-1) > 0)
        dist = np.where(empty[..., None], np.nan, dist)
        if dist.ndim == 3:  # the mean over the steps that have one
            dist = time_mean(np.moveaxis(dist, 1, -1))
        names = [str(n) for n in cube[f"{dataset_id}_class_name"].values]
        codes = cube[f"{dataset_id}_class"].values
        missing = np.all(np.isnan(dist), axis=1)
        filled = np.where(np.isnan(dist), 0.0, dist)
        quality = self.quality(dataset_id, cube).copy()
        quality[missing] = CODE[QualityFlag.MISSING]
        if attribute.statistic == "class_fraction":
            wanted = set(map(str, attribute.classes or []))
            pick = [n in wanted or str(int(c)) in wanted for n, c in zip(names, codes, strict=True)]
            values = np.where(missing, np.nan, filled[:, np.asarray(pick, dtype=bool)].sum(axis=1))
            return Value(values, quality)
        top = filled.argmax(axis=1)
        if attribute.statistic == "dominant_fraction":
            return Value(np.where(missing, np.nan, filled.max(axis=1)), quality)
        labels = np.array([None if m else names[k] for k, m in zip(top, missing, strict=True)])
        return Value(labels.astype(object), quality)

    def _index(self, attribute: AttributeDefinition) -> Value:
        roles, _ = INDICES[attribute.statistic]
        inputs = self.aset.inputs_of(attribute)
        series: dict[str, npt.NDArray[np.float64]] = {}
        qualities = []
        times = None
        for role in roles:
            dataset_id = inputs[role]
            cube = self.cube(dataset_id, "mean", attribute)
            if "time" not in cube[dataset_id].dims:
                raise InvalidArgumentError(
                    f"attribute {attribute.name!r}: {dataset_id} (input {role}) is not a daily "
                    "series: climate indices need temporal datasets"
                )
            series[role] = cube[dataset_id].sel(zonal_statistics="mean").values
            qualities.append(self.quality(dataset_id, cube))
            times = cube["time"].values
        assert times is not None  # every role reads the same cube: one time axis
        axis = daily_axis(
            times, attribute.name, [inputs[r] for r in roles], window=self.time_range(attribute)
        )
        self.missing_days[attribute.name] = axis.missing
        days = {r: axis.fill(s) for r, s in series.items()}
        lats = latitudes(self.geometries)
        values = np.array(
            [
                index_value(attribute.statistic, {r: s[i] for r, s in days.items()}, axis.days, lat)
                for i, lat in enumerate(lats)
            ],
            dtype=np.float64,
        )
        values = values * attribute.transform.scale + attribute.transform.offset
        quality = combine(*qualities)
        quality[np.isnan(values)] = CODE[QualityFlag.MISSING]
        return Value(values, quality)

    def _seasonal(self, attribute: AttributeDefinition) -> Value:
        """A statistic of the monthly climatology of the area-weighted mean series.

        The quality is the worst of the steps that have a value (a step without any valid
        cell, e.g. a composite missing over the geometry, is left out of the climatology
        rather than spoiling it); MISSING where the climatology lacks a month.
        """
        dataset_id = attribute.datasets[0]
        cube = self.cube(dataset_id, "mean", attribute)
        if "time" not in cube[dataset_id].dims:
            raise InvalidArgumentError(
                f"attribute {attribute.name!r}: {dataset_id} is not temporal; "
                f"{attribute.statistic} needs a series of time steps"
            )
        means = cube[dataset_id].sel(zonal_statistics="mean").transpose("geometry", "time")
        codes = cube[f"{dataset_id}_quality"].transpose("geometry", "time").values
        series = means.values.astype(np.float64)
        values = seasonal_value(attribute.statistic, series, cube["time"].values)
        values = values * attribute.transform.scale + attribute.transform.offset
        good = np.int8(CODE[QualityFlag.GOOD])
        quality = worst(np.where(np.isnan(series), good, codes), axis=1).copy()
        quality[np.isnan(values)] = CODE[QualityFlag.MISSING]
        return Value(values, quality)

    def units(self, attribute: AttributeDefinition) -> str:
        """The attribute's units: given, fixed by the statistic, or the dataset's."""
        if attribute.units is not None:
            return attribute.units
        if attribute.kind == "index":
            return INDICES[attribute.statistic][1]
        if attribute.statistic in FIXED_UNITS:
            return FIXED_UNITS[attribute.statistic]
        if attribute.statistic == "count":
            return "cells"
        connector, name = resolve(attribute.datasets[0])
        return connector.definition_of(name).variables[0].units


def _is_temporal(dataset_id: str) -> bool:
    connector, name = resolve(dataset_id)  # an unknown id fails here, before any work
    return connector.definition_of(name).is_temporal


def _metadata(extraction: _Extraction, units: dict[str, str]) -> dict[str, Any]:
    aset = extraction.aset
    attributes = {}
    for attribute in aset.attributes:
        window = extraction.time_range(attribute)
        attributes[attribute.name] = {
            "units": units[attribute.name],
            "description": attribute.description,
            "statistic": attribute.statistic,
            "datasets": (
                extraction.aset.inputs_of(attribute)
                if attribute.kind == "index"
                else attribute.datasets
            ),
            "time_range": None if window is None else window.model_dump(mode="json"),
            "transform": attribute.transform.model_dump(mode="json"),
        }
        if attribute.name in extraction.missing_days:
            attributes[attribute.name]["missing_days"] = extraction.missing_days[attribute.name]
    datasets = {}
    for dataset_id in aset.dataset_ids():
        connector, name = resolve(dataset_id)
        meta = connector.dataset(name)
        datasets[dataset_id] = {"license": meta.license, "citation": meta.citation}
    return {
        "cas_xr_version": __version__,
        "attribute_set": aset.name,
        "description": aset.description,
        "citation": aset.citation,
        "zonal_area_weighted": True,
        "units": units,
        "attributes": attributes,
        "datasets": datasets,
    }


def extract_attributes(
    geometries: Any,
    attribute_set: Any,
    *,
    time_range: TimeRange | dict[str, Any] | Sequence[Any] | None = None,
    batch_size: int = BATCH_SIZE,
) -> gpd.GeoDataFrame:
    """An attribute set (e.g. CAMELS-like attributes) for any number of geometries (blocking).

    Parameters
    ----------
    geometries
        A GeoDataFrame or GeoSeries with a CRS (polygons; points get point values).
    attribute_set
        A set's name (``"camels"``, ``"sample"``, or one an entry point registers), the
        path of a YAML file, an :class:`~cas_xr.attributes.AttributeSet` or its mapping.
    time_range
        ``(start, end)``, a dict or a :class:`~cas_xr.models.TimeRange`: the days used
        instead of the set's time range (CAMELS: 1989-10-01 to 2009-09-30); an attribute
        with a time range of its own (e.g. a land cover year) keeps it.
    batch_size
        Geometries per unit of work (as in ``extract_table``).

    Returns
    -------
    geopandas.GeoDataFrame
        The input's index, columns and geometry; per attribute ``a`` a column ``a`` and a
        column ``a_quality`` (the worst quality flag of what ``a`` used: datasets and time
        steps). ``attrs["cas_xr"]["units"]`` maps each attribute to its units;
        ``attrs["cas_xr"]["attributes"]`` says how each was computed, ``datasets`` their
        license and citation. ``to_parquet`` keeps ``attrs`` in the file's metadata.

    Raises
    ------
    UnknownAttributeSetError, ConfigurationError
        For an unknown set name or an invalid set.
    InvalidDatasetIdError, UnknownProviderError, UnknownDatasetError
        For a dataset id of the set unknown to the catalog (before any work).
    InvalidArgumentError
        For a climate index whose inputs are not a continuous daily series (December 31
        of a leap year may be missing, as in Daymet: it counts as a missing day).

    Notes
    -----
    Zonal statistics are area-weighted on geographic grids (whatever the
    ``area_weighted`` setting). Temporal datasets give the mean over the time steps of
    each step's statistic; climate indices are computed on each geometry's mean daily
    series (a frequency of the mean series, not a mean of per-cell frequencies); the days
    such a series lacks (December 31 of leap years, in Daymet) are in
    ``attrs["cas_xr"]["attributes"][a]["missing_days"]``. ``seasonal_max`` and
    ``seasonal_range`` are taken over the monthly climatology of a temporal dataset's
    area-weighted mean series (:mod:`cas_xr.attributes._seasonal`).
    """
    import geopandas as gpd
    import pandas as pd

    aset = get_attribute_set(attribute_set)
    window = None if time_range is None else validated(TimeRange, time_range)
    extraction = _Extraction(geometries, aset, window)
    extraction.compute(batch_size)
    frame = geometries if isinstance(geometries, gpd.GeoDataFrame) else None
    series = geometries.geometry if frame is not None else geometries
    columns: dict[str, Any] = {}
    if frame is not None:
        columns.update({c: frame[c].to_numpy() for c in frame.columns if c != frame.geometry.name})
    units: dict[str, str] = {}
    categories = [f.value for f in FLAGS]
    for attribute in aset.attributes:
        value = extraction.value(attribute)
        columns[attribute.name] = value.values
        columns[f"{attribute.name}_quality"] = pd.Categorical.from_codes(
            value.quality, categories=categories
        )
        units[attribute.name] = extraction.units(attribute)
    table = gpd.GeoDataFrame(
        columns, geometry=series.to_numpy(), crs=series.crs, index=series.index
    )
    if frame is not None and frame.geometry.name != "geometry":
        table = table.rename_geometry(frame.geometry.name)
    table.attrs["cas_xr"] = _metadata(extraction, units)
    return table
