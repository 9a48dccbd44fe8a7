"""The job store: one SQLite row per job in the data directory, so records outlive the daemon.

SQLite in WAL mode, through the standard library, written by one thread the store owns: a
write is queued from the event loop and awaited, and the thread commits every write queued
so far in one transaction (group commit), so concurrent starts share one fsync instead of
queueing for one each. ``synchronous=FULL`` makes each commit durable before its writers
resume: what a client was told (a start, a final status) survives a power cut, not only a
crash of the daemon (https://www.sqlite.org/pragma.html#pragma_synchronous, WAL mode).

The schema carries its version in ``PRAGMA user_version``; a database of another version is
refused with a message, and a migration is a function from version N to N+1 run in one
transaction at open (none exists yet: version 1 is the first). Rows hold what ``status``,
``list`` and ``output`` need after a restart: never the environment's values, which may be
secrets, only its names.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import json
import queue
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from worker.limits import LIMIT_TABLE, Limits
from worker.status import JobState, JobStatus, StopReason, Usage

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE jobs (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    argv TEXT NOT NULL,          -- JSON list
    env_names TEXT NOT NULL,     -- JSON list: names only, values may be secrets
    cwd TEXT NOT NULL,
    limits TEXT NOT NULL,        -- JSON object, a field per limit
    state TEXT NOT NULL,         -- JobState's value
    stop_reason TEXT,            -- StopReason's value
    started_at TEXT NOT NULL,    -- ISO 8601, UTC
    ended_at TEXT,
    exit_code INTEGER,
    signal INTEGER,
    core_dumped INTEGER NOT NULL,
    oom_killed INTEGER NOT NULL,
    usage TEXT NOT NULL,         -- JSON object, a field per Usage counter
    error TEXT
)
"""
_COLUMNS = (
    "id, owner, argv, env_names, cwd, limits, state, stop_reason, started_at, ended_at, "
    "exit_code, signal, core_dumped, oom_killed, usage, error"
)
_UPSERT = f"INSERT OR REPLACE INTO jobs ({_COLUMNS}) VALUES ({', '.join('?' * 16)})"


class StoreError(Exception):
    """The store cannot be opened, or a write failed."""


@dataclasses.dataclass(frozen=True, slots=True)
class JobRecord:
    """What the store keeps of one job: its status, and what is not in the status.

    Attributes:
        status: The status as last written: RUNNING from the start, final at the end.
        env_names: The names of the job's environment variables.
        cwd: Its working directory.
    """

    status: JobStatus
    env_names: tuple[str, ...]
    cwd: str


def _row(record: JobRecord) -> tuple[Any, ...]:
    status = record.status
    return (
        status.job_id,
        status.owner,
        json.dumps(list(status.argv)),
        json.dumps(list(record.env_names)),
        record.cwd,
        json.dumps({name: getattr(status.limits, name) for name in LIMIT_TABLE}),
        status.state.value,
        status.stop_reason.value if status.stop_reason else None,
        status.started_at.isoformat(),
        status.ended_at.isoformat() if status.ended_at else None,
        status.exit_code,
        status.signal,
        int(status.core_dumped),
        int(status.oom_killed),
        json.dumps(dataclasses.asdict(status.usage)),
        status.error,
    )


def _record(row: tuple[Any, ...]) -> JobRecord:
    (job_id, owner, argv, env_names, cwd, limits, state, reason, started, ended) = row[:10]
    exit_code, signal, core_dumped, oom_killed, usage, error = row[10:]
    status = JobStatus(
        job_id=job_id,
        owner=owner,
        argv=tuple(json.loads(argv)),
        state=JobState(state),
        exit_code=exit_code,
        signal=signal,
        core_dumped=bool(core_dumped),
        oom_killed=bool(oom_killed),
        stop_reason=StopReason(reason) if reason else None,
        started_at=datetime.datetime.fromisoformat(started),
        ended_at=datetime.datetime.fromisoformat(ended) if ended else None,
        limits=Limits(**json.loads(limits)),
        usage=Usage(**json.loads(usage)),
        error=error,
    )
    return JobRecord(status, tuple(json.loads(env_names)), cwd)


_Write = tuple[Callable[[sqlite3.Connection], None], asyncio.Future[None]]


class JobStore:
    """The database and the one thread that writes it. Create with ``open``."""

    def __init__(self, path: Path, loop: asyncio.AbstractEventLoop) -> None:
        self._path = path
        self._loop = loop
        self._writes: queue.SimpleQueue[_Write | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="jobworker-store", daemon=True)
        self._opened: asyncio.Future[list[JobRecord]] = loop.create_future()

    @classmethod
    async def open(cls, path: Path) -> tuple[JobStore, list[JobRecord]]:
        """Opens (creates) the database at ``path``; returns it and every job it holds.

        Raises:
            StoreError: The file cannot be opened, or its schema is of another version.
        """
        store = cls(path, asyncio.get_running_loop())
        store._thread.start()
        try:
            return store, await store._opened
        except BaseException:
            await store.aclose()
            raise

    async def put(self, record: JobRecord) -> None:
        """Inserts or replaces a job's row; returns once it is durable.

        Raises:
            StoreError: The write failed (the database stays as it was).
        """
        row = _row(record)
        await self._write(lambda db: db.execute(_UPSERT, row))

    async def _write(self, change: Callable[[sqlite3.Connection], Any]) -> None:
        done = self._loop.create_future()
        self._writes.put((change, done))
        await done

    async def aclose(self) -> None:
        """Finishes the queued writes and closes the database. Idempotent."""
        if self._thread.is_alive():
            self._writes.put(None)
            await asyncio.to_thread(self._thread.join)

    def _run(self) -> None:
        try:
            db = _connect(self._path)
            records = [_record(row) for row in db.execute(f"SELECT {_COLUMNS} FROM jobs")]
        except (sqlite3.Error, StoreError) as err:
            self._loop.call_soon_threadsafe(_fail, self._opened, _as_store_error(err))
            return
        self._loop.call_soon_threadsafe(_resolve, self._opened, records)
        with contextlib.closing(db):
            while (first := self._writes.get()) is not None:
                batch = [first]
                with contextlib.suppress(queue.Empty):
                    while (more := self._writes.get_nowait()) is not None:
                        batch.append(more)
                    self._writes.put(None)  # Seen while draining: stop after this batch.
                self._commit(db, batch)

    def _commit(self, db: sqlite3.Connection, batch: list[_Write]) -> None:
        outcome: StoreError | None = None
        try:
            db.execute("BEGIN")  # One transaction for the batch: one fsync.
            for change, _ in batch:
                change(db)
            db.execute("COMMIT")
        except sqlite3.Error as err:
            outcome = _as_store_error(err)
            with contextlib.suppress(sqlite3.Error):  # Already rolled back by the error.
                db.execute("ROLLBACK")
        for _, done in batch:
            if outcome is None:
                self._loop.call_soon_threadsafe(_resolve, done, None)
            else:
                self._loop.call_soon_threadsafe(_fail, done, outcome)


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version == 0:
            db.execute("BEGIN")
            db.execute(_SCHEMA)
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            db.execute("COMMIT")
        elif version != SCHEMA_VERSION:
            raise StoreError(
                f"{path} holds a job store of schema version {version}; this jobworkerd "
                f"reads version {SCHEMA_VERSION}: run the jobworkerd that wrote it, or move "
                "the file away"
            )
    except BaseException:
        db.close()
        raise
    return db


def _as_store_error(err: Exception) -> StoreError:
    if isinstance(err, StoreError):
        return err
    return StoreError(f"job store: {err}")


def _resolve(future: asyncio.Future[Any], value: Any) -> None:
    if not future.done():
        future.set_result(value)


def _fail(future: asyncio.Future[Any], err: Exception) -> None:
    if not future.done():
        future.set_exception(err)
