"""What every document shares, and links."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["REL", "Document", "Link"]

_OGC_REL = "http://www.opengis.net/def/rel/ogc/1.0/"
#: The standard's link relations, by short name.
REL = {
    "conformance": _OGC_REL + "conformance",
    "processes": _OGC_REL + "processes",
    "job-list": _OGC_REL + "job-list",
    "execute": _OGC_REL + "execute",
    "results": _OGC_REL + "results",
}


class Document(BaseModel):
    """A JSON document: unknown members are kept, and it shows itself as JSON.

    Written by the service without null members (``exclude_none=True``).
    """

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    def __repr__(self) -> str:
        return self.model_dump_json(indent=2, exclude_none=True, by_alias=True)


class Link(Document):
    """A web link."""

    href: str
    rel: str | None = None
    type: str | None = None
    title: str | None = None
    hreflang: str | None = None
