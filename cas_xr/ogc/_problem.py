"""Problem details (RFC 7807), the exception document of the standard."""

from __future__ import annotations

from cas_xr.ogc._document import Document

__all__ = ["Problem"]


class Problem(Document):
    """An RFC 7807 problem detail; extension members (``invalid-params``...) are kept."""

    type: str
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
