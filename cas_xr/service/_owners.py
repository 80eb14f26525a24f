"""Which service processes sharing a job database are gone, so that others take their jobs.

Every service process beats (writes the time in its row of ``instances``) every
:data:`BEAT_S` seconds. A process is gone when its last beat is older than
:data:`STALE_S`, or at once when it ran on this host and its pid is no longer running
(or is this process's own: a restarted container often gets the same pid). The running
jobs of a process that is gone were cut off and are marked failed; its accepted jobs are
adopted and run by whichever live process looks first.
"""

from __future__ import annotations

import os
import time

from cas_xr.service._jobs import Instance, JobStore

__all__ = ["BEAT_S", "STALE_S", "gone"]

#: Seconds between two beats of a service process.
BEAT_S = 2.0
#: A process whose last beat is older than this is gone.
STALE_S = 15.0


def gone(store: JobStore) -> tuple[set[str | None], set[str]]:
    """Who is gone: owners of active jobs and rows of ``instances``.

    Returns
    -------
    tuple
        The owners of accepted or running jobs that are gone (None: jobs without an
        owner), and the owners of heartbeat rows that are gone (to forget).
    """
    now = time.time()
    instances = store.instances()
    alive = {i.owner for i in instances if _alive(i, store, now)}
    return store.owners() - alive, {i.owner for i in instances} - alive


def _alive(instance: Instance, store: JobStore, now: float) -> bool:
    if instance.owner == store.owner:
        return True
    if now - instance.beat > STALE_S:
        return False
    if instance.host != store.host:
        return True  # another host's process: only its beat tells
    return instance.pid != store.pid and _running(instance.pid)


def _running(pid: int) -> bool:
    """Whether a process ``pid`` runs on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True
