"""The cas_xr HTTP service: OGC API - Processes 1.0 over the facade.

Processes ``extract``, ``batch-extract`` and ``list-datasets`` run as jobs on a thread
pool, persisted in SQLite (``jobs_db``). Serve it with ``cas-xr serve`` or any ASGI
server::

    uvicorn --factory cas_xr.service:create_app

Needs the ``service`` extra (fastapi, uvicorn).
"""

from cas_xr.service._app import create_app

__all__ = ["create_app"]
