"""The options of the WCS source (``options`` of a ``wcs`` provider or dataset)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import pyproj
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from cas_xr.errors import ConfigurationError, validation_problems

__all__ = ["RESERVED_PARAMS", "WcsOptions", "check_options"]

#: Query parameters the source sets itself (``params`` may not override them).
RESERVED_PARAMS = frozenset(
    {"service", "version", "request", "coverageid", "coverage", "format", "subset",
     "subsettingcrs", "outputcrs", "crs", "response_crs", "bbox", "width", "height"}
)  # fmt: skip


class WcsOptions(BaseModel):
    """The ``options`` of a ``wcs`` provider or dataset in a provider file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal["2.0.1", "1.0.0"] = Field(default="2.0.1", description="WCS version")
    tile_size: int = Field(
        default=1024, ge=16, le=8192, description="cells per GetCoverage request side"
    )
    read_ratio: float = Field(
        default=1.2,
        ge=1.0,
        le=100.0,
        description="cells read at most per cell the geometries' windows need (higher: fewer, "
        "larger requests, for a server whose requests cost more than their cells)",
    )
    format: str = Field(default="image/tiff", min_length=1, description="a GeoTIFF format")
    crs: str | None = Field(
        default=None, description="the coverage's CRS, when its description lacks or misstates it"
    )
    nodata: float | None = Field(default=None, description="nodata, over the server's")
    params: dict[str, str] = Field(
        default_factory=dict,
        description="extra query parameters of every request (e.g. MapServer's map)",
    )

    @field_validator("crs")
    @classmethod
    def _known_crs(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                pyproj.CRS.from_user_input(value)
            except pyproj.exceptions.CRSError as err:
                raise ValueError(f"unknown CRS {value!r}: {err}") from None
        return value

    @field_validator("params", mode="before")
    @classmethod
    def _own_params(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            taken = sorted(k for k in value if str(k).lower() in RESERVED_PARAMS)
            if taken:
                raise ValueError(f"{taken} are set by the WCS source itself")
            return {str(k): v if isinstance(v, str) else str(v) for k, v in value.items()}
        return value


def check_options(options: Mapping[str, Any]) -> WcsOptions:
    """Validate WCS options.

    Raises
    ------
    ConfigurationError
        Naming every invalid or unknown option and the known ones.
    """
    try:
        return WcsOptions.model_validate(dict(options))
    except ValidationError as err:
        problems = validation_problems(err, "options")
        raise ConfigurationError(
            f"invalid WCS options: {problems} (known options: {', '.join(WcsOptions.model_fields)})"
        ) from None
