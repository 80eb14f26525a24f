"""How a variable's stored values become data: missing-value markers and CF packing.

Missing-value markers are compared with the stored values in their own dtype (an
integer ``uint64`` marker is never rounded through float64), before any scaling.
``scale_factor``/``add_offset`` still in ``attrs`` mean the values are packed (xarray
moves them to ``encoding`` when it decodes); rioxarray's per-band ``scales``/``offsets``
(left when the bands differ) are honoured along ``band``. They are applied window by
window inside the zonal tasks, so nothing is decoded ahead of time. Floats that carry
them are packed only when their ``encoding`` shows they were read so: xarray keeps
attributes through arithmetic, after which packed and scaled floats look alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from cas_xr.errors import InvalidArgumentError

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["Encoding", "encoding_of"]


def _one() -> npt.NDArray[np.float64]:
    return np.ones(())


def _zero() -> npt.NDArray[np.float64]:
    return np.zeros(())


@dataclass(frozen=True)
class Encoding:
    """Missing-value markers (in the stored dtype), scale and offset of one variable.

    ``scale`` and ``offset`` broadcast against the variable's leading (non-spatial) dims.
    """

    missing: tuple[Any, ...] = ()
    scale: npt.NDArray[np.float64] = field(default_factory=_one)
    offset: npt.NDArray[np.float64] = field(default_factory=_zero)

    @property
    def packed(self) -> bool:
        """Whether values must be scaled (a scale other than 1 or an offset other than 0)."""
        return bool(np.any(self.scale != 1.0) or np.any(self.offset != 0.0))

    def decode(self, raw: npt.ArrayLike, cells: int = 2) -> npt.NDArray[np.float64]:
        """Float64 data: NaN where a marker (or NaN) is stored, else scaled and offset.

        ``raw`` holds the leading dims first, then ``cells`` axes of cells (rows and
        columns of a window, or the points).
        """
        stored = np.asarray(raw)
        out = stored.astype(np.float64)
        if self.packed:
            tail = (1,) * cells
            out *= self.scale.reshape(self.scale.shape + tail)
            out += self.offset.reshape(self.offset.shape + tail)
        for marker in self.missing:
            out[stored == marker] = np.nan
        return out


def _native(value: Any, dtype: np.dtype[Any]) -> Any:
    """``value`` as a scalar of ``dtype``, or None when no stored value can equal it."""
    if value is None:
        return None
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        if isinstance(value, float | np.floating):
            real = float(value)
            if not real.is_integer():  # NaN, infinite or fractional: no integer equals it
                return None
            number = int(real)
            if number == info.max + 1 and real == float(info.max):
                number = info.max  # float64 rounds a 64-bit maximum up (2**64 for uint64)
        else:
            number = int(value)
        return dtype.type(number) if info.min <= number <= info.max else None
    if dtype.kind == "f":
        real = float(value)
        return None if math.isnan(real) else dtype.type(real)
    return dtype.type(value)


def _markers(var: xr.DataArray, nodata: float | None) -> list[Any]:
    if nodata is not None:
        return [nodata]
    attrs = var.attrs
    found = [v for k in ("_FillValue", "missing_value") for v in np.ravel(attrs.get(k, []))]
    if not found:
        found = [var.rio.nodata]  # also fill_value / nodata attrs; NaN once decoded
    return found


def _factor(var: xr.DataArray, single: str, per_band: str, default: float) -> Any:
    """One factor, or one per ``band`` shaped to broadcast against the leading dims."""
    attrs = var.attrs
    try:
        if single in attrs:  # a number, or an array of one (as some netCDF readers give it)
            return np.asarray(attrs[single], dtype=np.float64).reshape(())
        if per_band not in attrs:
            return np.asarray(default)
        values = np.asarray(attrs[per_band], dtype=np.float64).ravel()
    except (TypeError, ValueError) as err:
        raise InvalidArgumentError(
            f"variable {var.name!r} has {single}/{per_band} attributes that are not numbers ({err})"
        ) from None
    if np.all(values == default):
        return np.asarray(default)
    lead = var.dims[:-2]
    if "band" not in lead or var.sizes["band"] != values.size:
        raise InvalidArgumentError(
            f"variable {var.name!r} has per-band {per_band}={tuple(values)} but no 'band' "
            f"dimension of that length among {lead}; apply them yourself (and drop the "
            "attribute), e.g. da * xr.DataArray([...], dims='band')"
        )
    shape = [1] * len(lead)
    shape[lead.index("band")] = values.size
    return values.reshape(shape)


def encoding_of(var: xr.DataArray, nodata: float | None) -> Encoding:
    """The encoding of a variable (``nodata``, when given, replaces its own markers).

    Parameters
    ----------
    var
        The variable, as stored, with its spatial dims last.
    nodata
        The caller's missing-value marker, in stored units (before any scaling).
    """
    import rioxarray  # noqa: F401  (registers .rio)

    markers = [_native(m, var.dtype) for m in _markers(var, nodata)]
    encoding = Encoding(
        tuple(dict.fromkeys(m for m in markers if m is not None)),
        _factor(var, "scale_factor", "scales", 1.0),
        _factor(var, "add_offset", "offsets", 0.0),
    )
    if encoding.packed and var.dtype.kind == "f" and not _AS_READ & set(var.encoding):
        raise InvalidArgumentError(
            f"variable {var.name!r} holds floats with the attributes "
            f"{', '.join(k for k in _PACKING if k in var.attrs)} but was not read that way (its "
            "encoding is empty): xarray keeps attributes through arithmetic and reductions, "
            "so its values may still be packed (after da.where(...), .mean(), .astype()) or "
            "already scaled (after da * da.scale_factor). Say which: if they are in physical "
            "units, remove the attributes (da.attrs.pop('scale_factor'), "
            "da.attrs.pop('add_offset')); if they are still packed, decode them "
            "(xr.decode_cf(da.to_dataset(name='v'))['v'])"
        )
    return encoding


#: Encoding keys xarray and rioxarray leave on a variable as read from a file, kept by
#: selections, reordering and chunking but dropped by arithmetic and reductions.
_AS_READ = frozenset({"dtype", "source", "rasterio_dtype"})
_PACKING = ("scale_factor", "add_offset", "scales", "offsets")
