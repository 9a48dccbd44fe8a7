"""Stopping and finalizing a job when a step fails in a way nobody planned for.

One unexpected exception (EMFILE from pidfd_open, a garbled counter, a bug in a driver) used
to kill the stop task before its SIGKILL, poison every later stop with the same stale error,
or leave `finished` unset so that wait, stop and shutdown hung. The job tests need root.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from worker.cgroup import files
from worker.errors import CgroupError
from worker.job import Job
from worker.manager import JobManager
from worker.status import JobState
from worker.testing_manager import config, job

_BOUND = 60.0
"""Turns a hang into a failure; no test asserts on time."""


def _emfile() -> OSError:
    return OSError(errno.EMFILE, os.strerror(errno.EMFILE))


def _raiser(err: Exception) -> Callable[..., None]:
    def fail(*_: object) -> None:
        raise err

    return fail


async def _sleeping_job(manager: JobManager) -> Job:
    # It ignores SIGTERM, so every stop below ends in the SIGKILL these tests are about; it
    # says "ready" once the trap is set, which the first SIGTERM must not precede.
    script = "trap '' TERM; echo ready; exec /bin/sleep 1000"
    started = await manager.start(job("/bin/sh", "-c", script))
    async with asyncio.timeout(_BOUND), contextlib.aclosing(manager.output(started.job_id)) as out:
        assert await anext(out) == b"ready\n"
    running = manager._jobs.get(started.job_id)
    assert isinstance(running, Job)
    return running


def test_pidfd_open_failure_is_a_cgroup_error_and_leaks_no_pidfd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    procs = tmp_path / "cgroup.procs"
    procs.write_text(f"{os.getpid()}\n{os.getppid()}\n")
    opened: list[int] = []
    real_pidfd_open = os.pidfd_open

    def pidfd_open_then_emfile(pid: int, flags: int = 0) -> int:
        if opened:
            raise _emfile()
        opened.append(real_pidfd_open(pid, flags))
        return opened[-1]

    monkeypatch.setattr(os, "pidfd_open", pidfd_open_then_emfile)
    with pytest.raises(CgroupError, match=r"pidfd_open of pid \d+ failed: Too many open files"):
        files.signal_procs([procs], signal.SIGCONT)
    with pytest.raises(OSError, match="Bad file descriptor"):
        os.fstat(opened[0])  # The pidfd opened before the failure was closed.


@pytest.mark.kernel
@pytest.mark.parametrize("emfile", [False, True])
async def test_stop_kills_the_job_when_sigterm_fails_unexpectedly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, emfile: bool
) -> None:
    async with JobManager(config(tmp_path)) as manager:
        running = await _sleeping_job(manager)
        kill = running._spawner.kill

        async def kill_but_sigterm(pid: int, sig: int) -> bool:
            if sig == signal.SIGTERM:
                raise RuntimeError("bug")
            return await kill(pid, sig)

        monkeypatch.setattr(running._spawner, "kill", kill_but_sigterm)
        if emfile:
            # The cgroup's SIGKILL fails too (on v1 it pins each pid with a pidfd first);
            # only this process is affected: the spawner and the jobs are other processes.
            monkeypatch.setattr(os, "pidfd_open", _raiser(_emfile()))
        async with asyncio.timeout(_BOUND):
            # The grace is never waited for: without SIGTERM the kill comes at once.
            stopped = await manager.stop(running.job_id, grace=3600)
        monkeypatch.undo()
        assert await manager.stop(running.job_id) == stopped  # Stop of an ended job.
    assert (stopped.state, stopped.signal) == (JobState.STOPPED, signal.SIGKILL)
    assert stopped.error is not None and "SIGTERM failed, killed without grace" in stopped.error
    assert "RuntimeError('bug')" in stopped.error


@pytest.mark.kernel
async def test_a_failed_stop_does_not_poison_later_stops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def not_delivered(pid: int, sig: int) -> bool:
        return False

    async with JobManager(config(tmp_path)) as manager:
        running = await _sleeping_job(manager)
        monkeypatch.setattr(running._cgroup, "kill_all", _raiser(CgroupError("refused")))
        monkeypatch.setattr(running._spawner, "kill", not_delivered)
        async with asyncio.timeout(_BOUND):
            with pytest.raises(CgroupError, match="cannot SIGKILL the job: refused"):
                await manager.stop(running.job_id, grace=0)
        assert (await manager.status(running.job_id)).state is JobState.RUNNING
        monkeypatch.undo()
        async with asyncio.timeout(_BOUND):
            # A new stop sequence, not the failed one's stale error.
            stopped = await manager.stop(running.job_id, grace=0)
    assert (stopped.state, stopped.signal) == (JobState.STOPPED, signal.SIGKILL)
    # The failure stays on record.
    assert stopped.error is not None and "cannot SIGKILL the job: refused" in stopped.error


@pytest.mark.kernel
@pytest.mark.parametrize("step", ["usage", "remove"])
async def test_wait_returns_when_releasing_the_cgroup_fails_unexpectedly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    async with JobManager(config(tmp_path)) as manager:
        running = await _sleeping_job(manager)
        cgroup = running._cgroup
        real_remove = cgroup.remove
        if step == "usage":
            monkeypatch.setattr(cgroup, "usage", _raiser(ValueError("garbled counter")))
        else:

            async def remove_fails() -> None:
                raise RuntimeError("bug")

            monkeypatch.setattr(cgroup, "remove", remove_fails)
        waiter = asyncio.create_task(manager.wait(running.job_id))
        async with asyncio.timeout(_BOUND):
            stopped = await manager.stop(running.job_id, grace=0)
            assert await waiter == stopped
        if step == "remove":
            await real_remove()  # What the failed removal left behind.
    assert (stopped.state, stopped.signal) == (JobState.STOPPED, signal.SIGKILL)
    problem = {
        "usage": "final cgroup cleanup failed: ValueError('garbled counter')",
        "remove": "removing the job's cgroup failed: RuntimeError('bug')",
    }[step]
    assert stopped.error == problem
