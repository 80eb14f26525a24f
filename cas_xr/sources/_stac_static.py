"""A static STAC catalog (catalog.json + items + COGs) opened lazily with odc-stac."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from cas_xr.config import SettingsBoundCache
from cas_xr.errors import SourceError
from cas_xr.sources._stac_common import StacItemsSource

if TYPE_CHECKING:
    import pystac

    from cas_xr.models import TimeRange
    from cas_xr.sources._definitions import DatasetDefinition, ProviderDefinition

__all__ = ["StaticStacSource", "from_definition"]

_ITEMS: SettingsBoundCache[list[pystac.Item]] = SettingsBoundCache(
    lambda s: (s.metadata_cache_ttl_s, 256)
)


@dataclass(frozen=True)
class StaticStacSource(StacItemsSource):
    """One asset of one collection of a static STAC catalog.

    Parameters
    ----------
    endpoint
        Path or URL of the root ``catalog.json``.
    collection
        Collection id.
    asset
        Asset key holding the raster (one band).
    provider
        Provider slug, for error messages and provenance.
    temporal
        Whether items are time steps (kept as a ``time`` dim) rather than tiles of one
        static layer (fused into one ``y, x`` layer).
    patch_url
        Optional hook that rewrites (e.g. signs) every asset URL before reading.

    Notes
    -----
    The output grid is the grid of the first item (by id), clipped to the requested box
    and snapped outward to whole cells, so pixels are never resampled for aligned tiles.
    Where items overlap, the newest item wins (ties by id), the first valid cell counting.
    """

    protocol: ClassVar[str] = "stac_static"
    endpoint: str
    collection: str
    asset: str = "data"
    provider: str = ""
    temporal: bool = False
    patch_url: Callable[[str], str] | None = None

    def items(self) -> list[pystac.Item]:
        """All items of the collection (cached for ``metadata_cache_ttl_s``)."""
        cache = _ITEMS.current()
        key = (self.endpoint, self.collection)
        items = cache.get(key)
        if items is None:
            items = self._read_items()
            cache.set(key, items)
        return items

    def _read_items(self) -> list[pystac.Item]:
        import pystac

        from cas_xr.sources._pystac_ready import ReadyStacIO, ready

        ready()  # pystac's set-up runs while the catalog's first document is fetched
        try:
            root = pystac.Catalog.from_file(self.endpoint, stac_io=ReadyStacIO())
        except Exception as err:  # pystac raises many kinds (I/O, JSON, STAC errors)
            raise SourceError(
                f"cannot read the STAC catalog: {err}", provider=self.provider, url=self.endpoint
            ) from err
        child = root.get_child(self.collection, recursive=True)
        if child is None:
            known = sorted(c.id for c in root.get_children())
            raise SourceError(
                f"collection {self.collection!r} is not in the catalog (it has {known})",
                provider=self.provider,
                url=self.endpoint,
                kind="definition",
            )
        _resolve_items(child)
        return sorted(child.get_items(recursive=True), key=lambda it: it.id)

    def _candidates(
        self, bbox: tuple[float, float, float, float] | None, time_range: TimeRange | None
    ) -> list[pystac.Item]:
        return self.items()


def _resolve_items(collection: pystac.Catalog) -> None:
    """Read the item documents of ``collection`` at once (pystac reads links one by one).

    Each read waits a round trip; at most ``max_concurrent_requests_per_host`` are in
    flight at once.
    """
    import threading

    import pystac

    from cas_xr.config import get_settings
    from cas_xr.sources._http import io_pool

    links = [link for link in collection.get_links(pystac.RelType.ITEM) if not link.is_resolved()]
    if len(links) < 2:
        return
    root = collection.get_root()
    gate = threading.BoundedSemaphore(get_settings().max_concurrent_requests_per_host)

    def resolve(link: pystac.Link) -> None:
        with gate:
            link.resolve_stac_object(root=root)

    list(io_pool().map(resolve, links))


def from_definition(provider: ProviderDefinition, dataset: DatasetDefinition) -> StaticStacSource:
    """The source of ``dataset`` of a ``stac_static`` provider (catalog factory)."""
    return StaticStacSource(
        endpoint=provider.endpoint,
        collection=dataset.collection or dataset.name,
        asset=dataset.asset,
        provider=provider.slug,
        temporal=dataset.is_temporal,
    )
