"""pystac's one-time set-up, done while the first STAC document is on its way.

The first document pystac parses (migrated to the latest STAC version) makes it find its
extensions: a scan of every installed package's entry points and about twenty imports,
50-150 ms of CPU once per process. Started in the background before the first request
(:func:`ready`), it runs while that request waits for the network; :class:`ReadyStacIO`
lets it finish before the document is parsed (pystac's discovery is not thread-safe).
"""

from __future__ import annotations

import functools
from concurrent.futures import Future
from typing import Any

from pystac.stac_io import DefaultStacIO

__all__ = ["ReadyStacIO", "ready"]


def _set_up() -> None:
    import pystac

    catalog = {"type": "Catalog", "id": "-", "description": "-", "stac_version": "1.0.0"}
    pystac.Catalog.from_dict({**catalog, "links": []}, migrate=True)


@functools.cache
def ready() -> Future[None]:
    """The set-up of pystac, started on the I/O threads at the first call (once per process)."""
    from cas_xr.sources._http import io_pool

    return io_pool().submit(_set_up)


class ReadyStacIO(DefaultStacIO):
    """pystac's I/O that waits for :func:`ready` after fetching a document, before parsing."""

    def read_text(self, source: Any, *args: Any, **kwargs: Any) -> str:
        """The document's text, once pystac is set up."""
        text = super().read_text(source, *args, **kwargs)
        ready().result()
        return text
