"""A Python client of the cas_xr service (or any OGC API - Processes 1.0 service).

Examples
--------
>>> from cas_xr.client import Client, ProcessRequest
>>> client = Client()  # CAS_CLIENT_API_URL, else http://127.0.0.1:8008/
>>> ProcessRequest(duration=2).inputs
{'duration': 2}

The documents it sends and receives are :mod:`cas_xr.ogc`'s, the ones the service
writes; they are re-exported here. Imports only httpx, pydantic and cas_xr's contract
(models, errors and the OGC documents): no GDAL-based package.
"""

from cas_xr.client._client import AsyncClient, Client
from cas_xr.client._config import ClientConfig
from cas_xr.client._errors import ClientError
from cas_xr.ogc import (
    Capabilities,
    ConformanceDeclaration,
    InputDescription,
    JobList,
    JobResults,
    JobStatus,
    Link,
    OutputDescription,
    ProcessDescription,
    ProcessList,
    ProcessRequest,
    ProcessSummary,
    StatusInfo,
)

__all__ = [
    "AsyncClient",
    "Capabilities",
    "Client",
    "ClientConfig",
    "ClientError",
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
