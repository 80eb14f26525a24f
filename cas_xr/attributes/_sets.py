"""Attribute sets as data: named attributes, each a (dataset, statistic, time range, transform).

A set is a YAML file (or a mapping) such as::

    name: sample
    time_range: {start: "2022-01-01T00:00:00Z", end: "2022-12-31T23:59:59Z"}
    inputs: {prcp: "sample:prcp", tmin: "sample:tmin", tmax: "sample:tmax"}
    attributes: [{name: elev_mean, dataset: "sample:elevation", statistic: mean},
                 {name: p_mean, statistic: p_mean}]

Sets are found like providers: the built-in files in ``cas_xr/attributes/sets``, then
entry points of group ``cas_xr.attribute_sets`` (an :class:`AttributeSet`, a mapping, a
path, or a callable returning one of them), a later one replacing an earlier one of the
same name; or any YAML file given by its path.
"""

from __future__ import annotations

import threading
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from cas_xr.attributes._climate import INDICES
from cas_xr.attributes._seasonal import SEASONAL_STATISTICS
from cas_xr.errors import ConfigurationError, UnknownProviderError, validation_problems
from cas_xr.models import TimeRange

__all__ = [
    "CLASS_STATISTICS",
    "ENTRY_POINT_GROUP",
    "FIXED_UNITS",
    "AttributeDefinition",
    "AttributeSet",
    "Transform",
    "UnknownAttributeSetError",
    "get_attribute_set",
    "list_attribute_sets",
    "load_attribute_set",
]

ENTRY_POINT_GROUP = "cas_xr.attribute_sets"
_BUILTIN_DIR = Path(__file__).parent / "sets"
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

#: statistics of a categorical dataset's class distribution
CLASS_STATISTICS = ("class_fraction", "dominant_class", "dominant_fraction")
#: zonal statistics an attribute may ask of a dataset (per time step, then averaged)
ZONAL_STATISTICS = ("mean", "median", "min", "max", "std", "sum", "count")
#: units of the statistics whose units do not come from a dataset
FIXED_UNITS = {
    "area": "km2",
    "class_fraction": "1",
    "dominant_class": "class",
    "dominant_fraction": "1",
}


class UnknownAttributeSetError(UnknownProviderError):
    """No attribute set of that name (a ``KeyError``)."""


class Transform(BaseModel):
    """What is done to the values: ``weighted mean of the datasets * scale + offset``."""

    model_config = ConfigDict(extra="forbid")

    scale: float = 1.0
    offset: float = 0.0
    weights: list[float] | None = Field(
        default=None, description="one per dataset of a list: their weighted mean (e.g. depths)"
    )

    @property
    def identity(self) -> bool:
        """Whether the values are used as they are (units unchanged)."""
        return self.scale == 1.0 and self.offset == 0.0


class AttributeDefinition(BaseModel):
    """One named attribute of a set.

    ``statistic`` is a zonal statistic (``mean``, ``median``, ``min``, ``max``, ``std``,
    ``sum``, ``count``, or a quantile ``p10``...), ``area`` (of the geometry, km2), a class
    statistic (``class_fraction`` of ``classes``, ``dominant_class``, ``dominant_fraction``),
    a climate index of :data:`~cas_xr.attributes._climate.INDICES` computed on the
    area-weighted mean daily series of its ``inputs``, or a statistic of the monthly
    climatology of a temporal dataset's area-weighted mean series (``seasonal_max``,
    ``seasonal_range``: :mod:`~cas_xr.attributes._seasonal`).
    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    description: str = ""
    statistic: str
    dataset: str | list[str] | None = None
    classes: list[str | int] | None = None
    inputs: dict[str, str] | None = Field(
        default=None, description="climate index inputs (prcp, tmin, tmax); default: the set's"
    )
    time_range: TimeRange | None = None
    transform: Transform = Field(default_factory=Transform)
    units: str | None = None

    @property
    def kind(self) -> str:
        """``zonal``, ``area``, ``class``, ``index`` or ``seasonal``."""
        if self.statistic == "area":
            return "area"
        if self.statistic in CLASS_STATISTICS:
            return "class"
        if self.statistic in INDICES:
            return "index"
        if self.statistic in SEASONAL_STATISTICS:
            return "seasonal"
        return "zonal"

    @property
    def datasets(self) -> list[str]:
        """The dataset ids of ``dataset`` (none, one or several)."""
        if self.dataset is None:
            return []
        return [self.dataset] if isinstance(self.dataset, str) else list(self.dataset)

    @model_validator(mode="after")
    def _consistent(self) -> AttributeDefinition:
        kind, n = self.kind, len(self.datasets)
        if kind == "zonal" and not _zonal_name(self.statistic):
            known = [
                *ZONAL_STATISTICS, "p<NN>", "area", *CLASS_STATISTICS, *INDICES,
                *SEASONAL_STATISTICS,
            ]  # fmt: skip
            raise ValueError(f"unknown statistic {self.statistic!r}; known: {', '.join(known)}")
        if kind in ("zonal", "class", "seasonal") and n == 0:
            raise ValueError(f"statistic {self.statistic!r} needs a 'dataset'")
        if kind in ("area", "index") and n:
            raise ValueError(
                f"statistic {self.statistic!r} takes no 'dataset'"
                + (" (climate indices take 'inputs')" if kind == "index" else "")
            )
        if kind in ("class", "seasonal") and n != 1:
            raise ValueError(f"statistic {self.statistic!r} takes one dataset")
        if (self.statistic == "class_fraction") != (self.classes is not None):
            raise ValueError("'classes' goes with statistic class_fraction, and it needs them")
        weights = self.transform.weights
        if weights is not None and len(weights) != n:
            raise ValueError(f"transform.weights has {len(weights)} values for {n} datasets")
        if n > 1 and weights is None:
            raise ValueError("several datasets need transform.weights (their weighted mean)")
        if kind in ("class", "area") and not self.transform.identity:
            raise ValueError(f"statistic {self.statistic!r} takes no scale or offset")
        if kind == "seasonal" and self.transform.scale <= 0.0:
            raise ValueError(
                f"statistic {self.statistic!r} needs a positive transform.scale (a negative "
                "one would turn the largest monthly value into the smallest)"
            )
        if self.statistic == "seasonal_range" and self.transform.offset != 0.0:
            raise ValueError("statistic 'seasonal_range' is a difference: it takes no offset")
        changes_units = kind in ("zonal", "index", "seasonal") and not self.transform.identity
        if changes_units and self.units is None:
            raise ValueError("a transform with scale or offset changes units: give 'units'")
        return self


def _zonal_name(statistic: str) -> bool:
    if statistic in ZONAL_STATISTICS:
        return True
    return statistic.startswith("p") and statistic[1:].replace(".", "", 1).isdigit()


class AttributeSet(BaseModel):
    """A named list of attributes; ``time_range`` and ``inputs`` are the attributes' defaults."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    description: str = ""
    citation: str = ""
    time_range: TimeRange | None = None
    inputs: dict[str, str] = Field(default_factory=dict)
    attributes: list[AttributeDefinition] = Field(min_length=1)

    @model_validator(mode="after")
    def _complete(self) -> AttributeSet:
        names = [a.name for a in self.attributes]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"attribute names must be unique, repeated: {dupes}")
        for attribute in self.attributes:
            if attribute.kind == "index":
                roles, _ = INDICES[attribute.statistic]
                missing = [r for r in roles if r not in self.inputs_of(attribute)]
                if missing:
                    raise ValueError(
                        f"attribute {attribute.name!r} ({attribute.statistic}) needs inputs "
                        f"{missing}: give 'inputs' in the set or the attribute"
                    )
        return self

    def inputs_of(self, attribute: AttributeDefinition) -> dict[str, str]:
        """The daily series (role -> dataset id) of a climate index."""
        return {**self.inputs, **(attribute.inputs or {})}

    def time_range_of(self, attribute: AttributeDefinition) -> TimeRange | None:
        """The attribute's time range, else the set's."""
        return attribute.time_range or self.time_range

    def dataset_ids(self) -> list[str]:
        """Every dataset id the set reads, in order of first use."""
        ids: list[str] = []
        for attribute in self.attributes:
            if attribute.kind == "index":
                roles, _ = INDICES[attribute.statistic]
                inputs = self.inputs_of(attribute)
                ids += [inputs[r] for r in roles]
            ids += attribute.datasets
        return list(dict.fromkeys(ids))


def parse_attribute_set(data: Any, *, origin: str) -> AttributeSet:
    """Validate an attribute set given as a mapping (or an :class:`AttributeSet`).

    Raises
    ------
    ConfigurationError
        Naming ``origin`` and every invalid field.
    """
    if isinstance(data, AttributeSet):
        return data
    try:
        return AttributeSet.model_validate(data)
    except ValidationError as err:
        problems = validation_problems(err, "(top level)")
        raise ConfigurationError(
            f"invalid attribute set in {origin}: {problems}; see the 'Attribute sets' page of "
            "the docs for the schema"
        ) from None


def load_attribute_set(path: str | Path) -> AttributeSet:
    """Read and validate an attribute set YAML file.

    Parameters
    ----------
    path
        The YAML file.

    Returns
    -------
    AttributeSet

    Raises
    ------
    ConfigurationError
        If the file is missing, is not YAML, or does not match the schema.
    """
    path = Path(path)
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_SAFE_LOADER)
    except OSError as err:
        raise ConfigurationError(f"cannot read attribute set file {path}: {err.strerror}") from None
    except yaml.YAMLError as err:
        raise ConfigurationError(f"attribute set file {path} is not valid YAML: {err}") from None
    return parse_attribute_set(data, origin=str(path))


def _from_entry_point(ep: metadata.EntryPoint) -> AttributeSet:
    origin = f"entry point {ep.name!r} ({ep.value}) of group {ENTRY_POINT_GROUP!r}"
    try:
        obj: Any = ep.load()
    except Exception as err:  # a broken plugin must not hide which plugin it is
        raise ConfigurationError(f"cannot load {origin}: {err}") from err
    if callable(obj) and not isinstance(obj, AttributeSet):
        obj = obj()
    if isinstance(obj, str | Path):
        return load_attribute_set(obj)
    return parse_attribute_set(obj, origin=origin)


_lock = threading.Lock()
_sets: dict[str, AttributeSet] | None = None


def _registry(*, reload: bool = False) -> dict[str, AttributeSet]:
    global _sets
    with _lock:
        if reload or _sets is None:
            found = [load_attribute_set(p) for p in sorted(_BUILTIN_DIR.glob("*.yaml"))]
            found += [_from_entry_point(e) for e in metadata.entry_points(group=ENTRY_POINT_GROUP)]
            _sets = {s.name: s for s in found}
        return _sets


def list_attribute_sets(*, reload: bool = False) -> list[str]:
    """Names of the registered attribute sets (built-in and entry points), sorted.

    Parameters
    ----------
    reload
        Read the files and entry points again.
    """
    return sorted(_registry(reload=reload))


def get_attribute_set(spec: str | Path | AttributeSet | dict[str, Any]) -> AttributeSet:
    """An attribute set by name, by the path of a YAML file, or as given.

    Parameters
    ----------
    spec
        A registered name (``"camels"``), a path to a ``.yaml``/``.yml`` file, an
        :class:`AttributeSet`, or a mapping of one.

    Raises
    ------
    UnknownAttributeSetError
        For an unknown name (a ``KeyError`` listing the known ones).
    ConfigurationError
        For an invalid file or mapping.
    """
    if isinstance(spec, AttributeSet | dict):
        return parse_attribute_set(spec, origin="the attribute set given")
    text = str(spec)
    if isinstance(spec, Path) or text.endswith((".yaml", ".yml")):
        return load_attribute_set(spec)
    sets = _registry()
    try:
        return sets[text]
    except KeyError:
        raise UnknownAttributeSetError(
            f"unknown attribute set {text!r}; known sets: {', '.join(sorted(sets))} (or give "
            "the path of a YAML file)"
        ) from None
