"""Catchment attributes: derived variables, climate indices and attribute sets.

- Derived variables (:mod:`~cas_xr.attributes._terrain`): slope and aspect per cell of a
  DEM, declared in provider files (``derive:``) so that ids such as
  ``copernicus_dem:slope`` work wherever a dataset id does.
- Climate indices (CAMELS' formulas) of a geometry's area-weighted mean daily series.
- Attribute sets: YAML lists of named attributes (``camels``, ``sample``, yours), computed
  for many geometries by :func:`extract_attributes`.

Names load on first use, so the catalog can import the derived sources without loading
the engine.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cas_xr.attributes._climate import (
        INDICES,
        INPUT_UNITS,
        extraterrestrial_radiation,
        hargreaves_pet,
        index_value,
    )
    from cas_xr.attributes._extract import extract_attributes
    from cas_xr.attributes._sets import (
        ENTRY_POINT_GROUP,
        AttributeDefinition,
        AttributeSet,
        Transform,
        UnknownAttributeSetError,
        get_attribute_set,
        list_attribute_sets,
        load_attribute_set,
    )
    from cas_xr.attributes._terrain import aspect, gradient, slope, slope_m_per_km

_HOMES = {
    "cas_xr.attributes._climate": (
        "INDICES", "INPUT_UNITS", "extraterrestrial_radiation", "hargreaves_pet", "index_value",
    ),
    "cas_xr.attributes._extract": ("extract_attributes",),
    "cas_xr.attributes._sets": (
        "ENTRY_POINT_GROUP", "AttributeDefinition", "AttributeSet", "Transform",
        "UnknownAttributeSetError", "get_attribute_set", "list_attribute_sets",
        "load_attribute_set",
    ),
    "cas_xr.attributes._terrain": ("aspect", "gradient", "slope", "slope_m_per_km"),
}  # fmt: skip

__all__ = [
    "ENTRY_POINT_GROUP",
    "INDICES",
    "INPUT_UNITS",
    "AttributeDefinition",
    "AttributeSet",
    "Transform",
    "UnknownAttributeSetError",
    "aspect",
    "extract_attributes",
    "extraterrestrial_radiation",
    "get_attribute_set",
    "gradient",
    "hargreaves_pet",
    "index_value",
    "list_attribute_sets",
    "load_attribute_set",
    "slope",
    "slope_m_per_km",
]


def __getattr__(name: str) -> Any:
    for module, names in _HOMES.items():
        if name in names:
            value = getattr(importlib.import_module(module), name)
            globals()[name] = value
            return value
    raise AttributeError(f"module 'cas_xr.attributes' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
