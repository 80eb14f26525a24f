"""The ``options`` of a ``stac_cog`` provider or dataset, and the asset-URL hooks they name."""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from cas_xr.errors import MissingDependencyError, ProviderDefinitionError

__all__ = ["StacApiOptions"]


class StacApiOptions(BaseModel):
    """The ``options`` of a ``stac_cog`` provider or dataset (provider YAML files).

    Attributes
    ----------
    query
        STAC API ``query`` extension expression, passed through to the search.
    filter
        CQL2 filter (JSON mapping or CQL2 text), passed through to the search.
    limit
        Page size of the search (pages are followed until every item is read).
    sign
        ``"planetary_computer"`` signs asset URLs with the optional ``planetary-computer``
        package.
    patch_url
        ``"module:function"`` naming a callable ``str -> str`` applied to every asset URL
        before reading (e.g. to sign it).

    Both hooks run when a cube is built (odc-stac ``patch_url``), not at search time, so
    cached search results never hold expired tokens.
    """

    model_config = ConfigDict(extra="forbid")

    query: dict[str, Any] | None = None
    filter: dict[str, Any] | str | None = None
    limit: int | None = Field(default=None, ge=1, le=10_000)
    sign: Literal["planetary_computer"] | None = None
    patch_url: str | None = Field(default=None, pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")

    def url_patcher(self) -> Callable[[str], str] | None:
        """The asset-URL hook these options ask for, imported now.

        Raises
        ------
        MissingDependencyError
            If ``sign="planetary_computer"`` and the package is not installed.
        ProviderDefinitionError
            If both hooks are set, or ``patch_url`` cannot be imported or is not callable.
        """
        if self.sign is not None and self.patch_url is not None:
            raise ProviderDefinitionError("set either 'sign' or 'patch_url', not both")
        if self.sign == "planetary_computer":
            try:
                import planetary_computer
            except ImportError:
                raise MissingDependencyError(
                    "sign: planetary_computer needs the planetary-computer package: "
                    "pip install planetary-computer"
                ) from None
            sign: Callable[[str], str] = planetary_computer.sign
            return sign
        if self.patch_url is None:
            return None
        module, _, name = self.patch_url.partition(":")
        try:
            target: Any = import_module(module)
            for part in name.split("."):
                target = getattr(target, part)
        except (ImportError, AttributeError) as err:
            raise ProviderDefinitionError(
                f"patch_url {self.patch_url!r} cannot be imported: {err}"
            ) from None
        if not callable(target):
            raise ProviderDefinitionError(f"patch_url {self.patch_url!r} is not callable")
        hook: Callable[[str], str] = target
        return hook
