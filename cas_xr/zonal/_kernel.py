"""The zonal kernel's entry: values cast to a dtype family, compiled once per family.

Compiling is what a first run pays for, so the kernel exists in few specialisations: the
values are cast, exactly, to one of four dtype families first (``float32`` holds every
integer of up to 16 bits, ``float64`` those of 32 bits; 64-bit integers keep their own),
and each family is compiled on first use in this process, or loaded from numba's cache
(beside the package, or in ``NUMBA_CACHE_DIR``) if an earlier run compiled it. A
compilation that does happen is announced on stderr, with progress, once. A caller that
knows which family it will need can start that early (:func:`prepare`), so that the
compilation overlaps its imports and reads.
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import Any

import numpy as np
import numpy.typing as npt

from cas_xr.errors import InvalidArgumentError
from cas_xr.zonal._announce import announced_compilation
from cas_xr.zonal._codes import MORE_STATISTICS

__all__ = ["family_of", "prepare", "zonal_kernel"]

_FAMILIES = {
    **dict.fromkeys(("bool", "int8", "uint8", "int16", "uint16", "float16"), "float32"),
    **dict.fromkeys(("float32",), "float32"),
    **dict.fromkeys(("int32", "uint32", "float64"), "float64"),
    **dict.fromkeys(("int64",), "int64"),
    **dict.fromkeys(("uint64",), "uint64"),
}
#: What numba compiles for the first kernel when nothing is cached: the 7 statistics
#: helpers of ``_compiled``, the 6 coverage functions of ``_coverage`` (those not
#: inlined) and the kernel (tests/test_kernel.py counts them on a first demo).
FIRST_KERNEL_FUNCTIONS = 14
#: What numba compiles when a request first asks for one of ``MORE_STATISTICS``: the
#: function that computes them and the 4 helpers only it calls.
MORE_FUNCTIONS = 5
_kernels: dict[str, Any] = {}
_more: dict[bool, Any] = {}
_lock = threading.Lock()
_log = logging.getLogger("cas_xr.zonal")


def family_of(dtype: np.dtype[Any]) -> str:
    """The family a dtype is cast to: a dtype that holds each of its values exactly.

    Parameters
    ----------
    dtype
        The stored dtype of the values.

    Returns
    -------
    str
        ``"float32"``, ``"float64"``, ``"int64"`` or ``"uint64"``.

    Raises
    ------
    InvalidArgumentError
        When the values are not real numbers.
    """
    try:
        return _FAMILIES[np.dtype(dtype).name]
    except KeyError:
        if dtype.kind == "f":  # wider floats: the kernel computes in float64 anyway
            return "float64"
        raise InvalidArgumentError(
            f"zonal statistics need real numbers, got values of dtype {dtype}; cast the "
            "variable (e.g. da.astype('float64')) or pick a numeric one"
        ) from None


def _kernel(family: str) -> Any:
    kernel = _kernels.get(family)
    if kernel is None:
        with _lock:  # one thread compiles; the others wait for it, then share it
            kernel = _kernels.get(family)
            if kernel is None:
                helpers_loaded = "cas_xr.zonal._compiled" in sys.modules
                with announced_compilation(1 if helpers_loaded else FIRST_KERNEL_FUNCTIONS):
                    from cas_xr.zonal._compiled import kernel_for

                    kernel = _kernels[family] = kernel_for(family)
    return kernel


def _more_statistics(needed: bool) -> Any:
    more = _more.get(needed)
    if more is None:
        with _lock, announced_compilation(MORE_FUNCTIONS):
            from cas_xr.zonal._compiled import more_statistics

            more = _more[needed] = more_statistics(needed)
    return more


def _prepare(family: str) -> None:
    try:
        _kernel(family)
    except Exception:  # the first call that needs the kernel compiles again, and raises
        _log.debug("preparing the %s kernel failed", family, exc_info=True)


def prepare(family: str) -> threading.Thread:
    """Start compiling (or loading) the kernel of a family in a background thread.

    A call that needs the kernel meanwhile waits for it; nothing is compiled twice.

    Parameters
    ----------
    family
        One of the families of :func:`family_of`.

    Returns
    -------
    threading.Thread
        The (daemon) thread, already started.
    """
    thread = threading.Thread(target=_prepare, args=(family,), name="cas_xr-kernel", daemon=True)
    thread.start()
    return thread


def zonal_kernel(
    values: npt.NDArray[Any],
    nodata: Any,
    use_nodata: bool,
    marks: npt.NDArray[np.uint8],
    coords: npt.NDArray[np.float64],
    ring_offsets: npt.NDArray[np.int64],
    geom_ring_offsets: npt.NDArray[np.int64],
    row_factor: npt.NDArray[np.float64],
    cover_factor: npt.NDArray[np.float64],
    col_x: npt.NDArray[np.float64],
    row_y: npt.NDArray[np.float64],
    weights: npt.NDArray[np.float64],
    mode: int,
    codes: npt.NDArray[np.int64],
    qs: npt.NDArray[np.float64],
    classes: npt.NDArray[np.float64],
    weighted_classes: bool,
    empty_row: npt.NDArray[np.float64],
    noise: float,
    opts: npt.NDArray[np.float64],
) -> tuple[npt.NDArray[Any], ...]:
    """Zonal statistics of every polygon for every leading index of ``values``.

    The arguments are those of the compiled kernel
    (:func:`cas_xr.zonal._compiled._zonal_kernel`), but ``values`` may have any real
    dtype and layout: it is cast to its family (:func:`family_of`), with ``nodata``,
    which keeps the comparison with the marker exact; the function of the statistics
    not every request needs is added (compiled when a request first asks for one), and
    the results are allocated here: ``stats`` (``empty_row`` where a geometry has no valid
    cells), ``count``, ``pixels``, ``dist`` and ``wdist`` (``weighted_classes``: the
    distribution weighted by the weights raster).
    """
    family = family_of(values.dtype)
    kernel = _kernel(family)
    more = _more_statistics(bool(weighted_classes) or bool(np.isin(codes, MORE_STATISTICS).any()))
    f8 = np.float64
    shape = (len(geom_ring_offsets) - 1, values.shape[0])
    stats = np.empty((*shape, len(codes)))
    stats[...] = empty_row
    count = np.zeros(shape)
    pixels = np.zeros(shape, dtype=np.int64)
    dist = np.zeros((*shape, len(classes)))
    wdist = np.zeros((*shape, len(classes) if weighted_classes else 0))
    kernel(
        np.ascontiguousarray(values, dtype=family), np.dtype(family).type(nodata),
        bool(use_nodata), np.ascontiguousarray(marks, dtype=np.uint8),
        np.ascontiguousarray(coords, dtype=f8),
        np.ascontiguousarray(ring_offsets, dtype=np.int64),
        np.ascontiguousarray(geom_ring_offsets, dtype=np.int64),
        np.ascontiguousarray(row_factor, dtype=f8),
        np.ascontiguousarray(cover_factor, dtype=f8),
        np.ascontiguousarray(col_x, dtype=f8), np.ascontiguousarray(row_y, dtype=f8),
        np.ascontiguousarray(weights, dtype=f8), int(mode),
        np.ascontiguousarray(codes, dtype=np.int64), np.ascontiguousarray(qs, dtype=f8),
        np.ascontiguousarray(classes, dtype=f8), float(noise),
        np.ascontiguousarray(opts, dtype=f8), more, stats, count, pixels, dist, wdist,
    )  # fmt: skip
    return stats, count, pixels, dist, wdist
