"""A Python client of the cas_xr service (or any OGC API - Processes 1.0 service).

Examples
--------
>>> from cas_xr.client import Client, ProcessRequest
>>> client = Client()  # CAS_CLIENT_API_URL, else http://127.0.0.1:8008/
>>> ProcessRequest(duration=2).inputs
{'duration': 2}

Imports only httpx, pydantic and cas_xr's contract (models and errors): no GDAL-based
package.
"""

from cas_xr.client import _models
from cas_xr.client._client import AsyncClient, Client
from cas_xr.client._config import ClientConfig
from cas_xr.client._errors import ClientError
from cas_xr.client._models import *  # noqa: F403  (the documents: _models.__all__)

__all__ = ["AsyncClient", "Client", "ClientConfig", "ClientError"]
__all__ += _models.__all__
