"""A connector binds a provider definition to the source that reads its protocol."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from cas_xr.catalog._factories import build_source
from cas_xr.errors import CasError, UnknownDatasetError
from cas_xr.models import Dataset
from cas_xr.sources._base import Prefetching
from cas_xr.sources._definitions import DatasetDefinition, ProviderDefinition
from cas_xr.sources._local_options import is_url

if TYPE_CHECKING:
    import xarray as xr

    from cas_xr.models import TimeRange
    from cas_xr.sources import Source

__all__ = ["Connector"]


class Connector:
    """The datasets of one provider and the way to open them.

    Parameters
    ----------
    definition
        The validated provider definition.
    """

    def __init__(self, definition: ProviderDefinition) -> None:
        self.definition = definition
        self._datasets = {d.name: d for d in definition.datasets}

    @functools.cached_property
    def fingerprint(self) -> str:
        """The definition as JSON (what a cached result was computed with), made once."""
        return self.definition.model_dump_json()

    @property
    def slug(self) -> str:
        """The provider slug (the part of dataset ids before the colon)."""
        return self.definition.slug

    def __repr__(self) -> str:
        protocol = self.definition.protocol.value
        return f"Connector({self.slug!r}, protocol={protocol!r}, datasets={list(self._datasets)})"

    def datasets(self) -> list[Dataset]:
        """Metadata of every dataset of this provider."""
        return [self.definition.dataset_metadata(d) for d in self._datasets.values()]

    def definition_of(self, name: str) -> DatasetDefinition:
        """The definition of dataset ``name``.

        Raises
        ------
        UnknownDatasetError
            Listing the provider's datasets.
        """
        try:
            return self._datasets[name]
        except KeyError:
            raise UnknownDatasetError(
                f"provider {self.slug!r} has no dataset {name!r}; its datasets are "
                f"{sorted(self._datasets)} (`cas-xr datasets --provider {self.slug}`)"
            ) from None

    def dataset(self, name: str) -> Dataset:
        """Metadata of dataset ``name`` (see :meth:`definition_of` for errors)."""
        return self.definition.dataset_metadata(self.definition_of(name))

    def source(self, name: str) -> Source:
        """The :class:`~cas_xr.sources.Source` that reads dataset ``name``.

        Raises
        ------
        SourceError
            If this version of cas_xr cannot read the provider's protocol.
        """
        return build_source(self.definition, self.definition_of(name))

    def prefetch(self, name: str) -> None:
        """Start fetching what opening dataset ``name`` waits for, if its source can.

        Only sources that are :class:`~cas_xr.sources._base.Prefetching` (a static STAC
        catalog's documents, a remote COG's header) do anything, and only for data behind
        a URL: on this machine there is no round trip to hide, and building the source
        (importing its modules) would only slow a request the result cache answers.
        Nothing is raised here; :meth:`open` raises.
        """
        try:
            definition = self.definition_of(name)
            provider = self.definition.for_dataset(definition)
            if not any(is_url(p) for p in (provider.endpoint, definition.path) if p):
                return
            source = self.source(name)
        except CasError:
            return  # opening it says what is wrong
        if isinstance(source, Prefetching):
            source.prefetch()

    def open(
        self,
        name: str,
        *,
        bbox: tuple[float, float, float, float] | None = None,
        time_range: TimeRange | None = None,
        chunks: int | None = None,
    ) -> xr.DataArray:
        """Open dataset ``name`` lazily (see :meth:`cas_xr.sources.Source.open`).

        The DataArray's attrs also carry ``units``, ``valid_range``, ``license``,
        ``citation`` and ``class_names`` from the catalog (zonal results keep them).
        """
        variable = self.definition_of(name).variables[0]
        da = self.source(name).open(bbox=bbox, time_range=time_range, chunks=chunks)
        da = da.rename(variable.name)
        metadata = self.dataset(name)
        da.attrs.update(units=variable.units, license=metadata.license, citation=metadata.citation)
        if variable.valid_range is not None:
            da.attrs["valid_range"] = list(variable.valid_range)
        if variable.class_names:
            da.attrs["class_names"] = dict(variable.class_names)  # zonal's distribution labels
        if da.attrs.get("nodata") is None and variable.nodata_value is not None:
            da.attrs["nodata"] = variable.nodata_value
        return da
