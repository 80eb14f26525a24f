"""The documents of OGC API - Processes - Part 1: Core 1.0, as pydantic models.

One definition for both sides: :mod:`cas_xr.service` writes these documents and
:mod:`cas_xr.client` reads them. Attributes have the standard's JSON names, camelCase
included (``jobID``, ``processID``, ``conformsTo``...). The documents accept members
they do not know, so that the client reads any OGC API - Processes 1.0 service; each
shows itself as JSON.

Imports only pydantic: no part of cas_xr beyond this package.

Examples
--------
>>> from cas_xr.ogc import JobStatus, StatusInfo
>>> status = StatusInfo.model_validate({"jobID": "job_0", "status": "running"})
>>> status.status is JobStatus.RUNNING, status.done
(True, False)
"""

from cas_xr.ogc._document import REL, Link
from cas_xr.ogc._execute import ProcessRequest, StrictProcessRequest, Subscriber
from cas_xr.ogc._jobs import ACTIVE, FINAL, JobList, JobResults, JobStatus, StatusInfo
from cas_xr.ogc._landing import Capabilities, ConformanceDeclaration
from cas_xr.ogc._problem import Problem
from cas_xr.ogc._processes import (
    InputDescription,
    OutputDescription,
    ProcessDescription,
    ProcessList,
    ProcessSummary,
)

__all__ = [
    "ACTIVE",
    "FINAL",
    "REL",
    "Capabilities",
    "ConformanceDeclaration",
    "InputDescription",
    "JobList",
    "JobResults",
    "JobStatus",
    "Link",
    "OutputDescription",
    "Problem",
    "ProcessDescription",
    "ProcessList",
    "ProcessRequest",
    "ProcessSummary",
    "StatusInfo",
    "StrictProcessRequest",
    "Subscriber",
]
