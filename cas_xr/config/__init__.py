"""Settings: ``CAS_``-prefixed environment variables, :func:`configure`, bound caches.

A :class:`SettingsBoundCache` is rebuilt against the new settings after a change.
"""

from cas_xr.config._cache import SettingsBoundCache, TTLCache
from cas_xr.config._settings import (
    Settings,
    configure,
    get_settings,
    settings_generation,
    shareable_settings,
)

__all__ = [
    "Settings",
    "SettingsBoundCache",
    "TTLCache",
    "configure",
    "get_settings",
    "settings_generation",
    "shareable_settings",
]
