"""The persistent result cache: an SQLite file in the ``result_cache_dir`` setting.

Entries are opaque bytes under 16-byte keys (see :func:`digest`); the callers decide what
goes in a key (dataset, provider definition, geometry hash, statistics, time range,
weights) and how values are encoded. Entries do not expire: a persistent cache exists so
that re-running a large batch computes only what is missing, hours or days later. Delete
the directory (or point the setting elsewhere) to start afresh. :func:`~cas_xr.configure`
rebuilds the store against the new settings on next use.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from cas_xr.config import get_settings, settings_generation
from cas_xr.errors import ConfigurationError

__all__ = ["FILE_NAME", "PersistentStore", "digest", "persistent_store"]

#: The SQLite file the store keeps in ``result_cache_dir``.
FILE_NAME = "cas_xr_results.sqlite"
_SCHEMA = "CREATE TABLE IF NOT EXISTS results (key BLOB PRIMARY KEY, value BLOB, stored REAL)"
_BATCH = 500  # keys per SELECT (well under SQLite's variable limit)


def digest(*parts: object) -> bytes:
    """A 16-byte key from the ``repr`` of ``parts`` (strings, numbers, tuples, bytes)."""
    return hashlib.blake2b(repr(parts).encode(), digest_size=16).digest()


class PersistentStore:
    """Bytes under 16-byte keys in an SQLite file; safe across threads and processes.

    Parameters
    ----------
    directory
        Created if missing; holds :data:`FILE_NAME`.

    Raises
    ------
    ConfigurationError
        If the directory cannot be created or the file cannot be opened.
    """

    def __init__(self, directory: Path) -> None:
        self.path = Path(directory).expanduser() / FILE_NAME
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(_SCHEMA)
            self._db.commit()
        except (OSError, sqlite3.Error) as err:
            raise ConfigurationError(
                f"cannot use result_cache_dir={str(directory)!r} as the persistent result "
                f"cache ({err}); point the setting at a writable directory or unset it"
            ) from None

    def __repr__(self) -> str:
        return f"PersistentStore({str(self.path)!r})"

    def __len__(self) -> int:
        with self._lock:
            (count,) = self._db.execute("SELECT COUNT(*) FROM results").fetchone()
        return int(count)

    def get_many(self, keys: Sequence[bytes]) -> dict[bytes, bytes]:
        """The stored values of those ``keys`` that are present."""
        found: dict[bytes, bytes] = {}
        with self._lock:
            for start in range(0, len(keys), _BATCH):
                chunk = keys[start : start + _BATCH]
                marks = ",".join("?" * len(chunk))
                rows = self._db.execute(
                    f"SELECT key, value FROM results WHERE key IN ({marks})", chunk
                )
                found.update(rows)
        return found

    def put_many(self, items: Iterable[tuple[bytes, bytes]]) -> None:
        """Store ``(key, value)`` pairs (replacing older values), in one transaction."""
        now = time.time()
        with self._lock, self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO results (key, value, stored) VALUES (?, ?, ?)",
                ((key, value, now) for key, value in items),
            )


_lock = threading.Lock()
_state: tuple[int, PersistentStore | None] | None = None


def persistent_store() -> PersistentStore | None:
    """The store of the current ``result_cache_dir`` setting (None when it is unset)."""
    global _state
    generation = settings_generation()
    with _lock:
        if _state is None or _state[0] != generation:
            directory = get_settings().result_cache_dir
            old = _state[1] if _state is not None else None
            new = None
            if directory is not None:  # a store in use elsewhere closes when dropped
                same = old is not None and old.path.parent == Path(directory).expanduser()
                new = old if same else PersistentStore(directory)
            _state = (generation, new)
        return _state[1]
