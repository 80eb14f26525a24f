"""pystac's I/O for static catalogs: one-time set-ups overlapped, documents over HTTP.

The first document pystac parses (migrated to the latest STAC version) makes it find its
extensions: a scan of every installed package's entry points and about twenty imports,
50-150 ms of CPU once per process. Started in the background as the first document is
requested (:func:`ready`), it runs while that request waits for the network;
:class:`ReadyStacIO` lets it finish before the document is parsed (pystac's discovery is
not thread-safe). The modules of the COG range reader (tifffile and
imagecodecs: 80-300 ms of CPU), which reads the assets once the last document is
in, are imported while the last documents are on their way (:func:`import_cog_reader`).

Documents over HTTP(S) are read with :func:`~cas_xr.sources._http.fetch`: the settings'
retries and deadline, at most ``max_concurrent_requests_per_host`` in flight, and one
kept-alive connection per thread (pystac's own reader opens a connection per document
and waits without a deadline).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Collection
from concurrent.futures import Future
from typing import Any
from urllib.parse import urlsplit

from pystac.stac_io import DefaultStacIO

__all__ = ["ReadyStacIO", "import_cog_reader", "ready"]


def _set_up() -> None:
    import pystac

    catalog = {"type": "Catalog", "id": "-", "description": "-", "stac_version": "1.0.0"}
    pystac.Catalog.from_dict({**catalog, "links": []}, migrate=True)


def _import_cog_reader() -> None:
    import imagecodecs  # noqa: F401
    import tifffile  # noqa: F401


@functools.cache
def ready() -> Future[None]:
    """The set-up of pystac, started on the I/O threads at the first call (once per process)."""
    from cas_xr.sources._http import io_pool

    return io_pool().submit(_set_up)


@functools.cache
def import_cog_reader() -> Future[None]:
    """The COG reader's imports, started on the I/O threads at the first call.

    Nothing needs to wait for them: an import that meets one under way waits for it.
    """
    from cas_xr.sources._http import io_pool

    return io_pool().submit(_import_cog_reader)


class ReadyStacIO(DefaultStacIO):
    """pystac's I/O that waits for :func:`ready` after fetching a document, before parsing.

    Parameters
    ----------
    provider
        Provider slug, named in errors.
    requesting
        Set as a document is about to be requested (the caller may then go on working
        while the request is on its way).
    ahead
        URLs over HTTP(S) to request at once, before pystac follows the links to them: a
        guess of a document further down (see
        :meth:`~cas_xr.sources._stac_static.StaticStacSource.items`). pystac's read of
        such a URL takes the early answer; one that failed is requested again, and one
        never asked for costs that one request.
    """

    def __init__(
        self,
        provider: str = "",
        requesting: threading.Event | None = None,
        ahead: Collection[str] = (),
    ) -> None:
        super().__init__()
        self.provider = provider
        self.requesting = requesting
        self._ahead: dict[str, Future[str]] = {}
        if ahead:
            from cas_xr.sources._http import io_pool

            self._ahead = {href: io_pool().submit(self._fetch, href) for href in ahead}

    def read_text(self, source: Any, *args: Any, **kwargs: Any) -> str:
        """The document's text, once pystac is set up."""
        ready()  # runs while the document is on its way
        if self.requesting is not None:
            self.requesting.set()
        text = super().read_text(source, *args, **kwargs)
        ready().result()
        return text

    def read_text_from_href(self, href: str) -> str:
        """The text at ``href``: over HTTP(S) through :func:`~cas_xr.sources._http.fetch`.

        Raises
        ------
        SourceError
            For a URL that cannot be read within the settings' retries and deadline.
        """
        if urlsplit(href).scheme not in ("http", "https"):
            return super().read_text_from_href(href)
        early = self._ahead.pop(href, None)
        if early is not None and early.exception() is None:
            return early.result()
        return self._fetch(href)  # not read ahead, or its early read failed: as asked

    def _fetch(self, href: str) -> str:
        from cas_xr.sources._http import fetch

        response = fetch(href, provider=self.provider)
        response.encoding = "utf-8"  # JSON (RFC 8259), whatever the server says
        return response.text
