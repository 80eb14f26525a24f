"""The provider catalog: provider definitions as data, and the registry."""

from cas_xr.catalog._connector import Connector
from cas_xr.catalog._registry import (
    ENTRY_POINT_GROUP,
    discover,
    get_connector,
    list_datasets,
    list_providers,
    resolve,
)
from cas_xr.catalog._schema import (
    DatasetDefinition,
    ProviderDefinition,
    load_provider_file,
    parse_provider,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "Connector",
    "DatasetDefinition",
    "ProviderDefinition",
    "discover",
    "get_connector",
    "list_datasets",
    "list_providers",
    "load_provider_file",
    "parse_provider",
    "resolve",
]
