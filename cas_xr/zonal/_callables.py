"""User-defined reductions in ``stats``: Python callables run on each geometry's cells.

Three styles, told apart by what is passed and by the function's signature:

- **array** (xvec's callables and ``(name, func, kwargs)`` tuples): one required
  positional parameter, ``func(values, axis=-1, **kwargs)`` on a ``(layers, cells)``
  float64 array (NaN where missing), returning one number per layer; a function without
  an ``axis`` parameter is called once per layer on a 1-D array instead.
- **cells** (exactextract's Python functions): two or three required positional
  parameters, ``func(values, coverage[, weights])`` per layer, ``values`` (and
  ``weights``) masked arrays with missing cells masked, ``coverage`` the weights of the
  mode.
- **masked** (rasterstats' ``add_stats={name: func}``): ``func(masked)`` per layer on a
  2-D masked array over the geometry's cells, masked outside it and where missing.

A tuple whose ``func`` is a string, ``(name, "quantile", {"q": 0.9})`` as xvec takes it,
is not run in Python: it names a statistic of the kernel (see
:func:`~cas_xr.zonal._methods.statistic_of`), which :func:`~cas_xr.zonal.zonal` computes
with the named ones and labels ``name``.

A reduction sees the cells of the whole geometry at once: each geometry lies whole in one
window of the kernel's partition (:func:`~cas_xr.zonal._cells.polygon_windows`, which
reads only the Dask chunks under its geometries), so nothing is combined across chunks.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from cas_xr.errors import InvalidArgumentError, InvalidStatisticError
from cas_xr.zonal import _codes as K
from cas_xr.zonal._inputs import STATISTICS, parse_stats
from cas_xr.zonal._methods import statistic_of

if TYPE_CHECKING:
    import xarray as xr

    from cas_xr.zonal._encoding import Encoding
    from cas_xr.zonal._inputs import Geometries

__all__ = ["PER_CELL", "Reduction", "split_stats", "with_reductions"]

#: exactextract's per-cell outputs: :func:`cas_xr.zonal.cells`, not ``stats``.
PER_CELL = ("values", "coverage", "weights", "cell_id", "center_x", "center_y")

_FORMS = (
    "statistic names, callables (func(values, axis=-1) as xvec's, or func(values, "
    "coverage[, weights]) as exactextract's) or (name, func[, kwargs]) tuples, func a "
    "function or a statistic's name as xvec's ('q90', 'quantile', {'q': 0.9})"
)
_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


@dataclass(frozen=True)
class Reduction:
    """One user reduction: its label, function, style and keyword arguments.

    A ``func`` given as a string (xvec's ``(name, "quantile", {"q": 0.9})``) has style
    ``"statistic"`` and names the kernel's ``statistic``, labelled ``name``.
    """

    name: str
    func: Callable[..., Any] | str
    style: str  # "array", "cells", "masked" or "statistic"
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    axis: bool = False  # array style: called once with axis=-1
    weighted: bool = False  # cells style: func(values, coverage, weights); or a weighted_*
    statistic: str | None = None  # statistic style: the name parse_stats takes


def _signature(func: Callable[..., Any], name: str) -> inspect.Signature:
    try:
        return inspect.signature(func)
    except (TypeError, ValueError):
        raise InvalidStatisticError(
            f"cannot read the parameters of reduction {name!r} ({func!r}); wrap it in a "
            "function, e.g. def f(values, axis=-1): return func(values, axis=axis)"
        ) from None


def _required(sig: inspect.Signature, bound: Mapping[str, Any]) -> int:
    return sum(
        1
        for p in sig.parameters.values()
        if p.kind in _POSITIONAL and p.default is p.empty and p.name not in bound
    )


def _reduction(func: Any, name: Any, kwargs: Any, *, masked: bool = False) -> Reduction:
    if not isinstance(func, str) and not callable(func):
        raise InvalidStatisticError(
            f"reduction {name!r} is {type(func).__name__}, not a function; give " + _FORMS
        )
    if not isinstance(name, str) or not name:
        raise InvalidStatisticError(f"a reduction's name must be a non-empty string, got {name!r}")
    if not isinstance(kwargs, Mapping):
        raise InvalidStatisticError(
            f"the keyword arguments of reduction {name!r} must be a dict, got "
            f"{type(kwargs).__name__}; give (name, func, {{'q': 90}})"
        )
    if isinstance(func, str):
        if masked:
            raise InvalidStatisticError(
                f"add_stats function {name!r} is the string {func!r}; give a function, or "
                f"the statistic in stats, e.g. stats=[({name!r}, {func!r})]"
            )
        statistic = statistic_of(name, func, kwargs)
        weighted = parse_stats(statistic).needs_weights
        return Reduction(name, func, "statistic", kwargs, weighted=weighted, statistic=statistic)
    sig = _signature(func, name)
    required = _required(sig, kwargs)
    if masked:
        if required != 1:
            raise InvalidStatisticError(
                f"add_stats function {name!r} takes {required} required arguments; it must "
                "take one, a masked array of the geometry's cells (rasterstats' feature "
                "properties are not passed)"
            )
        return Reduction(name, func, "masked", kwargs)
    if required == 1:
        takes_axis = "axis" in sig.parameters or any(
            p.kind is p.VAR_KEYWORD for p in sig.parameters.values()
        )
        return Reduction(name, func, "array", kwargs, axis=takes_axis)
    if required in (2, 3):
        return Reduction(name, func, "cells", kwargs, weighted=required == 3)
    raise InvalidStatisticError(
        f"reduction {name!r} takes {required} required arguments; give func(values) / "
        "func(values, axis=-1) (xvec), func(values, coverage) or func(values, coverage, "
        "weights) (exactextract)"
    )


def _item(item: Any) -> Reduction:
    if isinstance(item, tuple):
        if len(item) not in (2, 3):
            raise InvalidStatisticError(
                f"stats holds a tuple of {len(item)} items; give (name, func) or "
                "(name, func, kwargs)"
            )
        return _reduction(item[1], item[0], item[2] if len(item) == 3 else {})
    if callable(item):
        return _reduction(item, getattr(item, "__name__", None), {})
    if isinstance(item, Mapping):  # stats=("q90", "quantile", {...}): a list of three
        raise InvalidStatisticError(
            f"stats holds the dict {item!r}; a (name, func, kwargs) tuple goes in a list: "
            "stats=[('q90', 'quantile', {'q': 0.9})]"
        )
    raise InvalidStatisticError(
        f"stats holds {item!r} ({type(item).__name__}); give statistic names (each one of "
        f"{', '.join(STATISTICS)} or a quantile such as 'p10' or 'p90'), callables "
        "(func(values, axis=-1) as xvec's, or func(values, coverage[, weights]) as "
        "exactextract's) or (name, func[, kwargs]) tuples"
    )


def split_stats(
    stats: Any, add_stats: Mapping[str, Callable[..., Any]] | None = None
) -> tuple[Any, list[Reduction]]:
    """The statistic names of ``stats`` (for ``parse_stats``) and its reductions.

    Parameters
    ----------
    stats
        As :func:`~cas_xr.zonal.zonal` takes it: a name, a callable, or a list or tuple
        of names, callables and ``(name, func[, kwargs])`` tuples (a tuple of statistics
        is a list of them, as in xvec). Anything else is returned as it is.
    add_stats
        rasterstats' ``{name: func}``.

    Returns
    -------
    tuple
        ``(names, reductions)``; ``names`` is ``stats`` itself when it holds no reduction.
        The reductions that name a statistic (style ``"statistic"``) come first, in their
        order, then the functions: the order of their columns in the result.

    Raises
    ------
    InvalidStatisticError
        A reduction that is not callable, takes other arguments, or reuses a name; a
        per-cell output (those are :func:`~cas_xr.zonal.cells`).
    """
    if callable(stats):
        stats = [stats]
    names: Any = stats
    reductions: list[Reduction] = []
    if isinstance(stats, Iterable) and not isinstance(stats, str | bytes | Mapping):
        items = list(stats)
        names = [s for s in items if isinstance(s, str)]
        reductions = [_item(s) for s in items if not isinstance(s, str)]
    if add_stats is not None:
        if not isinstance(add_stats, Mapping):
            raise InvalidStatisticError(
                f"add_stats must be a dict {{name: func}}, got {type(add_stats).__name__}"
            )
        reductions += [_reduction(f, n, {}, masked=True) for n, f in add_stats.items()]
    asked = [names] if isinstance(names, str) else names
    if isinstance(asked, list):
        cellwise = [n for n in asked if isinstance(n, str) and n.lower() in PER_CELL]
        if cellwise:
            raise InvalidStatisticError(
                f"{cellwise[0]!r} is a per-cell output, one row per cell: use "
                "cas_xr.zonal.cells(obj, geometries) (or obj.cas.cells(...)), which returns "
                "values, coverage, weights, cell_id, center_x and center_y as a long table"
            )
    reductions.sort(key=lambda r: r.statistic is None)  # stable: kernel columns first
    labels = [r.name for r in reductions]
    taken = {n.lower() for n in asked if isinstance(n, str)} if isinstance(asked, list) else set()
    clash = [n for n in labels if labels.count(n) > 1 or n.lower() in taken]
    if clash:
        raise InvalidStatisticError(
            f"two statistics are named {clash[0]!r}; name the reduction with a tuple, "
            f"e.g. ('my_{clash[0]}', func)"
        )
    return names, reductions


def _number(result: Any, name: str) -> float:
    if result is None or result is np.ma.masked:
        return math.nan
    try:
        return float(result)
    except (TypeError, ValueError):
        raise InvalidStatisticError(
            f"reduction {name!r} returned {type(result).__name__} {str(result)[:60]!r}; it "
            "must return one number"
        ) from None


def _masked_grid(
    v: npt.NDArray[np.float64], rows: npt.NDArray[np.int64], cols: npt.NDArray[np.int64]
) -> np.ma.MaskedArray[Any, Any]:
    """``(layers, h, w)`` masked arrays over the cells' box: masked off them and where NaN."""
    r0, c0 = rows.min(), cols.min()
    shape = (v.shape[0], int(rows.max() - r0 + 1), int(cols.max() - c0 + 1))
    data = np.zeros(shape)
    mask = np.ones(shape, dtype=bool)
    data[:, rows - r0, cols - c0] = np.nan_to_num(v)
    mask[:, rows - r0, cols - c0] = np.isnan(v)
    return np.ma.MaskedArray(data, mask)


def _apply(
    red: Reduction,
    v: npt.NDArray[np.float64],
    cover: npt.NDArray[np.float64],
    w: npt.NDArray[np.float64] | None,
    rows: npt.NDArray[np.int64],
    cols: npt.NDArray[np.int64],
) -> list[float]:
    """One reduction of one geometry's cells ``v`` ``(layers, cells)``: a number per layer."""
    layers = v.shape[0]
    func = red.func
    assert callable(func)  # a statistic's name is the kernel's
    if red.style == "array" and red.axis:
        out = np.asarray(func(v, axis=-1, **red.kwargs), dtype=np.float64)
        if out.shape not in ((layers,), ()) or (out.shape == () and layers > 1):
            raise InvalidStatisticError(
                f"reduction {red.name!r} returned shape {out.shape} for values of shape "
                f"{v.shape} with axis=-1; it must reduce the last axis to one number per layer"
            )
        return np.broadcast_to(out, (layers,)).tolist()
    if red.style == "array":
        return [_number(func(v[k], **red.kwargs), red.name) for k in range(layers)]
    if red.style == "masked":
        grid = _masked_grid(v, rows, cols)
        return [_number(func(grid[k], **red.kwargs), red.name) for k in range(layers)]
    results = []
    for k in range(layers):
        args = [np.ma.masked_invalid(v[k]), cover]
        if red.weighted:
            assert w is not None
            args.append(np.ma.masked_invalid(w[k % w.shape[0]]))
        results.append(_number(func(*args, **red.kwargs), red.name))
    return results


def _reduce(
    values: npt.NDArray[np.float64],
    weights: npt.NDArray[np.float64] | None,
    offsets: npt.NDArray[np.int64],
    rows: npt.NDArray[np.int64],
    cols: npt.NDArray[np.int64],
    cover: npt.NDArray[np.float64],
    reductions: Sequence[Reduction],
) -> npt.NDArray[np.float64]:
    """Every reduction of every geometry: ``(geometries, layers, reductions)``.

    ``values`` (and ``weights``) are ``(layers, cells)`` of the geometries' cells, geometry
    ``g``'s being ``offsets[g]:offsets[g + 1]``; a geometry without cells gives NaN.
    """
    ngeom = offsets.size - 1
    out = np.full((ngeom, values.shape[0], len(reductions)), np.nan)
    for g in range(ngeom):
        sl = slice(int(offsets[g]), int(offsets[g + 1]))
        if sl.start == sl.stop:
            continue
        w = None if weights is None else weights[:, sl]
        for k, red in enumerate(reductions):
            try:
                out[g, :, k] = _apply(red, values[:, sl], cover[sl], w, rows[sl], cols[sl])
            except InvalidStatisticError:
                raise
            except Exception as err:
                err.add_note(f"(in reduction {red.name!r}, on the geometry's cells)")
                raise
    return out


def _window_task(
    windows: Sequence[Any],
    encodings: Sequence[Encoding],
    weight: tuple[Any, Encoding] | None,
    rings: Any,
    shape: tuple[int, int],
    mode: int,
    reductions: Sequence[Reduction],
) -> npt.NDArray[np.float64]:
    """The reductions of one window's polygons, on their covered cells."""
    from cas_xr.zonal._cells import covered_cells, decoded_layers

    cov = covered_cells(rings, shape, mode)
    values = decoded_layers(windows, encodings)[:, cov.rows, cov.cols]
    weights = None
    if weight is not None:
        weights = decoded_layers([weight[0]], [weight[1]])[:, cov.rows, cov.cols]
    return _reduce(values, weights, cov.offsets, cov.rows, cov.cols, cov.weight, reductions)


def _point_task(
    gathered: Sequence[Any],
    encodings: Sequence[Encoding],
    weight: tuple[Any, Encoding] | None,
    reductions: Sequence[Reduction],
) -> npt.NDArray[np.float64]:
    """The reductions of points, each on its one cell (coverage 1)."""

    def columns(arrays: Sequence[Any], encs: Sequence[Encoding]) -> npt.NDArray[np.float64]:
        return np.concatenate(  # (layers, points)
            [
                e.decode(np.moveaxis(np.asarray(a), 0, -1), cells=1).reshape(-1, len(a))
                for a, e in zip(arrays, encs, strict=True)
            ]
        )

    values = columns(gathered, encodings)
    weights = None if weight is None else columns([weight[0]], [weight[1]])
    n = values.shape[1]
    zeros = np.zeros(n, dtype=np.int64)
    return _reduce(values, weights, np.arange(n + 1), zeros, zeros, np.ones(n), reductions)


def _lazy(
    geo: Geometries,
    variables: list[xr.DataArray],
    encodings: list[Encoding],
    weights: tuple[xr.DataArray, Encoding] | None,
    mode: int,
    reductions: list[Reduction],
    window_cells: int,
) -> Any:
    """``(geometries, layers, reductions)`` as a Dask array in input order."""
    import dask
    import dask.array as dsa

    from cas_xr.zonal._cells import polygon_windows

    layers = sum(int(np.prod(v.shape[:-2])) for v in variables)
    tail = (layers, len(reductions))
    parts: list[tuple[npt.NDArray[np.intp], Any]] = []
    readers = variables if weights is None else [*variables, weights[0]]
    for idx, window, rings, lazy in polygon_windows(
        geo, readers, [*encodings, *([] if weights is None else [weights[1]])], window_cells
    ):
        weight = None
        if weights is not None:
            weight = (lazy.pop(), weights[1])
        shape = (window[1] - window[0], window[3] - window[2])
        task = dask.delayed(_window_task, pure=True)(
            lazy, encodings, weight, rings, shape, mode, reductions
        )
        parts.append((idx, task))
    points = np.flatnonzero(geo.kinds == K.KIND_POINT)
    if points.size:
        rows, cols = geo.points[points, 0], geo.points[points, 1]

        def gather(v: xr.DataArray) -> Any:
            return dsa.moveaxis(dsa.asarray(v.data), (-2, -1), (0, 1)).vindex[rows, cols]

        weight = None if weights is None else (gather(weights[0]), weights[1])
        gathered = [gather(v) for v in variables]
        task = dask.delayed(_point_task, pure=True)(gathered, encodings, weight, reductions)
        parts.append((points, task))
    empty = np.flatnonzero(geo.empty)
    pieces = [dsa.from_delayed(t, (len(i), *tail), dtype=np.float64) for i, t in parts]
    if empty.size:
        pieces.append(dsa.full((empty.size, *tail), np.nan))
    inverse = np.argsort(np.concatenate([i for i, _ in parts] + [empty]))
    return dsa.concatenate(pieces, axis=0)[inverse]


def with_reductions(
    out: xr.Dataset,
    geo: Geometries,
    variables: dict[Hashable, xr.DataArray],
    encodings: list[Encoding],
    mode: int,
    reductions: list[Reduction],
    window_cells: int,
    *,
    replace: bool,
    weights_raster: xr.DataArray | None = None,
) -> xr.Dataset:
    """``out`` (the cube of ``zonal``) with the reductions along ``zonal_statistics``.

    Each variable's reductions follow its named statistics (or replace them when
    ``replace``: none was asked); the cube stays lazy when it is, else they are computed.
    ``weights_raster`` (on the grid, spatial dims last) feeds three-argument reductions:
    one layer for all, or one per layer of the variables.
    """
    import dask.array as dsa

    from cas_xr.zonal._inputs import layers_of

    needs_weights = [r.name for r in reductions if r.weighted]
    if needs_weights and weights_raster is None:
        raise InvalidStatisticError(
            f"reduction {needs_weights[0]!r} takes (values, coverage, weights); pass "
            "weights_raster= (a DataArray on the raster's grid), or use a two-argument function"
        )
    layers = sum(int(np.prod(v.shape[:-2])) for v in variables.values())
    weights = None
    if weights_raster is not None and needs_weights:
        from cas_xr.zonal._encoding import encoding_of

        wlayers = int(np.prod(weights_raster.shape[:-2]))
        if wlayers not in (1, layers):
            raise InvalidArgumentError(
                f"weights_raster has {wlayers} layers (dims {weights_raster.dims}) and the "
                f"raster {layers}; give one 2-D weights layer, or one per layer"
            )
        weights = (weights_raster, encoding_of(weights_raster, None))
    arr = _lazy(geo, list(variables.values()), encodings, weights, mode, reductions, window_cells)
    ngeom = len(geo.kinds)
    labels = [r.name for r in reductions]
    has_stats = "zonal_statistics" in out.coords and not replace
    if has_stats:
        labels = [*out["zonal_statistics"].to_numpy().tolist(), *labels]
    lazy = any(isinstance(v.data, dsa.Array) for v in out.data_vars.values())
    if not lazy:
        from cas_xr.zonal._reads import compute

        (arr,) = compute(arr, scheduler="synchronous")
    offset = 0
    joined: dict[Hashable, Any] = {}
    for name, var in variables.items():
        dims, _ = layers_of(var)
        sizes = [var.sizes[d] for d in dims]
        count = int(np.prod(sizes))
        mine = arr[:, offset : offset + count].reshape(ngeom, *sizes, len(reductions))
        offset += count
        if has_stats:
            xp: Any = dsa if lazy else np
            mine = xp.concatenate([out[name].data, mine], axis=-1)
        attrs = out[name].attrs if name in out else _kept_attrs(var)
        joined[name] = (("geometry", *dims, "zonal_statistics"), mine, attrs)
    stale = [*joined, "zonal_statistics"]
    out = out.drop_vars(stale, errors="ignore").assign(joined)
    return out.assign_coords(zonal_statistics=labels)


def _kept_attrs(var: xr.DataArray) -> dict[Hashable, Any]:
    from cas_xr.zonal._api import _kept

    return _kept(var.attrs)
