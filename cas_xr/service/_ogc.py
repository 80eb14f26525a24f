"""The JSON documents of OGC API - Processes - Part 1: Core 1.0, as pydantic models.

Field names are the standard's JSON names, camelCase included (``jobID``,
``conformsTo``...). Responses are written without null members.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel

from cas_xr.client._models import JobStatus  # the standard's states, one definition for both

__all__ = [
    "CONFORMANCE",
    "REL",
    "ConformanceDeclaration",
    "Execute",
    "InputDescription",
    "JobList",
    "JobResults",
    "JobStatus",
    "LandingPage",
    "Link",
    "OutputDescription",
    "Problem",
    "ProcessDescription",
    "ProcessList",
    "ProcessSummary",
    "StatusInfo",
    "Subscriber",
]

_CONF = "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/"
CONFORMANCE = [
    _CONF + name
    for name in ("core", "ogc-process-description", "json", "oas30", "job-list", "dismiss")
]

_OGC_REL = "http://www.opengis.net/def/rel/ogc/1.0/"
REL = {
    "conformance": _OGC_REL + "conformance",
    "processes": _OGC_REL + "processes",
    "job-list": _OGC_REL + "job-list",
    "execute": _OGC_REL + "execute",
    "results": _OGC_REL + "results",
}


class _Document(BaseModel):
    model_config = ConfigDict(populate_by_name=True)


class Link(_Document):
    """A web link."""

    href: str
    rel: str
    type: str | None = None
    title: str | None = None
    hreflang: str | None = None


class LandingPage(_Document):
    """The landing page: what the service is and where its resources are."""

    title: str
    description: str
    links: list[Link]


class ConformanceDeclaration(_Document):
    """The conformance classes the service implements."""

    conformsTo: list[str]


class ProcessSummary(_Document):
    """A process, as listed by ``/processes``."""

    id: str
    title: str
    description: str
    version: str
    jobControlOptions: list[Literal["sync-execute", "async-execute", "dismiss"]]
    outputTransmission: list[Literal["value", "reference"]] = ["value"]
    links: list[Link] = Field(default_factory=list)


class InputDescription(_Document):
    """One input of a process."""

    title: str
    description: str = ""
    schema_: dict[str, Any] = Field(alias="schema")
    minOccurs: int = 1
    maxOccurs: int = 1


class OutputDescription(_Document):
    """One output of a process."""

    title: str
    description: str = ""
    schema_: dict[str, Any] = Field(alias="schema")


class ProcessDescription(ProcessSummary):
    """A process with its inputs and outputs (OGC process description)."""

    inputs: dict[str, InputDescription]
    outputs: dict[str, OutputDescription]


class ProcessList(_Document):
    """The processes of the service."""

    processes: list[ProcessSummary]
    links: list[Link]


class StatusInfo(_Document):
    """The status of a job."""

    jobID: str
    processID: str
    type: Literal["process"] = "process"
    status: JobStatus
    message: str | None = None
    created: datetime | None = None
    started: datetime | None = None
    finished: datetime | None = None
    updated: datetime | None = None
    progress: int | None = Field(default=None, ge=0, le=100)
    links: list[Link] = Field(default_factory=list)


class JobList(_Document):
    """Jobs, oldest first."""

    jobs: list[StatusInfo]
    links: list[Link]


class JobResults(RootModel[dict[str, Any]]):
    """The outputs of a successful job: output id -> value."""


class Subscriber(_Document):
    """Callback URLs (accepted for compatibility; this service does not call them)."""

    successUri: str | None = None
    inProgressUri: str | None = None
    failedUri: str | None = None


class Execute(_Document):
    """An execute request: the process inputs and how to return the outputs."""

    model_config = ConfigDict(extra="forbid")

    inputs: dict[str, Any] | None = None
    outputs: dict[str, Any] | None = None
    response: Literal["raw", "document"] = "raw"
    subscriber: Subscriber | None = None


class Problem(_Document):
    """An RFC 7807 problem detail."""

    type: str
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
