"""A STAC API (item search) opened lazily with pystac-client and odc-stac.

Every item of the collection that intersects the request is read (pagination followed),
so a polygon across a tile edge gets full coverage. Searches go through
:class:`~cas_xr.sources._stac_io.StacIO`: the settings' retries with backoff on 429/5xx,
timeouts and connection errors, bounded by ``provider_timeout_s``, the per-host cap, and
failures as :class:`~cas_xr.errors.SourceError`. Results are cached for
``metadata_cache_ttl_s``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from pydantic import ValidationError
from pystac_client import Client
from pystac_client.conformance import ConformanceClasses

from cas_xr.config import SettingsBoundCache
from cas_xr.errors import ProviderDefinitionError, SourceError, validation_problems
from cas_xr.sources._stac_api_options import StacApiOptions
from cas_xr.sources._stac_common import StacItemsSource
from cas_xr.sources._stac_io import StacIO

if TYPE_CHECKING:
    from datetime import datetime

    import pystac

    from cas_xr.models import TimeRange
    from cas_xr.sources._definitions import DatasetDefinition, ProviderDefinition

__all__ = ["StacApiOptions", "StacApiSource", "from_definition"]

_T = TypeVar("_T")

_SEARCHES: SettingsBoundCache[list[pystac.Item]] = SettingsBoundCache(
    lambda s: (s.metadata_cache_ttl_s, 256)
)


@dataclass(frozen=True)
class StacApiSource(StacItemsSource):
    """One asset of one collection of a STAC API.

    Parameters
    ----------
    endpoint
        Root URL of the STAC API (it must conform to item search).
    collection
        Collection id.
    asset
        Asset key holding the raster (one band).
    provider
        Provider slug, for error messages.
    temporal
        Whether items are time steps (kept as a ``time`` dim) rather than tiles of one
        static layer (fused into one ``y, x`` layer).
    query, filter
        ``query`` extension expression and CQL2 filter passed through to the search.
    limit
        Search page size (None: the server's default); every page is read.
    patch_url
        Optional hook that rewrites (e.g. signs) every asset URL before reading.

    Notes
    -----
    The output grid is the grid of the first item (by id), clipped to the requested box
    and snapped outward to whole cells, so pixels are never resampled for aligned tiles.
    Where items overlap, the newest item wins (ties by id), the first valid cell counting.
    """

    protocol: ClassVar[str] = "stac_api"
    endpoint: str
    collection: str
    asset: str = "data"
    provider: str = ""
    temporal: bool = False
    query: Mapping[str, Any] | None = None
    filter: Mapping[str, Any] | str | None = None
    limit: int | None = None
    patch_url: Callable[[str], str] | None = None

    def search(
        self,
        *,
        bbox: tuple[float, float, float, float] | None = None,
        time_range: TimeRange | None = None,
    ) -> list[pystac.Item]:
        """Every item of the collection matching the search (cached, sorted by id).

        Parameters
        ----------
        bbox
            ``(min_lon, min_lat, max_lon, max_lat)``; None for the whole collection.
        time_range
            Items whose time intersects this range; None for all.

        Returns
        -------
        list of pystac.Item

        Raises
        ------
        SourceError
            If the API cannot be reached or answers with an error, is not a STAC API
            with item search, or lacks the extension ``query`` or ``filter`` needs.
        """
        window = None if time_range is None else (time_range.start, time_range.end)
        key = (
            self.endpoint,
            self.collection,
            bbox,
            None if window is None else tuple(t.isoformat() for t in window),
            json.dumps(self.query, sort_keys=True, default=str),
            json.dumps(self.filter, sort_keys=True, default=str),
        )
        cache = _SEARCHES.current()
        items = cache.get(key)
        if items is None:
            items = self._fetch(bbox, window)
            cache.set(key, items)
        return items

    def _fetch(
        self,
        bbox: tuple[float, float, float, float] | None,
        window: tuple[datetime, datetime] | None,
    ) -> list[pystac.Item]:
        client = self._client()

        def run() -> list[pystac.Item]:
            found = client.search(
                collections=[self.collection],
                bbox=bbox,
                datetime=window,
                query=None if self.query is None else dict(self.query),
                filter=None if self.filter is None else _plain(self.filter),
                limit=self.limit,
            )
            return list(found.items())

        unique = {item.id: item for item in self._guarded(run)}  # pages may repeat an item
        return [unique[key] for key in sorted(unique)]

    def _guarded(self, call: Callable[[], _T]) -> _T:
        """Run a pystac-client call; its non-HTTP failures become a :class:`SourceError`."""
        try:
            return call()
        except SourceError:
            raise
        except Exception as err:  # pystac/pystac-client raise many kinds (JSON, STAC types)
            raise SourceError(
                f"cannot read the STAC API's answer: {err}",
                provider=self.provider,
                url=self.endpoint,
            ) from err

    def _client(self) -> Client:
        client = self._guarded(lambda: Client.open(self.endpoint, stac_io=StacIO(self.provider)))
        for conformance, feature in (
            (
                ConformanceClasses.ITEM_SEARCH,
                "item search (a static catalog: protocol stac_static)",
            ),
            *([(ConformanceClasses.QUERY, "the query extension")] if self.query else []),
            *([(ConformanceClasses.FILTER, "the filter extension")] if self.filter else []),
        ):
            if not client.conforms_to(conformance):
                raise SourceError(
                    f"the endpoint does not conform to {feature}",
                    provider=self.provider,
                    url=self.endpoint,
                    kind="unsupported",
                )
        return client

    def _candidates(
        self, bbox: tuple[float, float, float, float] | None, time_range: TimeRange | None
    ) -> list[pystac.Item]:
        return self.search(bbox=bbox, time_range=time_range)

    def _no_items(self) -> None:
        """Raise ``kind="definition"`` if the API does not serve the collection."""
        client = self._client()
        known = sorted(self._guarded(lambda: [c.id for c in client.get_collections()]))
        if self.collection not in known:
            raise SourceError(
                f"collection {self.collection!r} is not served by the STAC API (it has "
                f"{known[:20]}{' ...' if len(known) > 20 else ''})",
                provider=self.provider,
                url=self.endpoint,
                kind="definition",
            )


def _plain(value: Mapping[str, Any] | str) -> dict[str, Any] | str:
    return value if isinstance(value, str) else dict(value)


def from_definition(provider: ProviderDefinition, dataset: DatasetDefinition) -> StacApiSource:
    """The source of ``dataset`` of a ``stac_cog`` provider (catalog factory).

    Raises
    ------
    ProviderDefinitionError
        If the merged ``options`` do not match :class:`StacApiOptions`.
    MissingDependencyError
        If the signing hook needs a package that is not installed.
    """
    origin = f"stac_cog options of dataset {dataset.name!r} of provider {provider.slug!r}"
    try:
        options = StacApiOptions.model_validate(provider.options_for(dataset))
        patch_url = options.url_patcher()
    except ValidationError as err:
        problems = validation_problems(err, "options")
        raise ProviderDefinitionError(f"invalid {origin}: {problems}") from None
    except ProviderDefinitionError as err:
        raise ProviderDefinitionError(f"invalid {origin}: {err}") from None
    return StacApiSource(
        endpoint=provider.endpoint,
        collection=dataset.collection or dataset.name,
        asset=dataset.asset,
        provider=provider.slug,
        temporal=dataset.is_temporal,
        query=options.query,
        filter=options.filter,
        limit=options.limit,
        patch_url=patch_url,
    )
