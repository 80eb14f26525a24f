"""numba's on-disk cache for the kernel, invalidated when any kernel module changes.

numba stamps a cached function with its own source file only, so a kernel whose helpers
or constants live in another module (``_coverage``, ``_codes``) would be loaded stale
after that module changed, and give wrong numbers without an error. Every jitted
function of cas_xr is compiled through :func:`jit`, whose cache entries are stamped
with a hash of the sources of all :data:`KERNEL_MODULES` as well: a change to any of
them makes every kernel compile again (numba then overwrites the stale entries). The
cache stays where numba puts it (``__pycache__`` beside the package, else numba's
user-wide folder; ``NUMBA_CACHE_DIR`` when set).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from importlib import resources
from typing import Any

from numba import njit
from numba.core import typeinfer
from numba.core.caching import FunctionCache, IndexDataCacheFile

__all__ = ["KERNEL_MODULES", "jit", "sources_hash"]

#: The modules of ``cas_xr.zonal`` whose source compiled code depends on: those that
#: define jitted functions and those whose names (constants) they use.
KERNEL_MODULES = ("_codes", "_compiled", "_coverage", "_jit", "_lines")


@functools.cache
def sources_hash() -> str:
    """SHA-256 of the sources of :data:`KERNEL_MODULES` (as installed), in hex."""
    digest = hashlib.sha256()
    folder = resources.files(__package__)  # the installed sources, wherever they are
    for name in KERNEL_MODULES:
        digest.update(name.encode() + b"\0" + folder.joinpath(f"{name}.py").read_bytes())
    return digest.hexdigest()


class _KernelCache(FunctionCache):
    """numba's cache of one function, stamped with :func:`sources_hash` as well."""

    def __init__(self, py_func: Callable[..., Any]) -> None:
        super().__init__(py_func)
        stamp = (self._impl.locator.get_source_stamp(), sources_hash())
        self._cache_file = IndexDataCacheFile(
            cache_path=self._cache_path,
            filename_base=self._impl.filename_base,
            source_stamp=stamp,
        )


def jit(*signatures: Any, **options: Any) -> Callable[[Callable[..., Any]], Any]:
    """``numba.njit(*signatures, cache=True, **options)`` with the kernel's cache stamp.

    Parameters
    ----------
    *signatures
        Signatures to compile at once (as numba does when given them); none: compiled
        on first call, for the argument types of that call.
    **options
        Other options of :func:`numba.njit` (``nogil``, ``inline`` ...).

    Returns
    -------
    callable
        A decorator returning the numba dispatcher.
    """

    def decorate(func: Callable[..., Any]) -> Any:
        dispatcher = njit(**options)(func)
        dispatcher._cache = _KernelCache(func)  # numba's enable_caching(), our cache
        if signatures:  # as numba.njit does with signatures: compile now, and only those
            with typeinfer.register_dispatcher(dispatcher):
                for signature in signatures:
                    dispatcher.compile(signature)
                dispatcher.disable_compile()
        return dispatcher

    return decorate
