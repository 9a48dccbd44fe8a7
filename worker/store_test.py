"""The job store: records survive a reopen, writes are grouped, versions are checked."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from worker.limits import Limits
from worker.status import JobState, JobStatus, StopReason, Usage
from worker.store import SCHEMA_VERSION, JobRecord, JobStore, StoreError

_STARTED = datetime.datetime(2026, 12, 2, 12, 0, 0, 123456, tzinfo=datetime.UTC)


def _record(job_id: str = "A" * 22, **changes: Any) -> JobRecord:
    status = JobStatus(
        job_id=job_id,
        owner="alice",
        argv=("/bin/sh", "-c", "echo 'caf\udce9'"),  # An undecodable byte survives too.
        state=JobState.RUNNING,
        exit_code=None,
        signal=None,
        core_dumped=False,
        oom_killed=False,
        stop_reason=None,
        started_at=_STARTED,
        ended_at=None,
        limits=Limits(cpu=0.5, pids=64, timeout_seconds=30.0),
        usage=Usage(),
    )
    return JobRecord(dataclasses.replace(status, **changes), ("PATH", "TOKEN"), "/tmp")


async def test_records_survive_a_reopen_with_every_field(tmp_path: Path) -> None:
    running = _record("R" * 22)
    ended = _record(
        "E" * 22,
        state=JobState.STOPPED,
        signal=6,
        core_dumped=True,
        oom_killed=True,
        stop_reason=StopReason.DEADLINE,
        ended_at=_STARTED + datetime.timedelta(seconds=3),
        usage=Usage(**{f.name: i for i, f in enumerate(dataclasses.fields(Usage), 1)}),
        error="final cgroup cleanup failed: x",
    )
    store, loaded = await JobStore.open(tmp_path / "jobs.db")
    assert loaded == []
    await store.put(running)
    await store.put(ended)
    await store.aclose()
    await store.aclose()  # Idempotent.
    store, loaded = await JobStore.open(tmp_path / "jobs.db")
    await store.aclose()
    assert sorted(loaded, key=lambda r: r.status.job_id) == [ended, running]


async def test_a_put_replaces_the_jobs_row(tmp_path: Path) -> None:
    store, _ = await JobStore.open(tmp_path / "jobs.db")
    await store.put(_record())
    final = _record(state=JobState.EXITED, exit_code=3, ended_at=_STARTED)
    await store.put(final)
    await store.aclose()
    _, loaded = await _reopen(tmp_path)
    assert loaded == [final]


async def test_concurrent_puts_are_all_durable(tmp_path: Path) -> None:
    store, _ = await JobStore.open(tmp_path / "jobs.db")
    await asyncio.gather(*(store.put(_record(f"{i:022d}")) for i in range(200)))
    await store.aclose()
    _, loaded = await _reopen(tmp_path)
    assert len(loaded) == 200


async def test_a_store_of_another_schema_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match=r"schema version 2; this jobworkerd reads version 1"):
        await JobStore.open(path)


async def test_an_unopenable_store_says_where(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="job store: unable to open database file"):
        await JobStore.open(tmp_path / "missing" / "jobs.db")


async def _reopen(tmp_path: Path) -> tuple[JobStore, list[JobRecord]]:
    store, loaded = await JobStore.open(tmp_path / "jobs.db")
    await store.aclose()
    return store, loaded
