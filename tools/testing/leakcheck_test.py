"""The leak check must catch a forgotten job cgroup and ignore one a live driver owns."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tools.testing import leakcheck
from worker.cgroup.base import JOB_DIR_PREFIX, PARENT_DIR_NAME

# Holds an exclusive flock on a directory, as worker/cgroup/ownership.py does per live job.
_HOLD_LOCK = (
    "import fcntl, os, sys, time\n"
    "fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)\n"
    "fcntl.flock(fd, fcntl.LOCK_EX)\n"
    "print('locked', flush=True)\n"
    "time.sleep(60)\n"
)


@pytest.fixture
def job_dir() -> Iterator[Path]:
    """A job-shaped directory in this process's pids cgroup (v1) or unified cgroup (v2)."""
    lines = Path("/proc/self/cgroup").read_text().splitlines()
    pids = [line.split(":", 2)[2] for line in lines if line.split(":")[1] == "pids"]
    mount = Path("/sys/fs/cgroup/pids") if pids else Path("/sys/fs/cgroup")
    own = pids[0] if pids else next(line.split(":", 2)[2] for line in lines if line[:3] == "0::")
    parent = mount / own.lstrip("/") / PARENT_DIR_NAME
    parent.mkdir(exist_ok=True)
    path = parent / f"{JOB_DIR_PREFIX}leakcheck-test"
    path.mkdir()
    try:
        yield path
    finally:
        path.rmdir()


@pytest.mark.kernel
def test_forgotten_job_cgroup_is_reported(job_dir: Path) -> None:
    before = leakcheck.Snapshot.take()
    job_dir.rmdir()
    before_without = leakcheck.Snapshot.take()
    job_dir.mkdir()
    assert leakcheck.Snapshot.take().leaked_since(before_without)["job cgroups"] == [str(job_dir)]
    assert "job cgroups" not in leakcheck.Snapshot.take().leaked_since(before)


@pytest.mark.kernel
def test_job_cgroup_locked_by_another_process_is_not_a_leak(job_dir: Path) -> None:
    job_dir.rmdir()
    before = leakcheck.Snapshot.take()
    job_dir.mkdir()
    with subprocess.Popen(
        [sys.executable, "-c", _HOLD_LOCK, str(job_dir)], stdout=subprocess.PIPE
    ) as holder:
        try:
            assert holder.stdout is not None
            assert holder.stdout.readline() == b"locked\n"
            assert "job cgroups" not in leakcheck.Snapshot.take().leaked_since(before)
        finally:
            holder.kill()
            holder.wait()
    # Once the owner is gone, the directory is a leftover like any other.
    assert leakcheck.Snapshot.take().leaked_since(before)["job cgroups"] == [str(job_dir)]
