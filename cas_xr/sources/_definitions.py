"""Provider definitions as data: what a source needs to know of a provider and a dataset.

The catalog parses provider files into these models (:mod:`cas_xr.catalog`) and builds
sources from them; sources read them and never import the catalog.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from cas_xr.models import (
    BoundingBox,
    Dataset,
    Geometry,
    Protocol,
    TemporalExtent,
    TemporalType,
    TimeRange,
    Variable,
)

__all__ = [
    "DatasetDefinition",
    "DerivedDefinition",
    "HealthTest",
    "ProviderDefinition",
    "VariableDefinition",
]


class VariableDefinition(Variable):
    """A :class:`~cas_xr.models.Variable` as written in a provider file (no unknown keys)."""

    model_config = ConfigDict(extra="forbid")


class DerivedDefinition(BaseModel):
    """A dataset computed per cell, on the source grid, from another dataset of the provider."""

    model_config = ConfigDict(extra="forbid")

    function: Literal["slope", "slope_m_per_km", "aspect"] = Field(
        description="what to compute per cell (implemented in cas_xr.attributes)"
    )
    dataset: str = Field(description="name of the provider's dataset it is computed from")


class DatasetDefinition(BaseModel):
    """One dataset of a provider: where its pixels are and what they mean."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][\w.+-]*$")
    description: str = ""
    collection: str | None = Field(default=None, description="STAC collection (default: name)")
    asset: str = Field(default="data", description="STAC asset key holding the raster")
    coverage: str | None = Field(default=None, description="WCS coverage id (default: name)")
    path: str | None = Field(
        default=None,
        description="local/zarr: file, glob or URL, relative to the provider endpoint if relative",
    )
    array: str | None = Field(
        default=None, description="Zarr/NetCDF variable holding the data (default: the only one)"
    )
    band: int = Field(default=1, ge=1, description="1-based band of a multi-band file")
    options: dict[str, Any] = Field(
        default_factory=dict, description="protocol-specific options, merged over the provider's"
    )
    variables: list[VariableDefinition] = Field(min_length=1)
    resolution_m: float | None = Field(default=None, gt=0)
    crs: str = "EPSG:4326"
    bbox: BoundingBox | None = None
    temporal: TemporalExtent = Field(default_factory=TemporalExtent)
    license: str | None = None
    citation: str | None = None
    protocol: Protocol | None = Field(
        default=None, description="this dataset's protocol when it is not the provider's"
    )
    endpoint: str | None = Field(
        default=None, description="this dataset's endpoint when it is not the provider's"
    )
    derive: DerivedDefinition | None = Field(
        default=None, description="computed per cell from another dataset of the provider"
    )

    @property
    def is_temporal(self) -> bool:
        """Whether the dataset has time steps."""
        return self.temporal.temporal_type is not TemporalType.STATIC


class HealthTest(BaseModel):
    """What :func:`~cas_xr.check_providers` reads to tell whether a provider works.

    Attributes
    ----------
    geometry
        A small GeoJSON Point or Polygon in lon/lat (EPSG:4326) where the dataset has data.
    dataset
        The dataset to read (default: the provider's first).
    expected_range
        ``[min, max]`` of a sound value there (the mean; the majority class code of
        categorical data), in the dataset's units as results report them; outside it the
        provider is ``degraded``. None: any value is sound.
    time_range
        Temporal datasets: the steps to average (default: the latest step).
    """

    model_config = ConfigDict(extra="forbid")

    geometry: Geometry
    dataset: str | None = None
    expected_range: tuple[float, float] | None = None
    time_range: TimeRange | None = None

    @model_validator(mode="after")
    def _ordered(self) -> HealthTest:
        if self.expected_range is not None and self.expected_range[0] > self.expected_range[1]:
            raise ValueError(f"expected_range {list(self.expected_range)} must be [min, max]")
        return self


class ProviderDefinition(BaseModel):
    """A provider: a slug, a protocol, an endpoint and its datasets."""

    model_config = ConfigDict(extra="forbid")

    slug: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    name: str = ""
    description: str = ""
    protocol: Protocol
    endpoint: str
    license: str = ""
    citation: str = ""
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="protocol-specific options (e.g. WCS version, storage_options, url signing)",
    )
    datasets: list[DatasetDefinition] = Field(min_length=1)
    health: HealthTest | None = Field(
        default=None, description="the test geometry and expected value of the health check"
    )

    @model_validator(mode="after")
    def _unique_names(self) -> ProviderDefinition:
        names = [d.name for d in self.datasets]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"dataset names must be unique within a provider, repeated: {dupes}")
        if self.health is not None and self.health.dataset not in (None, *names):
            raise ValueError(
                f"health.dataset {self.health.dataset!r} is not a dataset of the provider "
                f"(its datasets: {names})"
            )
        for dataset in self.datasets:
            if dataset.derive is not None:
                self._check_base(dataset.name, dataset.derive.dataset)
        return self

    @property
    def health_dataset(self) -> DatasetDefinition | None:
        """The dataset the health check reads (None without a ``health`` test)."""
        if self.health is None:
            return None
        name = self.health.dataset or self.datasets[0].name
        return next(d for d in self.datasets if d.name == name)

    def _check_base(self, name: str, base: str) -> None:
        found = [d for d in self.datasets if d.name == base]
        if not found:
            raise ValueError(f"dataset {name!r} derives from {base!r}, which the provider lacks")
        if found[0].derive is not None or found[0].is_temporal:
            raise ValueError(
                f"dataset {name!r} derives from {base!r}, which is derived or temporal; derive "
                "from a static dataset that is read (e.g. a DEM)"
            )

    def definition_of(self, name: str) -> DatasetDefinition:
        """The definition of dataset ``name`` (a ``KeyError`` if the provider lacks it)."""
        for dataset in self.datasets:
            if dataset.name == name:
                return dataset
        raise KeyError(name)

    def for_dataset(self, definition: DatasetDefinition) -> ProviderDefinition:
        """The provider as ``definition`` sees it: with its own protocol and endpoint, if any."""
        update: dict[str, Any] = {}
        if definition.protocol is not None:
            update["protocol"] = definition.protocol
        if definition.endpoint is not None:
            update["endpoint"] = definition.endpoint
        return self.model_copy(update=update) if update else self

    def options_for(self, definition: DatasetDefinition) -> dict[str, Any]:
        """The protocol options of one dataset (its own over the provider's)."""
        return {**self.options, **definition.options}

    def dataset_metadata(self, definition: DatasetDefinition) -> Dataset:
        """The public :class:`~cas_xr.models.Dataset` for one of this provider's datasets."""
        return Dataset(
            id=f"{self.slug}:{definition.name}",
            provider=self.slug,
            name=definition.name,
            description=definition.description,
            variables=[Variable.model_validate(v.model_dump()) for v in definition.variables],
            resolution_m=definition.resolution_m,
            crs=definition.crs,
            bbox=definition.bbox,
            temporal=definition.temporal,
            protocol=definition.protocol or self.protocol,
            license=definition.license or self.license,
            citation=definition.citation or self.citation,
        )
