"""Processes: as listed, and described with their inputs and outputs."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from cas_xr.ogc._document import Document, Link

__all__ = [
    "InputDescription",
    "OutputDescription",
    "ProcessDescription",
    "ProcessList",
    "ProcessSummary",
]


class ProcessSummary(Document):
    """A process, as listed by ``/processes``."""

    id: str
    title: str | None = None
    description: str | None = None
    version: str | None = None
    jobControlOptions: list[Literal["sync-execute", "async-execute", "dismiss"]] | None = None
    outputTransmission: list[Literal["value", "reference"]] | None = None
    links: list[Link] = Field(default_factory=list)


class InputDescription(Document):
    """One input of a process: its JSON schema is ``schema_`` (JSON name ``schema``).

    ``minOccurs`` and ``maxOccurs`` default to 1, as the standard says.
    """

    title: str | None = None
    description: str | None = None
    schema_: dict[str, Any] = Field(default_factory=dict, alias="schema")
    minOccurs: int = 1
    maxOccurs: int | Literal["unbounded"] = 1


class OutputDescription(Document):
    """One output of a process: its JSON schema is ``schema_`` (JSON name ``schema``)."""

    title: str | None = None
    description: str | None = None
    schema_: dict[str, Any] = Field(default_factory=dict, alias="schema")


class ProcessDescription(ProcessSummary):
    """A process with its inputs and outputs (OGC process description)."""

    inputs: dict[str, InputDescription] = Field(default_factory=dict)
    outputs: dict[str, OutputDescription] = Field(default_factory=dict)


class ProcessList(Document):
    """The processes of a service."""

    processes: list[ProcessSummary]
    links: list[Link] = Field(default_factory=list)
