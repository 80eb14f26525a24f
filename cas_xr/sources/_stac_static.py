"""A static STAC catalog (catalog.json + items + COGs) opened lazily with odc-stac."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar
from urllib.parse import quote, urljoin, urlsplit

from cas_xr.config import SettingsBoundCache, settings_generation
from cas_xr.errors import SourceError
from cas_xr.sources._stac_common import StacItemsSource

if TYPE_CHECKING:
    import pystac

    from cas_xr.config import TTLCache
    from cas_xr.models import TimeRange
    from cas_xr.sources._definitions import DatasetDefinition, ProviderDefinition

__all__ = ["StaticStacSource", "from_definition"]

_ITEMS: SettingsBoundCache[list[pystac.Item]] = SettingsBoundCache(
    lambda s: (s.metadata_cache_ttl_s, 256)
)
#: reads under way, by settings generation, endpoint and collection (done: in ``_ITEMS``)
_READING: dict[tuple[int, str, str], Future[list[pystac.Item]]] = {}
_READING_LOCK = threading.Lock()
#: how long :meth:`StaticStacSource.prefetch` waits for its first request to be on its way
_SEND_WAIT_S = 1.0


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

    @property
    def _key(self) -> tuple[str, str]:
        return (self.endpoint, self.collection)

    def items(self) -> list[pystac.Item]:
        """All items of the collection (cached for ``metadata_cache_ttl_s``).

        A read already under way (:meth:`prefetch`, or another thread's call) is waited
        for, not started again.
        """
        cache = _ITEMS.current()
        items = cache.get(self._key)
        return items if items is not None else self._reading(cache).result()

    def prefetch(self) -> None:
        """Start reading the catalog's documents in the background, unless they are at hand.

        What opening the dataset waits for first (catalog, collection and item documents,
        one round trip after the other) is then on its way while the caller does other
        work; :meth:`items` takes the result, or the error. Returns once the first
        request is being sent (the caller's work would hold Python's GIL and keep it
        back). Nothing is read ahead when ``metadata_cache_ttl_s`` is 0 (no cache would
        keep the items until then).
        """
        cache = _ITEMS.current()
        if cache.ttl_s > 0 and cache.max_entries > 0 and cache.get(self._key) is None:
            self._reading(cache, wait=True)

    def _reading(
        self, cache: TTLCache[list[pystac.Item]], *, wait: bool = False
    ) -> Future[list[pystac.Item]]:
        """The read of the items under way, started on its own thread if there is none.

        With ``wait``, a read started here is waited for until its first request is being
        sent (at most :data:`_SEND_WAIT_S`).
        """
        key = (settings_generation(), self.endpoint, self.collection)
        requesting = threading.Event()
        with _READING_LOCK:
            future = _READING.get(key)
            if future is None:
                future = _READING[key] = Future()
                threading.Thread(
                    target=self._read_into, args=(key, future, cache, requesting),
                    name="cas_xr-stac", daemon=True,
                ).start()  # fmt: skip
            else:
                requesting.set()  # not this call's read
        if wait:
            requesting.wait(_SEND_WAIT_S)
        return future

    def _read_into(
        self,
        key: tuple[int, str, str],
        future: Future[list[pystac.Item]],
        cache: TTLCache[list[pystac.Item]],
        requesting: threading.Event,
    ) -> None:
        """Read the items into ``cache``, then settle ``future``, no longer under way."""
        result: list[pystac.Item] | BaseException
        try:
            result = self._read_items(requesting)
            cache.set(self._key, result)
        except BaseException as err:  # the callers of items() get it, in their threads
            result = err
        requesting.set()  # failed before any request, say
        with _READING_LOCK:
            del _READING[key]  # from now on a call takes the cache, or reads again
        if isinstance(result, BaseException):
            future.set_exception(result)
        else:
            future.set_result(result)

    def _read_items(self, requesting: threading.Event | None = None) -> list[pystac.Item]:
        import pystac

        from cas_xr.sources._pystac_ready import ReadyStacIO

        io = ReadyStacIO(self.provider, requesting, ahead=self._guesses())
        try:
            root = pystac.Catalog.from_file(self.endpoint, stac_io=io)
        except SourceError:
            raise  # it names the URL and what went wrong
        except Exception as err:  # pystac raises many kinds (I/O, JSON, STAC errors)
            raise SourceError(
                f"cannot read the STAC catalog: {err}", provider=self.provider, url=self.endpoint
            ) from err
        child = _find_child(root, self.collection)
        if child is None:
            known = sorted(c.id for c in root.get_children())
            raise SourceError(
                f"collection {self.collection!r} is not in the catalog (it has {known})",
                provider=self.provider,
                url=self.endpoint,
                kind="definition",
            )
        _resolve_tree(child)
        return sorted(child.get_items(recursive=True), key=lambda it: it.id)

    def _guesses(self) -> list[str]:
        """Where the collection's document usually lies, if the catalog is over HTTP(S).

        The usual layout (pystac's and stac-fastapi's static exports, odc's) keeps it at
        ``<collection>/collection.json`` beside ``catalog.json``: read at once with the
        catalog, a round trip is saved when the catalog's link leads there.
        """
        if urlsplit(self.endpoint).scheme not in ("http", "https"):
            return []
        return [urljoin(self.endpoint, f"{quote(self.collection)}/collection.json")]

    def _candidates(
        self, bbox: tuple[float, float, float, float] | None, time_range: TimeRange | None
    ) -> list[pystac.Item]:
        return self.items()


def _find_child(root: pystac.Catalog, collection: str) -> pystac.Catalog | None:
    """The catalog or collection ``collection`` under ``root``.

    pystac reads first the child links whose href names the id (one document, in the
    usual layout ``<id>/collection.json``), then the others one by one; when no href names
    it, every child of ``root`` is read at once instead.
    """
    links = root.get_child_links()
    if not any(collection in (link.get_href() or "") for link in links):
        for future in _resolve_at_once(links, root.get_root()):
            future.result()
    return root.get_child(collection, recursive=True)


def _resolve_tree(collection: pystac.Catalog) -> None:
    """Read the documents under ``collection`` a level at a time, each level's at once.

    pystac reads links one by one as it walks; here the item and child documents of
    ``collection`` are fetched together, then those of its sub-catalogs, and so on. Each
    read waits a round trip; at most ``max_concurrent_requests_per_host`` are in flight.
    While the first level's are on their way, the COG reader's modules are imported.
    """
    import pystac

    from cas_xr.sources._pystac_ready import import_cog_reader

    root = collection.get_root()
    level, seen = [collection], {id(collection)}
    rels = (pystac.RelType.ITEM, pystac.RelType.CHILD)
    while level:
        links = [link for c in level for link in c.links if link.rel in rels]
        pending = _resolve_at_once(links, root)
        import_cog_reader()  # needed once the items are in (once per process)
        for future in pending:
            future.result()
        children = [
            link.target
            for c in level
            for link in c.get_child_links()
            if isinstance(link.target, pystac.Catalog)
        ]
        level = [c for c in children if id(c) not in seen]
        seen.update(id(c) for c in level)


def _resolve_at_once(
    links: list[pystac.Link], root: pystac.Catalog | None
) -> list[Future[pystac.Link]]:
    """Start resolving ``links`` at once on the I/O threads; the futures of the reads."""
    from cas_xr.sources._http import io_pool

    pool = io_pool()
    return [
        pool.submit(link.resolve_stac_object, root=root) for link in links if not link.is_resolved()
    ]


def from_definition(provider: ProviderDefinition, dataset: DatasetDefinition) -> StaticStacSource:
    """The source of ``dataset`` of a ``stac_static`` provider (catalog factory)."""
    return StaticStacSource(
        endpoint=provider.endpoint,
        collection=dataset.collection or dataset.name,
        asset=dataset.asset,
        provider=provider.slug,
        temporal=dataset.is_temporal,
    )
