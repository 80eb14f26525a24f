"""The job store: jobs, their status and results in SQLite, so a restart loses nothing.

Job ids are ``job_0``, ``job_1``... from a counter kept in the database: an id is never
given twice, not even after its job was removed. Status changes are conditional (a job
dismissed while it runs stays dismissed when its worker finishes).

Several service processes may share one database (``cas-xr serve --workers N``, or a
second server during a restart): each store has an ``owner`` id, written on the jobs it
creates or adopts and on a heartbeat row in ``instances``, so that a process fails or
re-queues only the jobs of processes that are gone (:mod:`cas_xr.service._owners`).
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cas_xr.ogc import ACTIVE, JobStatus

__all__ = ["FileOutput", "Instance", "JobRecord", "JobStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS counter (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO counter (name, value) VALUES ('job', 0);
CREATE TABLE IF NOT EXISTS files (
    job_id TEXT NOT NULL,
    output_id TEXT NOT NULL,
    media_type TEXT NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (job_id, output_id)
);
CREATE TABLE IF NOT EXISTS transmissions (
    job_id TEXT NOT NULL,
    output_id TEXT NOT NULL,
    mode TEXT NOT NULL,
    PRIMARY KEY (job_id, output_id)
);
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY,
    job_id TEXT NOT NULL UNIQUE,
    process_id TEXT NOT NULL,
    status TEXT NOT NULL,
    message TEXT,
    progress INTEGER,
    created TEXT NOT NULL,
    started TEXT,
    updated TEXT,
    finished TEXT,
    inputs TEXT NOT NULL,
    results TEXT
);
CREATE TABLE IF NOT EXISTS revoked_sessions (
    signature TEXT PRIMARY KEY,
    expiry INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS instances (
    owner TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    beat REAL NOT NULL
);
"""
_COLUMNS = "job_id, process_id, status, message, progress, created, started, updated, finished"
_MAX_PARAMETERS = 500  # per statement: SQLite before 3.32 allows 999


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


@dataclass(frozen=True)
class FileOutput:
    """An output that is a file (bytes of a media type), stored as it is, not as JSON."""

    media_type: str
    data: bytes = field(repr=False)


@dataclass(frozen=True)
class JobRecord:
    """A job as stored (without its inputs and results)."""

    job_id: str
    process_id: str
    status: JobStatus
    message: str | None
    progress: int | None
    created: datetime | None
    started: datetime | None
    updated: datetime | None
    finished: datetime | None

    @classmethod
    def _from_row(cls, row: tuple[Any, ...]) -> JobRecord:
        job_id, process_id, status, message, progress, *times = row
        created, started, updated, finished = (_time(t) for t in times)
        return cls(
            job_id, process_id, JobStatus(status), message, progress,
            created, started, updated, finished,
        )  # fmt: skip


@dataclass(frozen=True)
class Instance:
    """A service process that shares the database: its heartbeat row."""

    owner: str
    host: str
    pid: int
    beat: float


class JobStore:
    """Jobs in an SQLite database, safe to use from several threads and processes.

    Parameters
    ----------
    path
        The database file (created if missing), or ``":memory:"``.
    """

    def __init__(self, path: str) -> None:
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(path, check_same_thread=False, timeout=30)
        if path != ":memory:":
            self._conn.execute("PRAGMA journal_mode=WAL")
            # in WAL mode, NORMAL loses no committed job when the process dies (only when
            # the machine does), and spares each commit an fsync
            self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(_SCHEMA)
        columns = {row[1] for row in self._conn.execute("PRAGMA table_info(jobs)")}
        if "owner" not in columns:  # a database of an earlier version: its jobs have none
            self._conn.execute("ALTER TABLE jobs ADD COLUMN owner TEXT")
        self._conn.commit()
        #: This process's id on the jobs it creates or adopts.
        self.owner = uuid.uuid4().hex
        self.host, self.pid = socket.gethostname(), os.getpid()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock, self._conn:
            yield self._conn

    def create(
        self,
        process_id: str,
        inputs: dict[str, Any],
        transmissions: Mapping[str, str] | None = None,
    ) -> JobRecord:
        """Store a new ``accepted`` job under the next id.

        Parameters
        ----------
        process_id
            The process the job runs.
        inputs
            The validated inputs (JSON-compatible), kept so that the job can be re-queued.
        transmissions
            Output id -> ``"value"`` or ``"reference"``, as the execute request asked.
        """
        return self.create_many([(process_id, inputs, transmissions)])[0]

    def create_many(
        self, jobs: Sequence[tuple[str, dict[str, Any], Mapping[str, str] | None]]
    ) -> list[JobRecord]:
        """Store new ``accepted`` jobs under the next ids, in one transaction (in order).

        Parameters
        ----------
        jobs
            ``(process_id, inputs, transmissions)`` of each job, as :meth:`create` takes them.
        """
        if not jobs:
            return []
        now = _now()
        documents = [json.dumps(inputs) for _, inputs, _ in jobs]  # encoded outside the lock
        with self._transaction() as db:
            # one statement: two processes never read the same counter value
            (after,) = db.execute(
                "UPDATE counter SET value = value + ? WHERE name = 'job' RETURNING value",
                (len(jobs),),
            ).fetchone()
            seqs = range(after - len(jobs), after)
            db.executemany(
                "INSERT INTO jobs (seq, job_id, process_id, status, created, updated, inputs, "
                "owner) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (seq, f"job_{seq}", process_id, JobStatus.ACCEPTED.value, now, now, document,
                     self.owner)
                    for seq, (process_id, _, _), document in zip(seqs, jobs, documents, strict=True)
                ],
            )  # fmt: skip
            db.executemany(
                "INSERT INTO transmissions (job_id, output_id, mode) VALUES (?, ?, ?)",
                [
                    (f"job_{seq}", output_id, mode)
                    for seq, (_, _, transmissions) in zip(seqs, jobs, strict=True)
                    for output_id, mode in (transmissions or {}).items()
                ],
            )
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM jobs WHERE seq >= ? AND seq < ? ORDER BY seq",
                (seqs.start, seqs.stop),
            ).fetchall()
        return [JobRecord._from_row(row) for row in rows]

    def get(self, job_id: str) -> JobRecord | None:
        """The job ``job_id``, or None."""
        with self._transaction() as db:
            row = db.execute(f"SELECT {_COLUMNS} FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        return None if row is None else JobRecord._from_row(row)

    def get_many(self, job_ids: Sequence[str]) -> list[JobRecord | None]:
        """:meth:`get` of each of ``job_ids``, in order, in one transaction."""
        unique = list(dict.fromkeys(job_ids))
        found: dict[str, JobRecord] = {}
        with self._transaction() as db:
            for start in range(0, len(unique), _MAX_PARAMETERS):
                chunk = unique[start : start + _MAX_PARAMETERS]
                marks = ", ".join("?" * len(chunk))
                sql = f"SELECT {_COLUMNS} FROM jobs WHERE job_id IN ({marks})"
                found.update((row[0], JobRecord._from_row(row)) for row in db.execute(sql, chunk))
        return [found.get(job_id) for job_id in job_ids]

    def outputs_many(
        self, job_ids: Sequence[str]
    ) -> list[tuple[JobRecord, dict[str, Any] | None, bool] | None]:
        """Each job's record, outputs (as :meth:`results`) and whether it has file outputs.

        In order, in one transaction; None for a job that does not exist.
        """
        unique = list(dict.fromkeys(job_ids))
        rows = []
        with self._transaction() as db:
            for start in range(0, len(unique), _MAX_PARAMETERS):
                chunk = unique[start : start + _MAX_PARAMETERS]
                marks = ", ".join("?" * len(chunk))
                sql = (
                    f"SELECT {_COLUMNS}, results, EXISTS (SELECT 1 FROM files WHERE "
                    f"files.job_id = jobs.job_id) FROM jobs WHERE job_id IN ({marks})"
                )
                rows += db.execute(sql, chunk).fetchall()
        found = {  # decoded outside the lock
            row[0]: (
                JobRecord._from_row(row[:-2]),
                None if row[-2] is None else dict(json.loads(row[-2])),
                bool(row[-1]),
            )
            for row in rows
        }
        return [found.get(job_id) for job_id in job_ids]

    def inputs(self, job_id: str) -> dict[str, Any] | None:
        """The inputs of job ``job_id``, or None."""
        with self._transaction() as db:
            row = db.execute("SELECT inputs FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def results(self, job_id: str) -> dict[str, Any] | None:
        """The outputs of job ``job_id`` (None unless it was successful); files are None."""
        with self._transaction() as db:
            row = db.execute("SELECT results FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        return None if row is None or row[0] is None else dict(json.loads(row[0]))

    def file_types(self, job_id: str) -> dict[str, str]:
        """Output id -> media type of the file outputs of job ``job_id``."""
        sql = "SELECT output_id, media_type FROM files WHERE job_id = ? ORDER BY output_id"
        with self._transaction() as db:
            return dict(db.execute(sql, (job_id,)).fetchall())

    def file(self, job_id: str, output_id: str) -> FileOutput | None:
        """The file output ``output_id`` of job ``job_id``, or None."""
        sql = "SELECT media_type, data FROM files WHERE job_id = ? AND output_id = ?"
        with self._transaction() as db:
            row = db.execute(sql, (job_id, output_id)).fetchone()
        return None if row is None else FileOutput(row[0], bytes(row[1]))

    def transmissions(self, job_id: str) -> dict[str, str]:
        """Output id -> ``"value"`` or ``"reference"``, as the execute request asked."""
        sql = "SELECT output_id, mode FROM transmissions WHERE job_id = ?"
        with self._transaction() as db:
            return dict(db.execute(sql, (job_id,)).fetchall())

    def find(
        self,
        *,
        limit: int,
        statuses: Collection[str] = (),
        process_ids: Collection[str] = (),
        after: int | None = None,
        created: tuple[datetime | None, datetime | None] = (None, None),
        duration_s: tuple[float | None, float | None] = (None, None),
    ) -> list[JobRecord]:
        """Jobs, oldest first.

        Parameters
        ----------
        limit
            At most this many (-1: all).
        statuses, process_ids
            Only jobs with one of these statuses / processes (empty: any).
        after
            Only jobs created after the job of this number (``job_<number>``).
        created
            Only jobs created in this closed interval (None: open ended).
        duration_s
            Only jobs that ran at least / at most this many seconds: from their start to
            their end, or to now while they run; a job that never started ran 0 s.
        """
        where: list[str] = []
        params: list[Any] = []
        for column, values in (("status", statuses), ("process_id", process_ids)):
            if values:
                where.append(f"{column} IN ({', '.join('?' * len(values))})")
                params.extend(values)
        if after is not None:
            where.append("seq > ?")
            params.append(after)
        for moment, operator in zip(created, (">=", "<="), strict=True):
            if moment is not None:
                where.append(f"julianday(created) {operator} julianday(?)")
                params.append(moment.isoformat())
        duration = (
            "(CASE WHEN started IS NULL THEN 0 ELSE "
            "(julianday(COALESCE(finished, ?)) - julianday(started)) * 86400 END)"
        )
        for seconds, operator in zip(duration_s, (">=", "<="), strict=True):
            if seconds is not None:
                where.append(f"{duration} {operator} ?")
                params.extend([_now(), seconds])
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        sql = f"SELECT {_COLUMNS} FROM jobs {clause} ORDER BY seq LIMIT ?"
        with self._transaction() as db:
            rows = db.execute(sql, (*params, limit)).fetchall()
        return [JobRecord._from_row(r) for r in rows]

    def _update(self, job_id: str, allowed: Collection[JobStatus], **fields: Any) -> bool:
        fields["updated"] = _now()
        assignments = ", ".join(f"{name} = ?" for name in fields)
        marks = ", ".join("?" * len(allowed))
        with self._transaction() as db:
            cursor = db.execute(
                f"UPDATE jobs SET {assignments} WHERE job_id = ? AND status IN ({marks})",
                (*fields.values(), job_id, *(s.value for s in allowed)),
            )
        return cursor.rowcount == 1

    def start(self, job_id: str) -> bool:
        """Mark an accepted job running; False if it is no longer accepted."""
        return bool(self.start_many([job_id]))

    def start_many(self, job_ids: Collection[str]) -> list[str]:
        """Mark accepted jobs running, in one transaction; the ids of those that were accepted."""
        now = _now()
        started = []
        with self._transaction() as db:
            for job_id in job_ids:
                cursor = db.execute(
                    "UPDATE jobs SET status = ?, started = ?, updated = ?, progress = 0 "
                    "WHERE job_id = ? AND status = ?",
                    (JobStatus.RUNNING.value, now, now, job_id, JobStatus.ACCEPTED.value),
                )
                if cursor.rowcount == 1:
                    started.append(job_id)
        return started

    def set_progress(self, job_id: str, progress: int, message: str | None = None) -> bool:
        """Record the progress (0..100) of a running job; False if it is not running."""
        fields: dict[str, Any] = {"progress": max(0, min(100, int(progress)))}
        if message is not None:
            fields["message"] = message
        return self._update(job_id, {JobStatus.RUNNING}, **fields)

    def succeed(self, job_id: str, results: dict[str, Any], message: str = "Done") -> bool:
        """Store the outputs of a running job and mark it successful.

        :class:`FileOutput` values are stored as files. False (and nothing stored) if the
        job is no longer running.
        """
        return bool(self.succeed_many({job_id: results}, message))

    def succeed_many(
        self, results: Mapping[str, dict[str, Any]], message: str = "Done"
    ) -> list[str]:
        """Store the outputs of running jobs (job id -> outputs) in one transaction.

        As :meth:`succeed` for each job; returns the ids of the jobs marked successful
        (the others were no longer running, and nothing of theirs is stored).
        """
        documents = {
            job_id: json.dumps(
                {k: None if isinstance(v, FileOutput) else v for k, v in outputs.items()}
            )
            for job_id, outputs in results.items()
        }  # encoded outside the lock
        now = _now()
        done = []
        with self._transaction() as db:
            for job_id, outputs in results.items():
                cursor = db.execute(
                    "UPDATE jobs SET status = ?, message = ?, progress = 100, finished = ?, "
                    "updated = ?, results = ? WHERE job_id = ? AND status = ?",
                    (JobStatus.SUCCESSFUL.value, message, now, now, documents[job_id], job_id,
                     JobStatus.RUNNING.value),
                )  # fmt: skip
                if cursor.rowcount != 1:
                    continue
                done.append(job_id)
                db.executemany(
                    "INSERT OR REPLACE INTO files (job_id, output_id, media_type, data) "
                    "VALUES (?, ?, ?, ?)",
                    [
                        (job_id, k, f.media_type, f.data)
                        for k, f in outputs.items()
                        if isinstance(f, FileOutput)
                    ],
                )
        return done

    def fail(self, job_id: str, message: str) -> bool:
        """Mark an accepted or running job failed with ``message``."""
        return self._update(
            job_id, ACTIVE, status=JobStatus.FAILED.value, message=message, finished=_now()
        )

    def dismiss(self, job_id: str) -> bool:
        """Mark an accepted or running job dismissed; False if it had finished."""
        return self._update(
            job_id, ACTIVE, status=JobStatus.DISMISSED.value,
            message="dismissed by request", finished=_now(),
        )  # fmt: skip

    def delete(self, job_id: str) -> bool:
        """Remove a job and its results; False if there was none."""
        with self._transaction() as db:
            cursor = db.execute("DELETE FROM jobs WHERE job_id = ?", (job_id,))
            db.execute("DELETE FROM files WHERE job_id = ?", (job_id,))
            db.execute("DELETE FROM transmissions WHERE job_id = ?", (job_id,))
        return cursor.rowcount == 1

    def fail_running(self, message: str, owners: Collection[str | None]) -> list[str]:
        """Mark the running jobs of ``owners`` failed with ``message`` (they were cut off).

        ``None`` among ``owners`` stands for jobs without an owner (from a database of an
        earlier version). Returns the ids of those jobs.
        """
        where, params = _owned_by(owners)
        now = _now()
        with self._transaction() as db:
            rows = db.execute(
                "UPDATE jobs SET status = ?, message = ?, finished = ?, updated = ? "
                f"WHERE status = ? AND ({where}) RETURNING job_id",
                (JobStatus.FAILED.value, message, now, now, JobStatus.RUNNING.value, *params),
            ).fetchall()
        return sorted((r[0] for r in rows), key=lambda job_id: int(job_id[4:]))

    def adopt_accepted(self, owners: Collection[str | None]) -> list[str]:
        """Make this store the owner of the accepted jobs of ``owners``; their ids, oldest first.

        ``None`` among ``owners`` stands for jobs without an owner. A job is adopted by one
        process only, whichever asks first.
        """
        where, params = _owned_by(owners)
        with self._transaction() as db:
            rows = db.execute(
                f"UPDATE jobs SET owner = ? WHERE status = ? AND ({where}) RETURNING job_id",
                (self.owner, JobStatus.ACCEPTED.value, *params),
            ).fetchall()
        return sorted((r[0] for r in rows), key=lambda job_id: int(job_id[4:]))

    def beat(self) -> None:
        """Record that this process is alive (its row in ``instances``)."""
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO instances (owner, host, pid, beat) VALUES (?, ?, ?, ?)",
                (self.owner, self.host, self.pid, time.time()),
            )

    def instances(self) -> list[Instance]:
        """Every process's heartbeat row, this one's included."""
        with self._transaction() as db:
            rows = db.execute("SELECT owner, host, pid, beat FROM instances").fetchall()
        return [Instance(*row) for row in rows]

    def owners(self) -> set[str | None]:
        """The owners of active (accepted or running) jobs; None for jobs without one."""
        marks = ", ".join("?" * len(ACTIVE))
        with self._transaction() as db:
            rows = db.execute(
                f"SELECT DISTINCT owner FROM jobs WHERE status IN ({marks})",
                tuple(s.value for s in ACTIVE),
            ).fetchall()
        return {row[0] for row in rows}

    def forget(self, owners: Collection[str]) -> None:
        """Remove the heartbeat rows of ``owners`` (processes that are gone)."""
        with self._transaction() as db:
            db.executemany("DELETE FROM instances WHERE owner = ?", [(o,) for o in owners])

    def revoke_session(self, signature: str, expiry: int) -> None:
        """Keep a session cookie's ``signature`` as revoked until ``expiry`` (Unix time).

        Revocations whose cookies have expired are dropped on the way.
        """
        with self._transaction() as db:
            db.execute("DELETE FROM revoked_sessions WHERE expiry < ?", (int(time.time()),))
            db.execute(
                "INSERT OR REPLACE INTO revoked_sessions (signature, expiry) VALUES (?, ?)",
                (signature, expiry),
            )

    def revoked_sessions(self) -> dict[str, int]:
        """Signature -> expiry (Unix time) of the revoked session cookies not yet expired."""
        with self._transaction() as db:
            rows = db.execute(
                "SELECT signature, expiry FROM revoked_sessions WHERE expiry > ?",
                (int(time.time()),),
            ).fetchall()
        return dict(rows)


def _owned_by(owners: Collection[str | None]) -> tuple[str, list[str]]:
    """An SQL condition on ``owner`` for ``owners`` (None: no owner), and its parameters."""
    named = [o for o in owners if o is not None]
    terms = [f"owner IN ({', '.join('?' * len(named))})"] if named else []
    if None in owners:
        terms.append("owner IS NULL")
    return " OR ".join(terms) or "0", named
