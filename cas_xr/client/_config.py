"""The client configuration: where the service is and how to authenticate."""

from __future__ import annotations

from typing import Literal

import httpx
from pydantic import SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["DEFAULT_API_URL", "ClientConfig"]

DEFAULT_API_URL = "http://127.0.0.1:8008/"


class ClientConfig(BaseSettings):
    """Where the service is and how to authenticate, from arguments or the environment.

    Every field can be set by a ``CAS_CLIENT_``-prefixed environment variable, e.g.
    ``CAS_CLIENT_API_URL`` or ``CAS_CLIENT_API_KEY``. Secrets are shown masked.

    Parameters
    ----------
    api_url
        The service's landing page URL.
    auth_type
        ``"none"``, ``"basic"`` (``username``/``password``), ``"token"`` (``token`` in
        ``token_header``, or as ``Authorization: Bearer`` with ``use_bearer``) or
        ``"api-key"`` (``api_key`` in ``api_key_header``; a cas_xr service wants this,
        or a bearer token).
    """

    model_config = SettingsConfigDict(env_prefix="CAS_CLIENT_", extra="forbid")

    api_key: SecretStr | None = None
    api_key_header: str = "X-API-Key"
    api_url: str = DEFAULT_API_URL
    auth_type: Literal["none", "basic", "token", "api-key"] = "none"
    password: SecretStr | None = None
    token: SecretStr | None = None
    token_header: str = "X-Auth-Token"
    use_bearer: bool = False
    username: str | None = None

    @model_validator(mode="after")
    def _check_auth(self) -> ClientConfig:
        needs = {
            "basic": ("username", "password"),
            "token": ("token",),
            "api-key": ("api_key",),
            "none": (),
        }[self.auth_type]
        missing = [name for name in needs if getattr(self, name) is None]
        if missing:
            raise ValueError(f"auth_type={self.auth_type!r} needs {' and '.join(missing)}")
        if not self.api_url.endswith("/"):
            self.api_url += "/"
        return self

    def __repr__(self) -> str:
        return self.model_dump_json(indent=2)

    def headers(self) -> dict[str, str]:
        """The authentication headers to send."""
        if self.auth_type == "token" and self.token is not None:
            token = self.token.get_secret_value()
            if self.use_bearer:
                return {"Authorization": f"Bearer {token}"}
            return {self.token_header: token}
        if self.auth_type == "api-key" and self.api_key is not None:
            return {self.api_key_header: self.api_key.get_secret_value()}
        return {}

    def auth(self) -> httpx.BasicAuth | None:
        """The HTTP basic authentication to use, if any."""
        if self.auth_type == "basic" and self.username and self.password is not None:
            return httpx.BasicAuth(self.username, self.password.get_secret_value())
        return None
