"""A small thread-safe TTL + LRU cache (results and catalog metadata)."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from typing import Generic, TypeVar

from cas_xr.config._settings import Settings, get_settings, settings_generation

__all__ = ["SettingsBoundCache", "TTLCache"]

V = TypeVar("V")
K = TypeVar("K", bound=Hashable)


class TTLCache(Generic[V]):
    """Entries expire ``ttl_s`` seconds after being stored; the oldest go past ``max_entries``.

    Parameters
    ----------
    ttl_s
        Lifetime of an entry in seconds; 0 disables the cache.
    max_entries
        Capacity; 0 disables the cache.
    clock
        Monotonic clock (injectable for tests).
    """

    def __init__(
        self, ttl_s: float, max_entries: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._clock = clock
        self._data: OrderedDict[Hashable, tuple[float, V]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> V | None:
        """Return the live entry for ``key``, or None."""
        with self._lock:
            return self._live(key, self._clock())

    def get_many(self, keys: Iterable[K]) -> dict[K, V]:
        """The live entries of those ``keys`` the cache holds, under one lock."""
        found: dict[K, V] = {}
        with self._lock:
            if not self._data:
                return found
            now = self._clock()
            for key in keys:
                if (value := self._live(key, now)) is not None:
                    found[key] = value
        return found

    def _live(self, key: Hashable, now: float) -> V | None:
        """The entry for ``key`` if it lives at ``now`` (the most recent then); the lock held."""
        item = self._data.get(key)
        if item is None:
            return None
        expires, value = item
        if now >= expires:
            del self._data[key]
            return None
        self._data.move_to_end(key)
        return value

    def set(self, key: Hashable, value: V) -> None:
        """Store ``value`` under ``key`` (no-op when the cache is disabled)."""
        if self.ttl_s <= 0 or self.max_entries <= 0:
            return
        with self._lock:
            self._data[key] = (self._clock() + self.ttl_s, value)
            self._data.move_to_end(key)
            while len(self._data) > self.max_entries:
                self._data.popitem(last=False)

    def __len__(self) -> int:
        with self._lock:
            return len(self._data)


class SettingsBoundCache(Generic[V]):
    """A :class:`TTLCache` rebuilt from the settings whenever :func:`configure` changes them.

    Parameters
    ----------
    limits
        Maps the settings to ``(ttl_s, max_entries)``.
    """

    def __init__(self, limits: Callable[[Settings], tuple[float, int]]) -> None:
        self._limits = limits
        self._state: tuple[int, TTLCache[V]] | None = None
        self._lock = threading.Lock()

    def current(self) -> TTLCache[V]:
        """Return the cache for the current settings (a fresh one after a change)."""
        generation = settings_generation()
        with self._lock:
            if self._state is None or self._state[0] != generation:
                ttl_s, max_entries = self._limits(get_settings())
                self._state = (generation, TTLCache(ttl_s, max_entries))
            return self._state[1]
