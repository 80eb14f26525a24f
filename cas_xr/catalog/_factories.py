"""Which source reads which protocol: one factory per protocol, imported on first use."""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from typing import TYPE_CHECKING

from cas_xr.errors import SourceError
from cas_xr.models import Protocol

if TYPE_CHECKING:
    from cas_xr.sources import Source
    from cas_xr.sources._definitions import DatasetDefinition, ProviderDefinition

__all__ = ["build_source"]

#: ``protocol -> "module:function"``; each function takes (provider, dataset) definitions.
_FACTORIES = {
    Protocol.STAC_STATIC: "cas_xr.sources._stac_static:from_definition",
    Protocol.STAC_COG: "cas_xr.sources._stac_api:from_definition",
    Protocol.WCS: "cas_xr.sources._wcs:from_definition",
    Protocol.LOCAL: "cas_xr.sources._local:from_definition",
    Protocol.ZARR: "cas_xr.sources._local:from_definition",
    Protocol.STAC_ZARR: "cas_xr.sources._stac_zarr:from_definition",
}


def build_source(provider: ProviderDefinition, dataset: DatasetDefinition) -> Source:
    """The source that reads ``dataset`` of ``provider``.

    Raises
    ------
    SourceError
        If no source in this version of cas_xr reads the provider's protocol.

    Notes
    -----
    A dataset with its own ``protocol`` or ``endpoint`` is read as if its provider had
    them; a derived dataset (``derive``) is computed from the source of its base dataset.
    """
    if dataset.derive is not None:
        from cas_xr.attributes._derived import DerivedSource

        base = provider.definition_of(dataset.derive.dataset)
        return DerivedSource(
            base=build_source(provider, base),
            function=dataset.derive.function,
            resolution_m=base.resolution_m,
            base_id=f"{provider.slug}:{base.name}",
            nodata=dataset.variables[0].nodata_value,
        )
    provider = provider.for_dataset(dataset)
    target = _FACTORIES.get(provider.protocol)
    if target is None:
        raise SourceError(
            f"protocol {provider.protocol.value!r} is not supported; supported: "
            f"{', '.join(p.value for p in _FACTORIES)}",
            provider=provider.slug,
            url=provider.endpoint,
            kind="unsupported",
        )
    module, function = target.split(":")
    factory: Callable[[ProviderDefinition, DatasetDefinition], Source] = getattr(
        import_module(module), function
    )
    return factory(provider, dataset)
