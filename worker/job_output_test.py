"""Reading a job's output through the manager: many readers, stalled readers, cancellation.

The byte-level behaviour of the log itself is tested in output_log_test.py; these tests run
real jobs that write straight into their logs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
from pathlib import Path

import pytest

from worker.manager import JobManager
from worker.status import JobState
from worker.testing_manager import (
    PYTHON,
    config,
    job,
    pattern,
    pattern_job,
    read_all,
    sha256,
)

pytestmark = pytest.mark.kernel


# Writes the first half of `pattern(blocks)`, then waits for SIGTERM (blocked, so it cannot be
# lost) before writing the second half and exiting 0: the test decides when the job ends.
_HALVES_SCRIPT = """
import hashlib, signal, sys, time
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
blocks = int(sys.argv[1])
out = sys.stdout.buffer
for i in range(blocks):
    if i == blocks // 2:
        out.flush()
        signal.sigwait({signal.SIGTERM})
    out.write(hashlib.sha256(b"%d" % i).digest() * 64)
    if i % 64 == 63:
        out.flush()
        time.sleep(0.01)
out.flush()
"""


async def test_hundred_readers_attaching_at_random_times_get_identical_bytes(
    tmp_path: Path,
) -> None:
    blocks = 2048  # 4 MiB; the job holds at 2 MiB until it is stopped.
    expected = sha256(pattern(blocks))
    rng = random.Random(20261129)
    async with JobManager(config(tmp_path)) as manager:
        started = await manager.start(job(PYTHON, "-c", _HALVES_SCRIPT, str(blocks)))
        job_id = started.job_id
        attached = asyncio.Semaphore(0)

        async def reader(delay: float) -> tuple[str, JobState]:
            await asyncio.sleep(delay)
            state = (await manager.status(job_id)).state
            async with contextlib.aclosing(manager.output(job_id)) as output:
                chunks = [await anext(output)]
                attached.release()
                chunks += [chunk async for chunk in output]
            return sha256(b"".join(chunks)), state

        async with asyncio.TaskGroup() as group:
            during = [group.create_task(reader(rng.uniform(0.0, 0.5))) for _ in range(70)]
            for _ in during:
                await attached.acquire()
            stopped = await manager.stop(job_id, grace=3600)
            after = [group.create_task(reader(rng.uniform(0.0, 0.2))) for _ in range(30)]
    assert (stopped.state, stopped.exit_code) == (JobState.STOPPED, 0)
    assert [task.result() for task in during] == [(expected, JobState.RUNNING)] * 70
    assert [task.result() for task in after] == [(expected, JobState.STOPPED)] * 30


async def test_stalled_reader_does_not_stop_a_job_writing_100_mib(tmp_path: Path) -> None:
    size = 100 << 20
    writer = job("/bin/sh", "-c", f"head -c {size} /dev/urandom")
    async with JobManager(config(tmp_path)) as manager:
        started = await manager.start(writer)
        stalled = manager.output(started.job_id)
        first = await anext(stalled)
        # The reader holds one chunk and is not iterated again until the job has ended.
        final = await manager.wait(started.job_id)
        assert final.state is JobState.EXITED and final.exit_code == 0
        rest = b"".join([chunk async for chunk in stalled])
        everything = await read_all(manager, started.job_id, follow=False)
    assert len(first) + len(rest) == size == len(everything)
    assert sha256(first + rest) == sha256(everything)


async def test_chunks_are_at_most_64_kib(tmp_path: Path) -> None:
    async with JobManager(config(tmp_path)) as manager:
        started = await manager.start(pattern_job(512))
        await manager.wait(started.job_id)
        sizes = [len(c) async for c in manager.output(started.job_id)]
    assert sum(sizes) == 512 * 2048
    assert max(sizes) <= 64 * 1024 and min(sizes) > 0


def _fds_of(path: Path) -> int:
    """How many of this process's fds are open on ``path``."""
    targets = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(FileNotFoundError):  # The listing's own fd, closed since.
            targets.append(os.readlink(f"/proc/self/fd/{fd}"))
    return targets.count(str(path))


async def test_cancelled_reader_returns_promptly_and_releases_its_fd(tmp_path: Path) -> None:
    script = "import sys, time; print('ready', flush=True); time.sleep(1000)"
    async with JobManager(config(tmp_path, default_grace=0.0)) as manager:
        started = await manager.start(job(PYTHON, "-c", script))
        log = tmp_path / "data" / "logs" / started.job_id
        fds_before = _fds_of(log)
        got_first = asyncio.Event()

        async def follow() -> None:
            async for _ in manager.output(started.job_id):
                got_first.set()

        task = asyncio.create_task(follow())
        await got_first.wait()
        assert _fds_of(log) == fds_before + 1  # The reader's own fd of the log.
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert task.cancelled()
        assert _fds_of(log) == fds_before
        assert (await manager.status(started.job_id)).state is JobState.RUNNING
        stopped = await manager.stop(started.job_id)
    assert stopped.state is JobState.STOPPED


async def test_non_follow_reader_returns_what_exists_now(tmp_path: Path) -> None:
    script = "import time; print('first', flush=True); time.sleep(1000)"
    async with JobManager(config(tmp_path, default_grace=0.0)) as manager:
        started = await manager.start(job(PYTHON, "-c", script))
        async with contextlib.aclosing(manager.output(started.job_id)) as reader:
            await anext(reader)  # The job has written its first line.
        assert await read_all(manager, started.job_id, follow=False) == b"first\n"
        await manager.stop(started.job_id)
