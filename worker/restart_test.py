"""A manager that starts on an earlier manager's data directory: the records outlive it."""

from __future__ import annotations

import dataclasses
import datetime
from pathlib import Path

import pytest

from worker.errors import JobNotRunning
from worker.manager import JobManager
from worker.recovery import LOST
from worker.status import JobState, StopReason
from worker.store import JobRecord, JobStore
from worker.testing_manager import config, job, read_all

pytestmark = pytest.mark.kernel


async def test_ended_jobs_keep_their_status_owner_and_output(tmp_path: Path) -> None:
    async with JobManager(config(tmp_path)) as first:
        done = await first.wait((await first.start(job("/bin/sh", "-c", "echo hi; exit 3"))).job_id)
        stopped = await first.start(job("/bin/sleep", "300", owner="bob"))
    async with JobManager(config(tmp_path)) as second:
        again = await second.status(done.job_id)
        listed = await second.list("bob")
        output = await read_all(second, done.job_id)
        assert await second.stop(done.job_id) == again  # Stop of an ended job: its status.
        with pytest.raises(JobNotRunning):
            await second.signal(done.job_id, 15)
        assert second.owner(stopped.job_id) == "bob"
    assert again == done
    assert (again.state, again.exit_code) == (JobState.EXITED, 3)
    assert [(j.job_id, j.state, j.stop_reason) for j in listed] == [
        (stopped.job_id, JobState.STOPPED, StopReason.SHUTDOWN)
    ]
    assert output == b"hi\n"


async def test_a_job_recorded_running_whose_holder_is_gone_is_failed(tmp_path: Path) -> None:
    async with JobManager(config(tmp_path)) as first:
        started = await first.start(job("/bin/true"))
        ended = await first.wait(started.job_id)
    # As if the daemon had died with the job running: its record still says so.
    store, _ = await JobStore.open(tmp_path / "data" / "jobs.db")
    running = dataclasses.replace(ended, state=JobState.RUNNING, exit_code=None, ended_at=None)
    await store.put(JobRecord(running, ("PATH",), "/"))
    await store.aclose()
    async with JobManager(config(tmp_path)) as second:
        lost = await second.status(started.job_id)
    async with JobManager(config(tmp_path)) as third:  # The verdict itself was recorded.
        assert await third.status(started.job_id) == lost
    assert (lost.state, lost.stop_reason, lost.error) == (
        JobState.FAILED,
        StopReason.WORKER_LOST,
        LOST,
    )
    assert lost.ended_at is not None and lost.ended_at >= datetime.datetime.now(
        datetime.UTC
    ) - datetime.timedelta(minutes=5)
