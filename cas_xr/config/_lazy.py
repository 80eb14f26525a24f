"""Names of a package loaded on first use (module ``__getattr__``, PEP 562)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any

__all__ = ["lazy_names"]


def lazy_names(
    package: str, homes: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A package's ``__getattr__`` and ``__dir__`` that load each name's module on first use.

    Parameters
    ----------
    package
        The package's ``__name__`` (already in ``sys.modules``: call this from its body).
    homes
        Public name -> the module that defines it.

    Returns
    -------
    tuple
        ``(__getattr__, __dir__)``: the first imports a name's module, keeps the name in
        the package's namespace (later lookups skip it) and raises ``AttributeError`` for
        names not in ``homes``.
    """
    namespace = sys.modules[package].__dict__

    def __getattr__(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(home), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted([*namespace, *homes])

    return __getattr__, __dir__
