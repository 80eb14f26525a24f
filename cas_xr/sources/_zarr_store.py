"""A read-only Zarr store over HTTP(S) that fetches through :mod:`cas_xr.sources._http`.

fsspec's HTTP filesystem (what ``xarray.open_zarr(URL)`` uses) sends its own requests:
no per-host cap, no retries, no deadline. :class:`HttpStore` is a zarr v3 store whose
keys are fetched with :func:`~cas_xr.sources._http.fetch` on the I/O threads (kept-alive
sessions): at most ``max_concurrent_requests_per_host`` in flight per host and process,
429/5xx and timeouts retried within ``provider_timeout_s``. Zarr asks for many keys at
once (the chunks of a selection, see :mod:`cas_xr.sources._zarr_reads`): at most the
host's cap of them are handed to the I/O threads at a time, so a slow host never holds
every I/O thread. A missing key (404) is a chunk never written (zarr fills it). A URL's
query (a signing token) is kept on every key's URL and left out of errors. The metadata
documents of the store and the indexes of its shards are fetched once per store; listing
a store without consolidated metadata (a server's folder index) is left to fsspec.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from zarr.abc.store import (
    ByteRequest,
    OffsetByteRequest,
    RangeByteRequest,
    Store,
    SuffixByteRequest,
)

from cas_xr.config import get_settings, settings_generation
from cas_xr.errors import SourceError
from cas_xr.sources._http import fetch, io_pool, public_url

if TYPE_CHECKING:
    from zarr.core.buffer import Buffer, BufferPrototype

__all__ = ["HttpStore"]

#: Keys of a store's metadata (v2, consolidated v2, v3): small, read when it is opened.
_METADATA = frozenset({".zmetadata", ".zgroup", ".zattrs", ".zarray", "zarr.json"})
#: Metadata documents and shard indexes a store keeps (the oldest go first).
_KEPT = 65536
#: Hand-over slots per (event loop, settings, host); see :func:`_slots`.
_SLOTS: dict[tuple[int, int, str], asyncio.Semaphore] = {}


def _slots(host: str) -> asyncio.Semaphore:
    """How many of this loop's fetches from ``host`` may be on the I/O threads at once."""
    key = (id(asyncio.get_running_loop()), settings_generation(), host)
    if key not in _SLOTS:  # only the running loop's thread touches its own keys
        _SLOTS[key] = asyncio.Semaphore(get_settings().max_concurrent_requests_per_host)
    return _SLOTS[key]


def _range(byte_range: ByteRequest | None) -> str | None:
    """The ``Range`` header of ``byte_range`` (None: the whole object)."""
    if byte_range is None:
        return None
    if isinstance(byte_range, RangeByteRequest):
        return f"bytes={byte_range.start}-{byte_range.end - 1}"
    if isinstance(byte_range, OffsetByteRequest):
        return f"bytes={byte_range.offset}-"
    if isinstance(byte_range, SuffixByteRequest):
        return f"bytes=-{byte_range.suffix}"
    raise TypeError(f"unexpected byte range {byte_range!r}")


def _cut(body: bytes, byte_range: ByteRequest | None) -> bytes:
    """The bytes of ``byte_range`` from a whole object (a server that ignored the range)."""
    if isinstance(byte_range, RangeByteRequest):
        return body[byte_range.start : byte_range.end]
    if isinstance(byte_range, OffsetByteRequest):
        return body[byte_range.offset :]
    if isinstance(byte_range, SuffixByteRequest):
        return body[-byte_range.suffix :] if byte_range.suffix else b""
    return body


def _get(url: str, byte_range: ByteRequest | None, provider: str) -> bytes | None:
    """The bytes of ``url`` (``byte_range`` of them), None for a missing key (404).

    Raises
    ------
    SourceError
        As :func:`~cas_xr.sources._http.fetch`, naming the URL without its query.
    """
    header = _range(byte_range)
    try:
        response = fetch(
            url, provider=provider, headers=None if header is None else {"Range": header},
            accept_status=(404, 416),
        )  # fmt: skip
    except SourceError as err:  # said again without the URL's query (a signing token)
        query = urlsplit(url).query
        said = err.message.replace(query, "") if query else err.message
        raise SourceError(said, provider=provider, url=public_url(url), kind=err.kind) from None
    if response.status_code == 404:
        return None
    if response.status_code == 416:  # a range past the end: nothing there
        return b""
    return response.content if response.status_code == 206 else _cut(response.content, byte_range)


class HttpStore(Store):
    """A read-only Zarr store at an HTTP(S) URL, read with cas_xr's retries and host caps.

    Parameters
    ----------
    url
        The store's root URL (its query, e.g. a signing token, is sent with every key).
    provider
        Provider slug, named in errors.
    """

    def __init__(self, url: str, *, provider: str = "") -> None:
        super().__init__(read_only=True)
        parts = urlsplit(url)
        self.url = url
        self.provider = provider
        self._root = parts._replace(query="", fragment="").geturl().rstrip("/")
        self._query = parts.query
        self._kept: dict[tuple[str, ByteRequest | None], bytes | None] = {}
        self._pending: dict[tuple[str, ByteRequest | None], asyncio.Future[bytes | None]] = {}
        self._listing: Store | None = None

    def __eq__(self, value: object) -> bool:
        return isinstance(value, HttpStore) and (value.url, value.provider) == (
            self.url,
            self.provider,
        )

    def __hash__(self) -> int:
        return hash((self.url, self.provider))

    def __repr__(self) -> str:
        return f"HttpStore({public_url(self.url)!r})"

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_listing"] = None  # fsspec's, made again where it is needed
        state["_pending"] = {}  # fetches of this process's event loop
        return state

    def key_url(self, key: str) -> str:
        """The URL of ``key``."""
        return f"{self._root}/{key}" + (f"?{self._query}" if self._query else "")

    @property
    def supports_writes(self) -> bool:
        """Never: the store is read-only."""
        return False

    @property
    def supports_deletes(self) -> bool:
        """Never: the store is read-only."""
        return False

    @property
    def supports_listing(self) -> bool:
        """Through fsspec (a server's folder index), for stores without consolidated metadata."""
        return True

    async def get(
        self, key: str, prototype: BufferPrototype, byte_range: ByteRequest | None = None
    ) -> Buffer | None:
        """The value of ``key`` (``byte_range`` of it), None when the server has none."""
        if (byte_range is None and key.rpartition("/")[2] in _METADATA) or isinstance(
            byte_range, SuffixByteRequest
        ):
            data = await self._kept_once(key, byte_range)
        else:
            data = await self._fetch(key, byte_range)
        return None if data is None else prototype.buffer.from_bytes(data)

    async def _fetch(self, key: str, byte_range: ByteRequest | None) -> bytes | None:
        url = self.key_url(key)
        async with _slots(urlsplit(url).netloc):
            return await asyncio.wrap_future(io_pool().submit(_get, url, byte_range, self.provider))

    async def _kept_once(self, key: str, byte_range: ByteRequest | None) -> bytes | None:
        """A metadata document or a shard's index (its last bytes), fetched once per store.

        Every inner chunk read from a shard reads the shard's index first: the reads of
        one shard's chunks, at once or later, share one request for it.
        """
        name = (key, byte_range)
        if name in self._kept:
            return self._kept[name]
        pending = self._pending.get(name)
        if pending is not None:
            return await pending
        pending = self._pending[name] = asyncio.ensure_future(self._fetch(key, byte_range))
        try:
            data = await pending
        finally:
            del self._pending[name]
        self._kept[name] = data
        while len(self._kept) > _KEPT:
            del self._kept[next(iter(self._kept))]
        return data

    async def get_partial_values(
        self,
        prototype: BufferPrototype,
        key_ranges: Iterable[tuple[str, ByteRequest | None]],
    ) -> list[Buffer | None]:
        """The values of ``key_ranges``, fetched concurrently."""
        return list(await asyncio.gather(*(self.get(key, prototype, r) for key, r in key_ranges)))

    async def exists(self, key: str) -> bool:
        """Whether the server has ``key``."""
        from zarr.core.buffer import default_buffer_prototype

        return await self.get(key, default_buffer_prototype()) is not None

    async def set(self, key: str, value: Buffer) -> None:
        """Refused: the store is read-only."""
        self._check_writable()

    async def delete(self, key: str) -> None:
        """Refused: the store is read-only."""
        self._check_writable()

    def _lister(self) -> Store:
        if self._listing is None:
            from zarr.storage import FsspecStore

            self._listing = FsspecStore.from_url(self.url, read_only=True)
        return self._listing

    def list(self) -> AsyncIterator[str]:
        """Every key, as fsspec finds them in the server's folder indexes."""
        return self._lister().list()

    def list_prefix(self, prefix: str) -> AsyncIterator[str]:
        """The keys under ``prefix``, as fsspec finds them."""
        return self._lister().list_prefix(prefix)

    def list_dir(self, prefix: str) -> AsyncIterator[str]:
        """The keys and folders right under ``prefix``, as fsspec finds them."""
        return self._lister().list_dir(prefix)
