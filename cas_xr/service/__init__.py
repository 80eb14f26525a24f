"""The cas_xr HTTP service: OGC API - Processes 1.0 over the facade.

Processes ``extract``, ``batch-extract`` and ``list-datasets`` run as jobs on a thread
pool, persisted in SQLite (``jobs_db``). Serve it with ``cas-xr serve`` or any ASGI
server::

    uvicorn --factory cas_xr.service:create_app --no-proxy-headers

Needs the ``service`` extra (fastapi, uvicorn, limits, jinja2, fastapi-offline).
"""

import importlib

from cas_xr.errors import MissingDependencyError

for _name in ("fastapi", "uvicorn", "limits", "jinja2", "fastapi_offline"):
    try:
        importlib.import_module(_name)
    except ImportError as _err:
        raise MissingDependencyError(
            f"the cas_xr service needs the 'service' extra ({_name} is not installed): "
            "pip install 'cas-xr[service]'"
        ) from _err

from cas_xr.service._app import create_app  # noqa: E402

__all__ = ["create_app"]
