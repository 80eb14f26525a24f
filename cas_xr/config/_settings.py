"""Settings (``CAS_`` environment variables) and :func:`configure`.

Settings are read from the environment on first use and cached. :func:`configure`
applies validated overrides on top of the environment; every change bumps
:func:`settings_generation`, which caches compare against to rebuild themselves.
"""

from __future__ import annotations

import ipaddress
import threading
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from cas_xr.errors import ArgumentTypeError, ConfigurationError, validation_problems

__all__ = ["Settings", "configure", "get_settings", "settings_generation", "shareable_settings"]


class Settings(BaseSettings):
    """Every cas_xr setting, read from ``CAS_``-prefixed environment variables.

    See the configuration page of the docs for what each one does.
    """

    model_config = SettingsConfigDict(env_prefix="CAS_", extra="forbid", validate_default=True)

    # CAS settings
    provider_timeout_s: float = Field(default=30, gt=0)
    request_timeout_s: float = Field(default=120, gt=0)
    max_datasets_per_request: int = Field(default=50, ge=1)
    max_polygon_vertices: int = Field(default=10_000, ge=4)
    result_cache_ttl_s: float = Field(default=600, ge=0)
    result_cache_max_entries: int = Field(default=10_000, ge=0)
    metadata_cache_ttl_s: float = Field(default=3600, ge=0)
    cors_origins: list[str] = Field(default_factory=lambda: ["*"])
    auth_enabled: bool = False
    api_keys: list[SecretStr] = Field(default_factory=list)
    rate_limit_enabled: bool = False
    rate_limit_per_minute: int = Field(default=60, ge=1)

    # cas_xr settings
    zonal_weights: Literal["exact", "center", "all_touched"] = "exact"
    area_weighted: bool = False
    quality_partial_below: float = Field(default=0.8, ge=0, le=1)
    quality_missing_below: float = Field(default=0.3, ge=0, le=1)
    provider_files: list[Path] = Field(default_factory=list)
    dask_scheduler: str | None = None
    chunk_size: int = Field(default=2048, ge=64)
    max_raster_pixels: int = Field(default=100_000_000, ge=1)
    result_cache_dir: Path | None = None
    progress: bool = True
    jobs_db: str | None = None
    max_concurrent_requests_per_host: int = Field(default=8, ge=1)
    http_retries: int = Field(default=5, ge=0)
    gdal_http_max_retry: int = Field(default=5, ge=0)
    small_request_cells: int = Field(default=4_194_304, ge=0)
    health_slow_ms: float = Field(default=5000, gt=0)

    # service settings (cas_xr additions)
    sync_execute: bool = False
    job_workers: int = Field(default=4, ge=1)
    job_processes: int = Field(default=0, ge=0)
    api_key_header: str = Field(default="X-API-Key", min_length=1)
    max_request_bytes: int = Field(default=10_000_000, ge=1024)
    max_geometries_per_request: int = Field(default=1000, ge=1)
    max_table_geometries: int = Field(default=100_000, ge=1)
    rate_limit_storage_url: SecretStr = SecretStr("memory://")
    trusted_proxies: list[str] = Field(default_factory=list)

    @field_validator("trusted_proxies")
    @classmethod
    def _check_proxies(cls, value: list[str]) -> list[str]:
        for proxy in value:
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError:
                raise ValueError(
                    f"{proxy!r} is not an IP address or network (e.g. 10.0.0.5 or 10.0.0.0/8)"
                ) from None
        return value

    @model_validator(mode="after")
    def _check_thresholds(self) -> Settings:
        if self.quality_missing_below > self.quality_partial_below:
            raise ValueError(
                f"quality_missing_below ({self.quality_missing_below}) must not exceed "
                f"quality_partial_below ({self.quality_partial_below})"
            )
        return self


# the SecretStr fields (list[SecretStr] included)
_SECRETS = frozenset(
    name for name, field in Settings.model_fields.items() if "SecretStr" in str(field.annotation)
)


def shareable_settings(settings: Settings) -> dict[str, Any]:
    """The settings without their secrets, for processes that do not need them.

    Secrets (``api_keys``, ``rate_limit_storage_url``: every ``SecretStr`` field) serve the
    HTTP service only; the settings shipped to Dask workers leave them out.

    Parameters
    ----------
    settings
        The settings.

    Returns
    -------
    dict
        ``settings.model_dump()`` without the secret fields.
    """
    return settings.model_dump(exclude=set(_SECRETS))


_lock = threading.RLock()
_overrides: dict[str, Any] = {}
_settings: Settings | None = None
_generation = 0


def get_settings() -> Settings:
    """Return the current settings (environment plus :func:`configure` overrides).

    Returns
    -------
    Settings
        A validated, cached settings object; do not mutate it.

    Raises
    ------
    ConfigurationError
        If a ``CAS_`` environment variable holds an invalid value.
    """
    global _settings
    with _lock:
        if _settings is None:
            _settings = _build(_overrides)
        return _settings


def settings_generation() -> int:
    """Return a counter that changes whenever the settings may have changed."""
    return _generation


def _build(overrides: dict[str, Any]) -> Settings:
    try:
        return Settings(**overrides)
    except ValidationError as err:
        problems = validation_problems(err, "settings")
        raise ConfigurationError(
            f"invalid cas_xr settings ({problems}); fix the configure() argument or the "
            "CAS_* environment variable"
        ) from None


def configure(**overrides: Any) -> Settings:
    """Re-read the environment and apply setting overrides.

    Parameters
    ----------
    **overrides
        Settings fields and their values; they win over ``CAS_`` environment variables and
        accumulate across calls. With no arguments the environment is re-read.

    Returns
    -------
    Settings
        The new settings.

    Raises
    ------
    TypeError
        If a name is not a settings field.
    ConfigurationError
        If a value is invalid; the previous settings stay in effect.

    Examples
    --------
    >>> import cas_xr as cas
    >>> cas.configure(provider_timeout_s=60, result_cache_ttl_s=3600).result_cache_ttl_s
    3600.0
    """
    global _settings, _overrides, _generation
    unknown = sorted(set(overrides) - set(Settings.model_fields))
    if unknown:
        raise ArgumentTypeError(
            f"configure() got unknown setting(s) {', '.join(unknown)}; valid names are: "
            f"{', '.join(sorted(Settings.model_fields))}"
        )
    with _lock:
        merged = {**_overrides, **overrides}
        new = _build(merged)
        _overrides, _settings = merged, new
        _generation += 1
        return new


def _reset_for_tests() -> None:
    """Drop every override (used by the test suite)."""
    global _settings, _overrides, _generation
    with _lock:
        _overrides, _settings = {}, None
        _generation += 1
