"""Making, removing and sweeping a job's cgroup directories, the same on both versions.

A job has one directory per distinct hierarchy: one on v2, several on v1. One of them, the
job's *owner directory*, carries the job's ownership lock (ownership.py), and its parent
carries the parent lock that orders creation against the sweep. The owner directory is made
last and removed last, so a job directory that is not locked belongs to no live driver: a
sweep may take it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

from worker.cgroup import files, teardown
from worker.cgroup.base import JOB_DIR_PREFIX, JobCgroup
from worker.cgroup.ownership import JobLock, parent_locked
from worker.errors import CgroupError


@contextlib.contextmanager
def created(owner_parent: Path, dirs: Sequence[Path]) -> Iterator[JobLock]:
    """Makes and locks a job's directories, and removes them again if the body fails.

    Args:
        owner_parent: The parent of the owner directory, whose lock is taken shared.
        dirs: The job's directories in the order to make them; the last is the owner
            directory, inside ``owner_parent``.

    Yields:
        The job's ownership lock on its owner directory.

    Raises:
        CgroupError: A directory could not be made (for example it existed), another process
            holds the lock, or the body raised CgroupError. What was made is removed and the
            lock released; a directory that existed before is not ours and is left alone.
    """
    made: list[Path] = []
    lock = None
    try:
        with parent_locked(owner_parent, exclusive=False):
            for path in dirs:
                files.make_dir(path)
                made.append(path)
            lock = JobLock.try_acquire(dirs[-1])
        if lock is None:
            raise CgroupError(f"cgroup {dirs[-1]} is locked by another process")
        yield lock
    except CgroupError:
        if lock is not None:
            lock.release()
        for path in reversed(made):
            files.try_rmdir(path)
        raise


async def remove(dirs: Sequence[Path], lock: JobLock | None) -> None:
    """Removes a job's directories, retrying EBUSY, and then releases its lock.

    Args:
        dirs: The job's directories; the last, the owner directory when there is one, is
            removed after the others.
        lock: The job's ownership lock, or None when it has none.

    Raises:
        CgroupError: A directory stayed busy or could not be removed; the lock is kept.
    """
    await teardown.remove_dirs(dirs[:-1])
    await teardown.remove_dirs(dirs[-1:])
    if lock is not None:
        lock.release()


async def sweep(
    owner_parent: Path,
    parents: Iterable[Path],
    leftover: Callable[[str, JobLock | None], JobCgroup],
) -> int:
    """Kills and removes the job cgroups that no live driver owns; returns how many.

    A job whose owner directory another process holds locked belongs to a live driver and is
    left alone. A job without an owner directory (a create that died before making it) has
    no owner.

    Args:
        owner_parent: The parent of the owner directories, whose lock is taken exclusively
            while the jobs are listed and their locks tried.
        parents: Every distinct jobworker parent, ``owner_parent`` included.
        leftover: Wraps a job's directory name and its lock (None without an owner
            directory) as a JobCgroup of the directories that exist, whose remove() releases
            the lock.

    Raises:
        CgroupError: A leftover could not be killed or removed; the rest stay for the next
            sweep.
    """
    locks: list[JobLock] = []
    jobs: list[JobCgroup] = []
    try:
        with parent_locked(owner_parent, exclusive=True):
            for name in sorted(_job_names(parents)):
                lock = None
                if (owner_parent / name).is_dir():
                    lock = JobLock.try_acquire(owner_parent / name)
                    if lock is None:
                        continue
                    locks.append(lock)
                jobs.append(leftover(name, lock))
        for job in jobs:
            await teardown.discard(job)
    finally:
        # remove() released the locks of what it removed; a failure leaves the rest for the
        # next sweep instead of holding their fds.
        for lock in locks:
            lock.release()
    return len(jobs)


def _job_names(parents: Iterable[Path]) -> set[str]:
    return {
        path.name
        for parent in parents
        for path in parent.iterdir()
        if path.is_dir() and path.name.startswith(JOB_DIR_PREFIX)
    }
