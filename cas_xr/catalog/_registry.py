"""The provider registry: built-in YAML files, entry points and ``provider_files``.

Loading is lazy: nothing is read until the first :func:`discover`, lookup or extraction.
Later definitions replace earlier ones with the same slug, in this order: built-ins,
entry points (group ``cas_xr.providers``), then the files named by the
``provider_files`` setting, so a user can point a built-in provider at a mirror.
"""

from __future__ import annotations

import threading
from importlib import metadata
from pathlib import Path
from typing import Any

from cas_xr.catalog._connector import Connector
from cas_xr.catalog._schema import ProviderDefinition, load_provider_file, parse_provider
from cas_xr.config import get_settings, settings_generation
from cas_xr.errors import ProviderDefinitionError, UnknownProviderError
from cas_xr.models import Dataset, split_dataset_id

__all__ = [
    "ENTRY_POINT_GROUP",
    "discover",
    "get_connector",
    "list_datasets",
    "list_providers",
    "resolve",
]

ENTRY_POINT_GROUP = "cas_xr.providers"
_BUILTIN_DIR = Path(__file__).parent / "providers"

_lock = threading.Lock()
_state: tuple[int, dict[str, Connector]] | None = None


def _from_entry_point(ep: metadata.EntryPoint) -> ProviderDefinition:
    origin = f"entry point {ep.name!r} ({ep.value}) of group {ENTRY_POINT_GROUP!r}"
    try:
        obj: Any = ep.load()
    except Exception as err:  # a broken plugin must not hide which plugin it is
        raise ProviderDefinitionError(f"cannot load {origin}: {err}") from err
    if callable(obj) and not isinstance(obj, ProviderDefinition):
        obj = obj()
    if isinstance(obj, str | Path):
        return load_provider_file(obj)
    return parse_provider(obj, origin=origin)


def _load_all() -> dict[str, Connector]:
    definitions = [load_provider_file(p) for p in sorted(_BUILTIN_DIR.glob("*.yaml"))]
    definitions += [_from_entry_point(ep) for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)]
    definitions += [load_provider_file(p) for p in get_settings().provider_files]
    return {d.slug: Connector(d) for d in definitions}


def _connectors(*, reload: bool = False) -> dict[str, Connector]:
    global _state
    generation = settings_generation()
    with _lock:
        if reload or _state is None or _state[0] != generation:
            _state = (generation, _load_all())
        return _state[1]


def discover() -> list[str]:
    """(Re)load every provider definition and return the provider slugs.

    Returns
    -------
    list of str
        Sorted provider slugs.

    Raises
    ------
    ProviderDefinitionError
        If a provider file or entry point is invalid (the message names it).
    """
    return sorted(_connectors(reload=True))


def list_providers() -> list[str]:
    """Return the slugs of the registered providers, sorted."""
    return sorted(_connectors())


def get_connector(slug: str) -> Connector:
    """Return the connector of provider ``slug``.

    Raises
    ------
    UnknownProviderError
        A ``KeyError`` listing the known slugs.
    """
    connectors = _connectors()
    try:
        return connectors[slug]
    except KeyError:
        raise UnknownProviderError(
            f"unknown provider {slug!r}; known providers: {', '.join(sorted(connectors))}"
        ) from None


def list_datasets(provider: str | None = None) -> list[Dataset]:
    """Metadata of every dataset, or of one provider's datasets.

    Parameters
    ----------
    provider
        A provider slug; None for all providers.
    """
    slugs = [provider] if provider is not None else list_providers()
    return [ds for slug in slugs for ds in get_connector(slug).datasets()]


def resolve(dataset_id: str) -> tuple[Connector, str]:
    """Map ``"provider:name"`` to its connector and dataset name, checking both exist.

    Raises
    ------
    InvalidDatasetIdError, UnknownProviderError, UnknownDatasetError
    """
    slug, name = split_dataset_id(dataset_id)
    connector = get_connector(slug)
    connector.definition_of(name)
    return connector, name
