"""The settings the service reads, in one place."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from cas_xr.config import Settings

__all__ = ["ServiceOptions"]


def _default_jobs_db() -> str:
    """``jobs.sqlite`` in the user's data folder (created), not the working directory."""
    import platformdirs

    folder = Path(platformdirs.user_data_dir("cas_xr"))
    folder.mkdir(parents=True, exist_ok=True)
    return str(folder / "jobs.sqlite")


@dataclass(frozen=True)
class ServiceOptions:
    """What the service takes from the settings.

    Parameters
    ----------
    jobs_db
        The SQLite file of the job store (``":memory:"`` keeps jobs in memory); the
        ``jobs_db`` setting, or ``jobs.sqlite`` in the user's data folder
        (``platformdirs.user_data_dir("cas_xr")``, created when needed).
    sync_execute
        Whether processes also offer ``sync-execute`` (then a request without
        ``Prefer: respond-async`` runs synchronously).
    job_workers
        Threads that run jobs.
    job_processes
        Worker processes that compute the jobs that run together (``extract``); 0: the
        job threads compute them in the server's process.
    auth_enabled, api_keys, api_key_header
        Authentication: an API key in ``api_key_header`` or ``Authorization: Bearer``.
    rate_limit_enabled, rate_limit_per_minute, rate_limit_storage_url
        Requests allowed per client and minute, and where the counts are kept.
    trusted_proxies
        Proxies whose ``X-Forwarded-For`` names the client.
    cors_origins
        Origins allowed by CORS.
    max_request_bytes, max_geometries_per_request, max_table_geometries,
    max_datasets_per_request, max_polygon_vertices
        Request limits (``max_table_geometries``: of ``extract-table``).
    request_timeout_s
        The longest a synchronous execution or a batch may take.
    """

    jobs_db: str
    sync_execute: bool
    job_workers: int
    job_processes: int
    auth_enabled: bool
    api_keys: tuple[SecretStr, ...]
    api_key_header: str
    rate_limit_enabled: bool
    rate_limit_per_minute: int
    rate_limit_storage_url: SecretStr
    trusted_proxies: tuple[str, ...]
    cors_origins: tuple[str, ...]
    max_request_bytes: int
    max_geometries_per_request: int
    max_table_geometries: int
    max_datasets_per_request: int
    max_polygon_vertices: int
    request_timeout_s: float

    @classmethod
    def from_settings(cls, settings: Settings) -> ServiceOptions:
        """Read the options from a settings object.

        Parameters
        ----------
        settings
            The cas_xr settings.
        """
        return cls(
            jobs_db=settings.jobs_db or _default_jobs_db(),
            sync_execute=settings.sync_execute,
            job_workers=settings.job_workers,
            job_processes=settings.job_processes,
            auth_enabled=settings.auth_enabled,
            api_keys=tuple(settings.api_keys),
            api_key_header=settings.api_key_header,
            rate_limit_enabled=settings.rate_limit_enabled,
            rate_limit_per_minute=settings.rate_limit_per_minute,
            rate_limit_storage_url=settings.rate_limit_storage_url,
            trusted_proxies=tuple(settings.trusted_proxies),
            cors_origins=tuple(settings.cors_origins),
            max_request_bytes=settings.max_request_bytes,
            max_geometries_per_request=settings.max_geometries_per_request,
            max_table_geometries=settings.max_table_geometries,
            max_datasets_per_request=settings.max_datasets_per_request,
            max_polygon_vertices=settings.max_polygon_vertices,
            request_timeout_s=settings.request_timeout_s,
        )
