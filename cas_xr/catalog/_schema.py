"""Provider definitions as data (the schema of provider YAML files)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from cas_xr.errors import ProviderDefinitionError
from cas_xr.models import BoundingBox, Dataset, Protocol, TemporalExtent, TemporalType, Variable

#: libyaml's safe loader when PyYAML was built with it (about 10x faster), else the Python one
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

__all__ = [
    "DatasetDefinition",
    "ProviderDefinition",
    "VariableDefinition",
    "load_provider_file",
    "parse_provider",
]


class VariableDefinition(Variable):
    """A :class:`~cas_xr.models.Variable` as written in a provider file (no unknown keys)."""

    model_config = ConfigDict(extra="forbid")


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

    @property
    def is_temporal(self) -> bool:
        """Whether the dataset has time steps."""
        return self.temporal.temporal_type is not TemporalType.STATIC


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

    @model_validator(mode="after")
    def _unique_names(self) -> ProviderDefinition:
        names = [d.name for d in self.datasets]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"dataset names must be unique within a provider, repeated: {dupes}")
        return self

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
            protocol=self.protocol,
            license=definition.license or self.license,
            citation=definition.citation or self.citation,
        )


def _resolve_endpoint(endpoint: str, base: Path) -> str:
    if "://" in endpoint or Path(endpoint).is_absolute():
        return endpoint
    return str((base / endpoint).resolve())


def parse_provider(data: Any, *, origin: str, base: Path | None = None) -> ProviderDefinition:
    """Validate a provider definition given as a mapping.

    Parameters
    ----------
    data
        The mapping (e.g. parsed YAML) or a :class:`ProviderDefinition`.
    origin
        Where it came from (file or entry point), named in error messages.
    base
        Folder against which a relative ``endpoint`` path is resolved.

    Returns
    -------
    ProviderDefinition

    Raises
    ------
    ProviderDefinitionError
        Naming the origin and every invalid field.
    """
    if isinstance(data, ProviderDefinition):
        return data
    try:
        definition = ProviderDefinition.model_validate(data)
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}"
            for e in err.errors()
        )
        raise ProviderDefinitionError(
            f"invalid provider definition in {origin}: {problems}; see the 'Provider files' "
            "page of the docs for the schema"
        ) from None
    if base is not None:
        definition = definition.model_copy(
            update={"endpoint": _resolve_endpoint(definition.endpoint, base)}
        )
    return definition


def load_provider_file(path: str | Path) -> ProviderDefinition:
    """Read and validate a provider YAML file.

    Parameters
    ----------
    path
        The YAML file; a relative ``endpoint`` in it is relative to the file's folder.

    Returns
    -------
    ProviderDefinition

    Raises
    ------
    ProviderDefinitionError
        If the file is missing, is not YAML, or does not match the schema.
    """
    path = Path(path)
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_SAFE_LOADER)
    except OSError as err:
        raise ProviderDefinitionError(
            f"cannot read provider file {path}: {err.strerror}; check the provider_files setting"
        ) from None
    except yaml.YAMLError as err:
        raise ProviderDefinitionError(f"provider file {path} is not valid YAML: {err}") from None
    return parse_provider(data, origin=str(path), base=path.parent)
