"""The landing page and the conformance declaration."""

from __future__ import annotations

from pydantic import Field

from cas_xr.ogc._document import Document, Link

__all__ = ["Capabilities", "ConformanceDeclaration"]


class Capabilities(Document):
    """The landing page of a service: what it is, and links to its resources."""

    title: str | None = None
    description: str | None = None
    links: list[Link] = Field(default_factory=list)


class ConformanceDeclaration(Document):
    """The conformance classes a service implements."""

    conformsTo: list[str]
