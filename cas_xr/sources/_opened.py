"""Datasets opened once per process: what opening costs apart from the box, kept.

A small request opens its dataset around its geometries on every call. What an open
costs that does not depend on the box (opening a NetCDF file or a Zarr store, describing
a GeoTIFF, setting up the tile readers of a STAC layer's COGs) is kept here, so that the
next call on another box only cuts its window from what is already open. An entry is
found under what identifies the data:

- the source's own fields (a changed provider definition gives another key);
- a stamp of the files: a local file's inode, size and modification time (a file
  rewritten or replaced since is opened anew), a Zarr store's metadata files; a remote
  file (a URL) is trusted for ``metadata_cache_ttl_s``, and a remote COG only while the
  process keeps the same header of it (size and version, see :mod:`cas_xr.sources._cog`);
- the settings: any :func:`~cas_xr.config.configure` drops every entry.

At most :data:`MAX_OPENED` entries are kept, the least recently used going first. An
entry dropped is not closed here (a read on another thread may still use it): its file
is closed once neither the entry nor a layer cut from it is left (xarray's file manager
closes it with its last reference, and keeps at most ``file_cache_maxsize`` files open
in any case).
Nothing opened is written to: a caller gets a new object cut from the entry, so entries
stay as they were opened. Failed opens are not kept.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, fields, is_dataclass
from stat import S_ISDIR
from typing import Any, TypeVar

from cas_xr.config import get_settings, settings_generation
from cas_xr.sources._local_options import is_url

__all__ = [
    "MAX_OPENED",
    "MISSING",
    "OPENED",
    "OpenedCache",
    "file_stamp",
    "forget_opened",
    "frozen",
    "opened",
]

#: Opened datasets kept by a process.
MAX_OPENED = 64
#: What a Zarr store's metadata lives in (v2, consolidated v2, v3), at its root and in
#: each array's folder.
_ZARR_METADATA = (".zmetadata", ".zgroup", ".zattrs", ".zarray", "zarr.json")

V = TypeVar("V")
#: What :meth:`OpenedCache.get` returns without a live entry (an entry may be None).
MISSING: Any = object()


@dataclass(frozen=True)
class _Entry:
    stamp: Hashable
    expires: float
    value: Any


class OpenedCache:
    """A bounded, thread-safe cache of opened datasets, emptied when the settings change.

    Parameters
    ----------
    max_entries
        Capacity; the least recently used entries go first.
    clock
        Monotonic clock (injectable for tests).
    """

    def __init__(self, max_entries: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()
        self._generation = settings_generation()
        self._lock = threading.Lock()

    def _current(self) -> None:
        """Empty the cache if the settings changed (under the lock)."""
        generation = settings_generation()
        if generation != self._generation:
            self._entries.clear()
            self._generation = generation

    def get(self, key: Hashable, stamp: Hashable) -> Any:
        """The live entry of ``key`` opened with this ``stamp``, or :data:`MISSING`."""
        with self._lock:
            self._current()
            entry = self._entries.get(key)
            if entry is None or entry.stamp != stamp or self._clock() >= entry.expires:
                return MISSING
            self._entries.move_to_end(key)
            return entry.value

    def put(self, key: Hashable, stamp: Hashable, value: Any, *, ttl_s: float | None) -> None:
        """Keep ``value`` for ``ttl_s`` seconds (None: while its stamp holds; 0: not at all)."""
        if ttl_s is not None and ttl_s <= 0:
            return
        expires = float("inf") if ttl_s is None else self._clock() + ttl_s
        with self._lock:
            self._current()
            self._entries[key] = _Entry(stamp, expires, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        """Drop every entry."""
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


#: The process's opened datasets.
OPENED = OpenedCache(MAX_OPENED)


def opened(
    key: Hashable,
    open_: Callable[[], V],
    *,
    paths: tuple[str, ...],
    versions: Callable[[], Hashable | None] | None = None,
) -> V:
    """``open_()`` once for the data as they are now (see the module).

    Parameters
    ----------
    key
        What identifies the dataset and how it is opened (see :func:`frozen`).
    open_
        Opens it; what it raises is raised, and nothing is kept.
    paths
        The files or URLs read: local ones are stamped (while one is missing nothing is
        kept: the open says what is wrong); an entry with a URL lives
        ``metadata_cache_ttl_s``.
    versions
        More of the data's state, e.g. the versions of remote files as the process
        knows them; None from it (not known before the open) skips the lookup.
    """

    def state() -> Hashable | None:
        stamps = []
        for path in paths:
            if not (is_url(path) or path.startswith("/vsi")):
                stamp = file_stamp(path)
                if stamp is None:
                    return None
                stamps.append(stamp)
        more = () if versions is None else versions()
        return None if more is None else (tuple(stamps), more)

    full = (key, paths)
    before = state()
    if before is not None:
        kept = OPENED.get(full, before)
        if kept is not MISSING:
            return kept
    value = open_()
    after = before if versions is None else state()  # the open may have learnt versions
    if after is not None:
        remote = any(is_url(p) or p.startswith("/vsi") for p in paths)
        ttl_s = get_settings().metadata_cache_ttl_s if remote else None
        OPENED.put(full, after, value, ttl_s=ttl_s)
    return value


def forget_opened() -> None:
    """Drop every opened dataset kept by the process: the next open opens anew."""
    OPENED.clear()


def file_stamp(path: str) -> tuple[int, ...] | None:
    """A local file's (or Zarr store's) state: inode, size and time; None when missing.

    A folder (a Zarr store) is stamped by itself and by the metadata files at its root
    and in its arrays' folders, which every rewrite of the store's structure touches.
    """
    try:
        stat = os.stat(path)
    except OSError:
        return None
    stamp = [stat.st_ino, stat.st_size, stat.st_mtime_ns]
    if S_ISDIR(stat.st_mode):
        try:
            with os.scandir(path) as entries:
                folders = [path, *sorted(e.path for e in entries if e.is_dir())]
        except OSError:
            return None
        for folder in folders:
            for name in _ZARR_METADATA:
                try:
                    meta = os.stat(os.path.join(folder, name))
                except OSError:
                    continue
                stamp += [meta.st_ino, meta.st_size, meta.st_mtime_ns]
    return tuple(stamp)


def frozen(value: Any) -> Hashable:
    """``value`` as a hashable key: dataclasses by their fields, mappings sorted.

    Callables (a URL-signing hook) stand for themselves; NaN equals NaN (a NaN nodata).
    """
    if isinstance(value, float) and math.isnan(value):
        return ("nan",)
    if is_dataclass(value) and not isinstance(value, type):
        name = type(value).__qualname__
        return (name, *((f.name, frozen(getattr(value, f.name))) for f in fields(value)))
    if isinstance(value, Mapping):
        return tuple(sorted((str(k), frozen(v)) for k, v in value.items()))
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=repr) if isinstance(value, set | frozenset) else value
        return (type(value).__name__, *(frozen(v) for v in items))
    if isinstance(value, Hashable):
        return value
    return repr(value)
