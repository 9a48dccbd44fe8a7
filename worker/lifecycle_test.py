"""Job lifecycle under stress: stop and escalation, shutdown, spawner loss, races.

Every test runs real jobs (uid 65534, new namespaces, real cgroups), so they need root.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
from pathlib import Path

import pytest

from worker.errors import ManagerClosed
from worker.manager import JobManager
from worker.status import JobState, StopReason
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

_IGNORE_TERM = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "


def _children() -> set[int]:
    pids: set[int] = set()
    for task in Path("/proc/self/task").iterdir():
        pids.update(int(p) for p in (task / "children").read_text().split())
    return pids


def _pids_running(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except (FileNotFoundError, ProcessLookupError):
                continue  # It exited during the scan.
    return found


async def _first_line(manager: JobManager, job_id: str) -> bytes:
    reader = manager.output(job_id)
    try:
        return await anext(reader)
    finally:
        await reader.aclose()


async def test_stop_delivers_sigterm_to_a_job_that_handles_it(tmp_path: Path) -> None:
    script = (
        "import signal, sys, time\n"
        "signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))\n"
        "print('ready', flush=True)\n"
        "time.sleep(1000)\n"
    )
    async with JobManager(config(tmp_path)) as manager:
        started = await manager.start(job(PYTHON, "-c", script))
        await _first_line(manager, started.job_id)
        # A grace far beyond the test's run time: an exit code 0 proves SIGTERM did it.
        stopped = await manager.stop(started.job_id, grace=3600)
    assert stopped.state is JobState.STOPPED and stopped.stop_reason is StopReason.REQUESTED
    assert (stopped.exit_code, stopped.signal) == (0, None)


@pytest.mark.parametrize(
    "argv",
    [
        (PYTHON, "-c", _IGNORE_TERM + "print('ready', flush=True); time.sleep(1000)"),
        # An ignored disposition survives exec (signal(7)).
        ("/bin/sh", "-c", "trap '' TERM; echo ready; exec sleep 1000"),
    ],
    ids=["sig-ign", "ignored-across-exec"],
)
async def test_stop_escalates_to_sigkill_after_grace(tmp_path: Path, argv: tuple[str, ...]) -> None:
    async with JobManager(config(tmp_path)) as manager:
        started = await manager.start(job(*argv))
        await _first_line(manager, started.job_id)
        stopped = await manager.stop(started.job_id, grace=0.2)
    assert stopped.state is JobState.STOPPED
    assert (stopped.exit_code, stopped.signal) == (None, signal.SIGKILL)


async def test_stop_kills_a_child_that_called_setsid(tmp_path: Path) -> None:
    marker = f"86400.{secrets.randbelow(10**9)}"
    # The child leaves the job's session and process group, and ignores SIGTERM too (an
    # ignored disposition survives exec), so only a kill of the whole job reaches it.
    child = ["/bin/sh", "-c", f"trap '' TERM; exec /bin/sleep {marker}"]
    script = (
        f"{_IGNORE_TERM}import subprocess\n"
        f"subprocess.Popen({child!r}, start_new_session=True)\n"
        "print('ready', flush=True)\n"
        "time.sleep(1000)\n"
    )
    async with JobManager(config(tmp_path)) as manager:
        started = await manager.start(job(PYTHON, "-c", script))
        await _first_line(manager, started.job_id)
        sleeper = f"/bin/sleep\x00{marker}"
        deadline = asyncio.get_running_loop().time() + 30
        while not _pids_running(sleeper):  # Until sh has exec'd sleep.
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.01)
        assert len(_pids_running(sleeper)) == 1
        stopped = await manager.stop(started.job_id, grace=0.2)
        assert stopped.state is JobState.STOPPED
        assert _pids_running(sleeper) == []


async def test_concurrent_stops_share_one_stop_and_a_shorter_grace_wins(tmp_path: Path) -> None:
    script = _IGNORE_TERM + "print('ready', flush=True); time.sleep(1000)"
    async with JobManager(config(tmp_path)) as manager:
        started = await manager.start(job(PYTHON, "-c", script))
        await _first_line(manager, started.job_id)
        slow = asyncio.create_task(manager.stop(started.job_id, grace=3600))
        await asyncio.sleep(0.1)
        statuses = await asyncio.gather(manager.stop(started.job_id, grace=0.1), slow)
    assert statuses[0] == statuses[1]
    assert statuses[0].signal == signal.SIGKILL


async def test_concurrent_start_stop_status_output_from_many_tasks(tmp_path: Path) -> None:
    async with JobManager(config(tmp_path, default_grace=0.1)) as manager:

        async def life(i: int) -> None:
            script = f"print({i}, flush=True); import time; time.sleep(1000)"
            started = await manager.start(job(PYTHON, "-c", script, owner=f"o{i % 3}"))
            reader = asyncio.create_task(read_all(manager, started.job_id))
            assert (await manager.status(started.job_id)).state is JobState.RUNNING
            assert await _first_line(manager, started.job_id) == f"{i}\n".encode()
            stops = [manager.stop(started.job_id) for _ in range(3)]
            finals = await asyncio.gather(*stops, manager.wait(started.job_id))
            assert all(s.state is JobState.STOPPED for s in finals)
            assert await reader == f"{i}\n".encode()

        await asyncio.gather(*(life(i) for i in range(40)), manager.list(), manager.list("o1"))
        assert len(await manager.list()) == 40
        assert len(await manager.list("o1")) == 13


# Under the VM's CPU emulation (tools/vm) 1,000 jobs alone take over ten minutes.
_RACE_JOBS = 100 if os.environ.get("JOBWORKER_TEST_IN_VM") == "1" else 1000


async def test_exit_race_thousand_jobs_lose_no_byte(tmp_path: Path) -> None:
    # 1,000 jobs (100 in the VM), 50 at a time, each writing 40 KiB (no pause) and exiting at
    # once; every log must hold every byte when the job's status turns final.
    blocks = 20
    expected = sha256(pattern(blocks))
    limit = asyncio.Semaphore(50)
    async with JobManager(config(tmp_path)) as manager:

        async def one() -> tuple[int | None, str]:
            async with limit:
                started = await manager.start(pattern_job(blocks))
                final = await manager.wait(started.job_id)
                return final.exit_code, sha256(await read_all(manager, started.job_id))

        results = await asyncio.gather(*(one() for _ in range(_RACE_JOBS)))
    assert results == [(0, expected)] * _RACE_JOBS


async def test_spawner_killed_while_jobs_run(tmp_path: Path) -> None:
    marker = f"86400.{secrets.randbelow(10**9)}"
    before = _children()
    async with JobManager(config(tmp_path)) as manager:
        (spawner_pid,) = _children() - before
        running = [await manager.start(job("/bin/sleep", marker)) for _ in range(3)]
        os.kill(spawner_pid, signal.SIGKILL)
        finals = [await manager.wait(s.job_id) for s in running]
        # The next start replaces the spawner.
        after = await manager.wait((await manager.start(job("/bin/sh", "-c", "exit 4"))).job_id)
        (new_spawner,) = _children() - before
    assert new_spawner != spawner_pid
    for final in finals:
        assert final.state is JobState.FAILED
        assert final.error is not None and "spawner" in final.error
        assert final.ended_at is not None
    assert after.state is JobState.EXITED and after.exit_code == 4
    assert _pids_running(f"/bin/sleep\x00{marker}") == []


async def test_shutdown_stops_running_jobs_and_concurrent_aclose_is_safe(tmp_path: Path) -> None:
    manager = JobManager(config(tmp_path, default_grace=0.2))
    await manager.__aenter__()
    try:
        ids = [(await manager.start(job("/bin/sleep", "1000"))).job_id for _ in range(5)]
        readers = [asyncio.create_task(read_all(manager, i)) for i in ids]
        await asyncio.gather(manager.aclose(), manager.aclose())
    finally:
        await manager.aclose()
    await manager.aclose()
    assert [await r for r in readers] == [b""] * 5  # Followers ended with the jobs.
    for job_id in ids:
        final = await manager.status(job_id)
        assert (final.state, final.stop_reason) == (JobState.STOPPED, StopReason.SHUTDOWN)
        assert final.signal == signal.SIGTERM  # jobinit forwarded it: no escalation needed.
    with pytest.raises(ManagerClosed):
        await manager.start(job("/bin/true"))


async def test_cancelled_start_leaves_no_job_running(tmp_path: Path) -> None:
    async with JobManager(config(tmp_path, default_grace=0.2)) as manager:
        starting = asyncio.create_task(manager.start(job("/bin/sleep", "1000")))
        await asyncio.sleep(0)  # start() is now awaiting its shielded start task.
        starting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await starting
        deadline = asyncio.get_running_loop().time() + 30
        while not (listed := await manager.list()) or listed[0].state is JobState.RUNNING:
            assert asyncio.get_running_loop().time() < deadline, listed
            await asyncio.sleep(0.02)
    assert listed[0].state is JobState.STOPPED
