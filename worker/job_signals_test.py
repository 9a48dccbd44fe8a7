"""A job's program under jobinit: stops without escalation, signals, orphans, daemons.

jobinit itself is tested through the spawner in jobinit_test.py; these go through the
manager, as the daemon does, with its limits and its stop sequence.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path

import pytest

from worker.errors import InvalidSpec, JobNotFound, JobNotRunning
from worker.limits import Limits
from worker.manager import JobManager
from worker.status import JobState, StopReason
from worker.testing_manager import PYTHON, config, job, read_all

pytestmark = pytest.mark.kernel

# A loaded host or the TCG VM may be slow, but never by this much; each stop below is given
# a grace far above it, so a stop that returns within it did not wait for the grace.
_BOUND = 60
_GRACE = 3600


async def _wait_for_output(manager: JobManager, job_id: str, *texts: bytes) -> None:
    """Follows the job's output until it holds every one of ``texts``."""
    seen = b""
    async with asyncio.timeout(_BOUND), contextlib.aclosing(manager.output(job_id)) as chunks:
        async for chunk in chunks:
            seen += chunk
            if all(text in seen for text in texts):
                return
    raise AssertionError(f"the job ended before it wrote {texts}: {seen!r}")


async def test_stopping_a_program_without_a_handler_needs_no_sigkill(tmp_path: Path) -> None:
    async with JobManager(config(tmp_path)) as manager:
        started = await manager.start(job("/bin/sleep", "300"))
        async with asyncio.timeout(_BOUND):
            stopped = await manager.stop(started.job_id, grace=_GRACE)
    assert (stopped.state, stopped.stop_reason) == (JobState.STOPPED, StopReason.REQUESTED)
    assert (stopped.exit_code, stopped.signal) == (None, signal.SIGTERM)


async def test_a_shell_that_traps_term_exits_with_its_own_code(tmp_path: Path) -> None:
    script = "trap 'echo bye; exit 7' TERM; echo ready; while :; do sleep 0.1; done"
    async with JobManager(config(tmp_path)) as manager:
        started = await manager.start(job("/bin/sh", "-c", script))
        await _wait_for_output(manager, started.job_id, b"ready")
        async with asyncio.timeout(_BOUND):
            stopped = await manager.stop(started.job_id, grace=_GRACE)
        output = await read_all(manager, started.job_id)
    assert (stopped.exit_code, stopped.signal) == (7, None)
    assert output == b"ready\nbye\n"


# Each round leaves an orphan: sh starts true in the background and exits at once, so true
# is reparented to PID 1. Only an init that reaps keeps the job under 64 processes.
_ORPHANS = """
import os, subprocess, time
for _ in range(200):
    subprocess.run(["/bin/sh", "-c", "/bin/true &"], check=True)
def zombies():
    found = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            found += open(f"/proc/{pid}/stat").read().rpartition(")")[2].split()[0] == "Z"
        except FileNotFoundError:
            continue
    return found
deadline = time.monotonic() + 30
while zombies() and time.monotonic() < deadline:
    time.sleep(0.05)
print("zombies", zombies())
"""


async def test_orphans_are_reaped_and_never_exhaust_the_pids_limit(tmp_path: Path) -> None:
    async with JobManager(config(tmp_path)) as manager:
        started = await manager.start(job(PYTHON, "-c", _ORPHANS, limits=Limits(pids=64)))
        final = await manager.wait(started.job_id)
        output = await read_all(manager, started.job_id)
    assert output == b"zombies 0\n"
    assert final.exit_code == 0


# The program and one child that handles SIGUSR1 each say so once per signal.
_FAMILY = """
import os, signal, sys, time
who = "parent"
r, w = os.pipe()
if os.fork() == 0:
    who = "child"
# os.write: a handler that print()s while "ready" is still being printed fails reentrant.
signal.signal(signal.SIGUSR1, lambda *_: os.write(1, who.encode() + b"\\n"))
if who == "child":
    os.write(w, b"x")
else:
    os.read(r, 1)
    print("ready", flush=True)
time.sleep(1000)
"""


@pytest.mark.parametrize(
    ("everyone", "expected"), [(False, [b"parent"]), (True, [b"child", b"parent"])]
)
async def test_a_signal_reaches_the_program_or_every_process_once(
    tmp_path: Path, everyone: bool, expected: list[bytes]
) -> None:
    async with JobManager(config(tmp_path)) as manager:
        started = await manager.start(job(PYTHON, "-c", _FAMILY))
        await _wait_for_output(manager, started.job_id, b"ready")
        await manager.signal(started.job_id, signal.SIGUSR1, everyone=everyone)
        await _wait_for_output(manager, started.job_id, *expected)
        await manager.signal(started.job_id, signal.SIGKILL)
        final = await manager.wait(started.job_id)
        lines = (await read_all(manager, started.job_id)).split()
    assert sorted(lines[1:]) == expected  # Once each: jobinit did not forward a second copy.
    assert final.signal == signal.SIGKILL


async def test_signals_to_ended_or_unknown_jobs_are_refused(tmp_path: Path) -> None:
    async with JobManager(config(tmp_path)) as manager:
        started = await manager.start(job("/bin/true"))
        await manager.wait(started.job_id)
        for everyone in (False, True):
            with pytest.raises(JobNotRunning):
                await manager.signal(started.job_id, signal.SIGTERM, everyone=everyone)
        with pytest.raises(JobNotFound):
            await manager.signal("A" * 22, signal.SIGTERM)


async def test_a_job_past_its_deadline_is_stopped_and_says_so(tmp_path: Path) -> None:
    async with JobManager(config(tmp_path, default_grace=_GRACE)) as manager:
        slow = await manager.start(job("/bin/sleep", "300", limits=Limits(timeout_seconds=0.5)))
        quick = await manager.start(job("/bin/true", limits=Limits(timeout_seconds=0.5)))
        async with asyncio.timeout(_BOUND):
            stopped = await manager.wait(slow.job_id)
        ended = await manager.wait(quick.job_id)
        # The quick job's deadline timer was cancelled: it must not stop anything later.
        await asyncio.sleep(1)
        again = await manager.status(quick.job_id)
    assert (stopped.state, stopped.stop_reason) == (JobState.STOPPED, StopReason.DEADLINE)
    assert stopped.signal == signal.SIGTERM  # The grace was not needed.
    assert stopped.ended_at is not None
    assert (stopped.ended_at - stopped.started_at).total_seconds() >= 0.5
    assert (ended.state, ended.stop_reason) == (JobState.EXITED, None)
    assert again == ended


async def test_a_deadline_above_the_maximum_is_refused(tmp_path: Path) -> None:
    limited = config(tmp_path, max_limits=Limits(timeout_seconds=60))
    async with JobManager(limited) as manager:
        with pytest.raises(InvalidSpec, match=r"^limits\.timeout_seconds: 61(\.0)? exceeds"):
            await manager.start(job("/bin/true", limits=Limits(timeout_seconds=61)))
