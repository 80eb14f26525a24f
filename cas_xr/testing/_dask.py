"""Assert that code builds a lazy Dask graph without computing it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["raise_if_dask_computes"]


class _CountingScheduler:
    def __init__(self, max_computes: int) -> None:
        self.total_computes = 0
        self.max_computes = max_computes

    def __call__(self, dsk: Any, keys: Any, **kwargs: Any) -> Any:
        import dask

        self.total_computes += 1
        if self.total_computes > self.max_computes:
            raise RuntimeError(
                f"too many dask computations: {self.total_computes} > {self.max_computes}; "
                "the code under test was expected to stay lazy"
            )
        return dask.get(dsk, keys, **kwargs)


@contextmanager
def raise_if_dask_computes(max_computes: int = 0) -> Iterator[_CountingScheduler]:
    """Raise ``RuntimeError`` if Dask computes more than ``max_computes`` times in the block.

    Parameters
    ----------
    max_computes
        Computations allowed (0: the block must only build graphs).

    Examples
    --------
    >>> import dask.array as da
    >>> from cas_xr.testing import raise_if_dask_computes
    >>> with raise_if_dask_computes():
    ...     lazy = da.ones(10) + 1
    """
    import dask

    scheduler = _CountingScheduler(max_computes)
    with dask.config.set(scheduler=scheduler):
        yield scheduler
