"""Provider YAML files parsed into the definitions sources read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from cas_xr.errors import ProviderDefinitionError, validation_problems
from cas_xr.sources._definitions import (
    DatasetDefinition,
    DerivedDefinition,
    HealthTest,
    ProviderDefinition,
    VariableDefinition,
)

#: libyaml's safe loader when PyYAML was built with it (about 10x faster), else the Python one
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

__all__ = [
    "DatasetDefinition",
    "DerivedDefinition",
    "HealthTest",
    "ProviderDefinition",
    "VariableDefinition",
    "load_provider_file",
    "parse_provider",
]


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
        problems = validation_problems(err, "(top level)")
        raise ProviderDefinitionError(
            f"invalid provider definition in {origin}: {problems}; see the 'Provider files' "
            "page of the docs for the schema"
        ) from None
    if base is not None:
        datasets = [
            d.model_copy(update={"endpoint": _resolve_endpoint(d.endpoint, base)})
            if d.endpoint is not None
            else d
            for d in definition.datasets
        ]
        definition = definition.model_copy(
            update={"endpoint": _resolve_endpoint(definition.endpoint, base), "datasets": datasets}
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
