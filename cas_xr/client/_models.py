"""What the client sends and receives: OGC API - Processes documents as pydantic models.

Attributes have the JSON names (``jobID``, ``processID``, ``conformsTo``...). The
models accept members they do not know, so that the client works with any
OGC API - Processes 1.0 server; each shows itself as JSON.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, RootModel, model_validator

__all__ = [
    "Capabilities",
    "ConformanceDeclaration",
    "InputDescription",
    "JobList",
    "JobResults",
    "JobStatus",
    "Link",
    "OutputDescription",
    "ProcessDescription",
    "ProcessList",
    "ProcessRequest",
    "ProcessSummary",
    "StatusInfo",
]


class _Document(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    def __repr__(self) -> str:
        return self.model_dump_json(indent=2, exclude_none=True, by_alias=True)


class Link(_Document):
    """A web link."""

    href: str
    rel: str | None = None
    type: str | None = None
    title: str | None = None
    hreflang: str | None = None


class Capabilities(_Document):
    """The landing page of a service."""

    title: str | None = None
    description: str | None = None
    links: list[Link] = Field(default_factory=list)


class ConformanceDeclaration(_Document):
    """The conformance classes a service implements."""

    conformsTo: list[str]


class ProcessSummary(_Document):
    """A process as listed."""

    id: str
    title: str | None = None
    description: str | None = None
    version: str | None = None
    jobControlOptions: list[str] | None = None
    outputTransmission: list[str] | None = None
    links: list[Link] | None = None


class InputDescription(_Document):
    """One input of a process (its JSON schema is ``schema_``, JSON name ``schema``)."""

    title: str | None = None
    description: str | None = None
    schema_: dict[str, Any] = Field(default_factory=dict, alias="schema")
    minOccurs: int | None = None
    maxOccurs: int | str | None = None


class OutputDescription(_Document):
    """One output of a process (its JSON schema is ``schema_``)."""

    title: str | None = None
    description: str | None = None
    schema_: dict[str, Any] = Field(default_factory=dict, alias="schema")


class ProcessDescription(ProcessSummary):
    """A process with its inputs and outputs."""

    inputs: dict[str, InputDescription] = Field(default_factory=dict)
    outputs: dict[str, OutputDescription] = Field(default_factory=dict)


class ProcessList(_Document):
    """The processes of a service."""

    processes: list[ProcessSummary]
    links: list[Link] = Field(default_factory=list)


class JobStatus(StrEnum):
    """The states of a job (``StatusInfo.status`` compares equal to these)."""

    ACCEPTED = "accepted"
    RUNNING = "running"
    SUCCESSFUL = "successful"
    FAILED = "failed"
    DISMISSED = "dismissed"


FINAL = frozenset({JobStatus.SUCCESSFUL, JobStatus.FAILED, JobStatus.DISMISSED})


class StatusInfo(_Document):
    """The status of a job."""

    jobID: str
    processID: str | None = None
    type: str | None = None
    status: str
    message: str | None = None
    created: datetime | None = None
    started: datetime | None = None
    finished: datetime | None = None
    updated: datetime | None = None
    progress: int | None = None
    links: list[Link] | None = None

    @property
    def done(self) -> bool:
        """Whether the job has finished (successful, failed or dismissed)."""
        return self.status in FINAL


class JobList(_Document):
    """Jobs of a service."""

    jobs: list[StatusInfo]
    links: list[Link] = Field(default_factory=list)


class JobResults(RootModel[dict[str, Any]]):
    """The outputs of a job: output id -> value (``results["return_value"]``)."""

    def __getitem__(self, output_id: str) -> Any:
        return self.root[output_id]

    def __repr__(self) -> str:
        return self.model_dump_json(indent=2)


_REQUEST_FIELDS = frozenset({"inputs", "outputs", "response", "subscriber"})


class ProcessRequest(_Document):
    """An execute request.

    Keyword arguments that are not request fields are inputs, and a mapping without an
    ``inputs`` member is taken as the inputs: ``ProcessRequest(duration=2)`` and
    ``{"duration": 2}`` both mean ``ProcessRequest(inputs={"duration": 2})``.

    Parameters
    ----------
    inputs
        Input id -> value.
    outputs
        Which outputs to return, and how (server-specific; usually left out).
    response
        ``"raw"`` or ``"document"`` (synchronous execution only).
    subscriber
        Callback URLs (``successUri``, ``inProgressUri``, ``failedUri``).

    Examples
    --------
    >>> ProcessRequest(duration=2).inputs
    {'duration': 2}
    >>> ProcessRequest.model_validate({"fail": True}).inputs
    {'fail': True}
    """

    model_config = ConfigDict(extra="forbid")

    inputs: dict[str, Any] | None = None
    outputs: dict[str, Any] | None = None
    response: str | None = None
    subscriber: dict[str, Any] | None = None

    @model_validator(mode="before")
    @classmethod
    def _extra_are_inputs(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        extra = {k: v for k, v in value.items() if k not in _REQUEST_FIELDS}
        if not extra:
            return value
        known = {k: v for k, v in value.items() if k in _REQUEST_FIELDS}
        return {**known, "inputs": {**(known.get("inputs") or {}), **extra}}

    def body(self) -> dict[str, Any]:
        """The JSON body to send."""
        return self.model_dump(mode="json", exclude_none=True)
