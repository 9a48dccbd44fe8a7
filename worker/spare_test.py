"""The manager's spare: a job cgroup and a sandbox in it, made ahead of the next start."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

import pytest

from tools.testing import leakcheck
from worker.cgroup.base import JOB_DIR_PREFIX
from worker.errors import CgroupError
from worker.limits import Limits
from worker.manager import JobManager
from worker.testing_manager import PYTHON, config, job
from worker.testing_spawner import children_of, procs_of, until

pytestmark = pytest.mark.kernel

# Forks, which a pids limit of 1 refuses, says so, and waits.
_FORK_THEN_WAIT = """
import os, time
try:
    os.fork()
except BlockingIOError:
    print("fork refused", flush=True)
time.sleep(1000)
"""


def _job_dirs() -> dict[str, list[Path]]:
    """The job cgroup directories on the host, by job id."""
    dirs: dict[str, list[Path]] = {}
    for path in leakcheck.Snapshot.take().cgroups:
        name = os.path.basename(path)
        dirs.setdefault(name.removeprefix(JOB_DIR_PREFIX), []).append(Path(path))
    return dirs


def _spares(before: set[str]) -> dict[str, list[Path]]:
    """The job cgroups not in ``before`` that hold a process, by job id."""
    return {
        job_id: paths
        for job_id, paths in _job_dirs().items()
        if job_id not in before and any((p / "cgroup.procs").read_text() for p in paths)
    }


async def test_a_start_takes_the_spare_and_its_limits_bind_the_job(tmp_path: Path) -> None:
    before = set(_job_dirs())
    async with JobManager(config(tmp_path)) as manager:
        assert await until(lambda: len(_spares(before)) == 1, 30)
        (spare_id,) = _spares(before)
        spare_dirs = _spares(before)[spare_id]
        started = await manager.start(job(PYTHON, "-c", _FORK_THEN_WAIT, limits=Limits(pids=1)))
        async with contextlib.aclosing(manager.output(started.job_id)) as output:
            assert await anext(output) == b"fork refused\n"
        # Seen from the host (the job's cgroup namespace shows it "/"): jobinit and python.
        members = {pid for path in spare_dirs for pid in procs_of(path)}
        await manager.stop(started.job_id, grace=0)
        # The next spare has a new id.
        assert await until(lambda: bool(set(_spares(before)) - {spare_id}), 30)
    assert started.job_id == spare_id
    # Written to the spare's cgroup before the job ran: the job could not fork.
    assert len(members) == 2


async def test_a_limit_the_spare_refuses_fails_the_start_and_leaves_nothing(
    tmp_path: Path,
) -> None:
    before = set(_job_dirs())
    # No disk to throttle, so an IO limit is refused when it is written.
    async with JobManager(config(tmp_path, io_paths=())) as manager:
        assert await until(lambda: len(_spares(before)) == 1, 30)
        (spare_id,) = _spares(before)
        with pytest.raises(CgroupError, match="no block device"):
            await manager.start(job("/bin/true", limits=Limits(io_read_bps=1 << 20)))
        assert spare_id not in _job_dirs()
        assert await manager.list() == []
        # The manager goes on: the next start works.
        started = await manager.start(job("/bin/sh", "-c", "exit 3"))
        assert (await manager.wait(started.job_id)).exit_code == 3


async def test_a_spare_of_a_dead_spawner_is_discarded(tmp_path: Path) -> None:
    before = set(_job_dirs())
    children = children_of(os.getpid())
    async with JobManager(config(tmp_path)) as manager:
        (spawner_pid,) = children_of(os.getpid()) - children
        running = await manager.start(job("/bin/sleep", "1000"))
        before.add(running.job_id)
        assert await until(lambda: len(_spares(before)) == 1, 30)
        (spare_id,) = _spares(before)
        os.kill(spawner_pid, signal.SIGKILL)
        # The job died with the spawner: from then on the manager knows it is gone.
        await manager.wait(running.job_id)
        started = await manager.start(job("/bin/sh", "-c", "exit 5"))
        assert (await manager.wait(started.job_id)).exit_code == 5
        assert started.job_id != spare_id
        assert spare_id not in _job_dirs()
