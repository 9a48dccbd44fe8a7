"""Making, removing and sweeping job directories, on plain directories in tmp_path.

flock(2) and rmdir(2) behave on a tmpfs or ext4 directory as they do on cgroupfs for what
job_dirs.py uses; that the kernel keeps a cgroup busy while it has processes is tested in
lifecycle_test.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.cgroup import job_dirs
from worker.cgroup.ownership import JobLock
from worker.errors import CgroupError
from worker.limits import Limits
from worker.status import Usage


class FakeJob:
    """An empty job over existing directories; implements base.JobCgroup."""

    def __init__(self, dirs: list[Path], lock: JobLock | None) -> None:
        self.dirs = dirs
        self.lock = lock

    @property
    def procs_files(self) -> tuple[str, ...]:
        return tuple(str(d / "cgroup.procs") for d in self.dirs)

    def apply(self, limits: Limits) -> None:
        raise AssertionError("a sweep never applies limits")

    def signal_all(self, sig: int, exclude: frozenset[int] = frozenset()) -> None:
        raise AssertionError("a sweep only kills")

    def kill_all(self) -> None:
        raise AssertionError("an empty job is not killed")

    def is_empty(self) -> bool:
        return True

    def usage(self) -> Usage:
        return Usage()

    async def remove(self) -> None:
        await job_dirs.remove(self.dirs, self.lock)


@pytest.fixture
def parents(tmp_path: Path) -> tuple[Path, Path]:
    """An "other" parent (v1's cpu, say) and the owner parent (v1's freezer, v2's only one)."""
    other, owner = tmp_path / "cpu" / "jobworker", tmp_path / "freezer" / "jobworker"
    other.mkdir(parents=True)
    owner.mkdir(parents=True)
    return other, owner


def test_created_makes_and_locks_the_job(parents: tuple[Path, Path]) -> None:
    other, owner = parents
    dirs = [other / "job-a", owner / "job-a"]
    with job_dirs.created(owner, dirs) as lock:
        assert all(d.is_dir() for d in dirs)
        assert JobLock.try_acquire(owner / "job-a") is None  # Held: another driver sees it live.
    assert all(d.is_dir() for d in dirs)
    lock.release()


def test_created_removes_the_job_when_the_body_fails(parents: tuple[Path, Path]) -> None:
    other, owner = parents
    dirs = [other / "job-a", owner / "job-a"]
    with pytest.raises(CgroupError, match="refused"), job_dirs.created(owner, dirs):
        raise CgroupError("limit refused")
    assert not any(d.exists() for d in dirs)


def test_created_leaves_a_directory_that_existed_before(parents: tuple[Path, Path]) -> None:
    other, owner = parents
    (owner / "job-a").mkdir()  # A live job of another driver, say.
    dirs = [other / "job-a", owner / "job-a"]
    with pytest.raises(CgroupError, match="cannot create cgroup"), job_dirs.created(owner, dirs):
        pytest.fail("the body ran")
    assert not (other / "job-a").exists()
    assert (owner / "job-a").is_dir()


async def test_remove_removes_every_dir_and_releases_the_lock(parents: tuple[Path, Path]) -> None:
    other, owner = parents
    dirs = [other / "job-a", owner / "job-a"]
    with job_dirs.created(owner, dirs) as lock:
        pass
    await job_dirs.remove(dirs, lock)
    assert not any(d.exists() for d in dirs)
    await job_dirs.remove(dirs, lock)  # Removing again is harmless.


async def test_sweep_takes_only_unowned_jobs(parents: tuple[Path, Path]) -> None:
    other, owner = parents
    for path in (other / "job-dead", owner / "job-dead", other / "job-live", owner / "job-live"):
        path.mkdir()
    # A create that died before making the owner directory; and a directory that is no job.
    (other / "job-half").mkdir()
    (owner / "supervisor").mkdir()
    live = JobLock.try_acquire(owner / "job-live")
    assert live is not None
    found: dict[str, FakeJob] = {}

    def leftover(name: str, lock: JobLock | None) -> FakeJob:
        job = FakeJob([p / name for p in (other, owner) if (p / name).is_dir()], lock)
        found[name] = job
        return job

    try:
        assert await job_dirs.sweep(owner, [other, owner], leftover) == 2
    finally:
        live.release()
    assert sorted(found) == ["job-dead", "job-half"]
    assert found["job-dead"].lock is not None
    assert found["job-half"].lock is None
    assert sorted(p.name for p in other.iterdir()) == ["job-live"]
    assert sorted(p.name for p in owner.iterdir()) == ["job-live", "supervisor"]
