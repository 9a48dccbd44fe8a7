"""JobManager's API: exit reporting, start failures, lookups, limits and OOM.

Every test runs real jobs (uid 65534, new namespaces, real cgroups), so they need root.
"""

from __future__ import annotations

import asyncio
import datetime
import signal
from pathlib import Path

import pytest

from worker.cgroup import CgroupMode, detect_mode
from worker.errors import InvalidSpec, JobNotFound, ManagerClosed, StartFailed
from worker.ids import is_job_id
from worker.limits import Limits
from worker.manager import JobManager
from worker.status import JobState
from worker.testing_manager import PYTHON, config, job, log_files, read_all

pytestmark = pytest.mark.kernel


async def test_exit_code_and_output_are_reported(tmp_path: Path) -> None:
    async with JobManager(config(tmp_path)) as manager:
        started = await manager.start(job("/bin/sh", "-c", "echo out; echo err >&2; exit 3"))
        assert started.state is JobState.RUNNING
        assert is_job_id(started.job_id)
        assert started.ended_at is None
        final = await manager.wait(started.job_id)
        output = await read_all(manager, started.job_id)
    assert final.state is JobState.EXITED
    assert (final.exit_code, final.signal) == (3, None)
    assert not final.oom_killed and final.stop_reason is None and final.error is None
    assert final.ended_at is not None and final.ended_at >= final.started_at
    assert final.started_at.tzinfo is datetime.UTC
    assert output == b"out\nerr\n"


async def test_output_without_trailing_newline_written_just_before_exit(tmp_path: Path) -> None:
    async with JobManager(config(tmp_path)) as manager:
        started = await manager.start(job("/bin/sh", "-c", "printf 'no newline'; exit 0"))
        await manager.wait(started.job_id)
        assert await read_all(manager, started.job_id, follow=False) == b"no newline"
        assert await read_all(manager, started.job_id, offset=3) == b"newline"


async def test_death_by_signal_is_reported(tmp_path: Path) -> None:
    # A namespace's init ignores signals it has no handler for, even its own raise(3), so
    # the job dies by a fault: the kernel force-delivers SIGSEGV (force_sig_fault).
    async with JobManager(config(tmp_path)) as manager:
        started = await manager.start(job(PYTHON, "-c", "import ctypes; ctypes.string_at(0)"))
        final = await manager.wait(started.job_id)
    assert final.state is JobState.EXITED
    assert (final.exit_code, final.signal) == (None, signal.SIGSEGV)


@pytest.mark.parametrize(
    ("argv", "cwd", "named"),
    [
        (("/no/such/program",), "/", "/no/such/program"),
        (("no-such-program-in-path",), "/", "no-such-program-in-path"),
        (("/etc/hostname",), "/", "/etc/hostname"),  # Mode 0644: not executable.
        (("/bin/true",), "/no/such/dir", "/no/such/dir"),
    ],
    ids=["missing-binary", "not-in-path", "not-executable", "missing-cwd"],
)
async def test_start_failure_raises_and_leaves_nothing(
    tmp_path: Path, argv: tuple[str, ...], cwd: str, named: str
) -> None:
    async with JobManager(config(tmp_path)) as manager:
        with pytest.raises(StartFailed) as raised:
            await manager.start(job(*argv, cwd=cwd))
        assert named in str(raised.value)
        assert raised.value.errno is not None
        assert await manager.list() == []
        assert log_files(tmp_path) == []
        # The failure leaves the manager usable.
        ok = await manager.start(job("/bin/true"))
        assert (await manager.wait(ok.job_id)).exit_code == 0


@pytest.mark.parametrize("job_id", ["", "x", "../../etc/passwd", "A" * 22, "é" * 22, "a" * 4096])
async def test_unknown_or_malformed_id_is_not_found(tmp_path: Path, job_id: str) -> None:
    async with JobManager(config(tmp_path)) as manager:
        with pytest.raises(JobNotFound):
            await manager.status(job_id)
        with pytest.raises(JobNotFound):
            await manager.stop(job_id)
        with pytest.raises(JobNotFound):
            await manager.wait(job_id)
        reader = manager.output(job_id)
        with pytest.raises(JobNotFound):
            await anext(reader)


async def test_limits_merge_defaults_and_are_checked_against_maximum(tmp_path: Path) -> None:
    cfg = config(
        tmp_path,
        default_limits=Limits(memory_bytes=256 << 20, pids=100),
        max_limits=Limits(memory_bytes=512 << 20, cpu=1.0),
    )
    async with JobManager(cfg) as manager:
        with pytest.raises(InvalidSpec) as raised:
            await manager.start(job("/bin/true", limits=Limits(memory_bytes=1 << 30)))
        assert raised.value.field == "limits.memory_bytes"
        with pytest.raises(InvalidSpec) as raised:
            await manager.start(job("/bin/true", limits=Limits(cpu=1.5)))
        assert raised.value.field == "limits.cpu"
        assert log_files(tmp_path) == []
        started = await manager.start(job("/bin/true", limits=Limits(cpu=0.5)))
        assert started.limits == Limits(cpu=0.5, memory_bytes=256 << 20, pids=100)
        await manager.wait(started.job_id)


async def test_memory_hog_is_reported_oom_killed(tmp_path: Path) -> None:
    hog = job(PYTHON, "-c", "b = b'x' * (512 << 20)", limits=Limits(memory_bytes=32 << 20))
    async with JobManager(config(tmp_path)) as manager:
        final = await manager.wait((await manager.start(hog)).job_id)
        calm = await manager.wait((await manager.start(job("/bin/true"))).job_id)
    assert final.oom_killed
    assert final.usage.oom_kills >= 1
    assert final.signal == signal.SIGKILL
    # The peak reached the limit; an ended job reports no current memory.
    assert final.usage.memory_peak_bytes >= 16 << 20
    assert final.usage.memory_bytes == 0
    if detect_mode() is CgroupMode.UNIFIED:  # v1's failcnt is not kept by every kernel.
        assert final.usage.memory_max_events >= 1  # The kernel counted hitting the limit.
    assert not calm.oom_killed
    assert calm.usage.memory_max_events == 0


# Forks until the kernel refuses one, twice; then burns one CPU-second.
_AT_THE_LIMITS = """
import os, time
refused = 0
while refused < 2:
    try:
        if os.fork() == 0:
            time.sleep(30)
            os._exit(0)
    except BlockingIOError:
        refused += 1
end = time.process_time() + 1
while time.process_time() < end:
    pass
"""


async def test_the_final_usage_counts_what_the_limits_refused(tmp_path: Path) -> None:
    greedy = job(PYTHON, "-c", _AT_THE_LIMITS, limits=Limits(pids=4, cpu=0.2))
    async with JobManager(config(tmp_path)) as manager:
        final = await manager.wait((await manager.start(greedy)).job_id)
        calm = await manager.wait((await manager.start(job("/bin/true"))).job_id)
    assert final.exit_code == 0
    assert final.usage.pids_refused >= 2
    # One CPU-second at 0.2 of a core is throttled in most of its 100 ms periods.
    assert final.usage.cpu_throttled_periods >= 1
    assert final.usage.cpu_periods >= final.usage.cpu_throttled_periods
    assert final.usage.cpu_throttled_usec > 0
    assert (calm.usage.pids_refused, calm.usage.cpu_throttled_periods) == (0, 0)


async def test_list_filters_by_owner_in_start_order(tmp_path: Path) -> None:
    async with JobManager(config(tmp_path)) as manager:
        ids = [(await manager.start(job("/bin/true", owner=o))).job_id for o in "aba"]
        for job_id in ids:
            await manager.wait(job_id)
        assert [s.job_id for s in await manager.list()] == ids
        assert [s.job_id for s in await manager.list("a")] == [ids[0], ids[2]]
        assert [s.owner for s in await manager.list("b")] == ["b"]
        assert await manager.list("nobody") == []


async def test_stop_of_an_ended_job_returns_its_final_status(tmp_path: Path) -> None:
    async with JobManager(config(tmp_path)) as manager:
        started = await manager.start(job("/bin/sh", "-c", "exit 7"))
        final = await manager.wait(started.job_id)
        again = await manager.stop(started.job_id)
        assert again == final
        assert again.state is JobState.EXITED and again.stop_reason is None


@pytest.mark.parametrize("grace", [-1.0, float("nan"), float("inf")])
async def test_stop_rejects_a_bad_grace(tmp_path: Path, grace: float) -> None:
    async with JobManager(config(tmp_path)) as manager:
        started = await manager.start(job("/bin/true"))
        with pytest.raises(InvalidSpec) as raised:
            await manager.stop(started.job_id, grace=grace)
        assert raised.value.field == "grace"
        await manager.wait(started.job_id)


async def test_negative_offset_is_invalid(tmp_path: Path) -> None:
    async with JobManager(config(tmp_path)) as manager:
        started = await manager.start(job("/bin/true"))
        with pytest.raises(InvalidSpec):
            await read_all(manager, started.job_id, offset=-1)
        await manager.wait(started.job_id)


async def test_a_manager_not_entered_or_closed_refuses_work(tmp_path: Path) -> None:
    manager = JobManager(config(tmp_path))
    with pytest.raises(ManagerClosed):
        await manager.start(job("/bin/true"))
    async with JobManager(config(tmp_path)) as manager:
        started = await manager.start(job("/bin/sh", "-c", "echo kept"))
        await manager.wait(started.job_id)
    with pytest.raises(ManagerClosed):
        await manager.start(job("/bin/true"))
    # Statuses outlive the manager; logs do not.
    assert (await manager.status(started.job_id)).exit_code == 0
    with pytest.raises(ManagerClosed):
        await read_all(manager, started.job_id)


async def test_data_directory_is_private(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir(mode=0o755)
    async with JobManager(config(tmp_path)) as manager:
        started = await manager.start(job("/bin/true"))
        await manager.wait(started.job_id)
    assert (tmp_path / "data").stat().st_mode & 0o777 == 0o700
    assert (tmp_path / "data" / "logs").stat().st_mode & 0o777 == 0o700
    assert (tmp_path / "data" / "logs" / started.job_id).stat().st_mode & 0o777 == 0o600


async def test_status_of_a_running_job_reads_live_usage(tmp_path: Path) -> None:
    async with JobManager(config(tmp_path, default_grace=0.0)) as manager:
        started = await manager.start(job(PYTHON, "-c", "while True: pass"))
        deadline = asyncio.get_running_loop().time() + 60
        while (status := await manager.status(started.job_id)).usage.cpu_usec < 200_000:
            assert asyncio.get_running_loop().time() < deadline, status
            await asyncio.sleep(0.05)
        (listed,) = await manager.list()
        assert listed.state is JobState.RUNNING
        assert listed.usage.cpu_usec >= status.usage.cpu_usec
        stopped = await manager.stop(started.job_id)
    assert stopped.usage.cpu_usec >= listed.usage.cpu_usec
