"""Jobs: their states, status, lists and results."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import Field, RootModel

from cas_xr.ogc._document import Document, Link

__all__ = ["ACTIVE", "FINAL", "JobList", "JobResults", "JobStatus", "StatusInfo"]


class JobStatus(StrEnum):
    """The states of a job (members compare equal to their values: ``"running"``)."""

    ACCEPTED = "accepted"
    RUNNING = "running"
    SUCCESSFUL = "successful"
    FAILED = "failed"
    DISMISSED = "dismissed"


#: The states of a job that has not finished (queued or running).
ACTIVE = frozenset({JobStatus.ACCEPTED, JobStatus.RUNNING})
#: The states of a job that has finished: it changes no more.
FINAL = frozenset(JobStatus) - ACTIVE


class StatusInfo(Document):
    """The status of a job.

    ``status`` is a :class:`JobStatus`; a state this package does not know (another
    server's extension) is kept as the plain string it was sent as, and counts as not
    finished.
    """

    jobID: str
    processID: str | None = None
    type: str = "process"
    status: Annotated[JobStatus | str, Field(union_mode="left_to_right")]
    message: str | None = None
    created: datetime | None = None
    started: datetime | None = None
    finished: datetime | None = None
    updated: datetime | None = None
    progress: int | None = Field(default=None, ge=0, le=100)
    links: list[Link] = Field(default_factory=list)

    @property
    def done(self) -> bool:
        """Whether the job has finished (successful, failed or dismissed)."""
        return self.status in FINAL


class JobList(Document):
    """Jobs of a service."""

    jobs: list[StatusInfo]
    links: list[Link] = Field(default_factory=list)


class JobResults(RootModel[dict[str, Any]]):
    """The outputs of a successful job: output id -> value (``results["return_value"]``)."""

    def __getitem__(self, output_id: str) -> Any:
        return self.root[output_id]

    def __repr__(self) -> str:
        return self.model_dump_json(indent=2)
