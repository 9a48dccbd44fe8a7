"""Which job cgroups belong to a live driver, so that a sweep only takes real leftovers.

Every driver on a host shares one ``jobworker`` parent per cgroup: a second daemon, a new
daemon starting while the old one drains, and parallel test processes all see the same
``job-*`` directories. A sweep that took every one of them would kill live jobs of another
process. So a driver holds an exclusive flock(2) on each of its job directories for the
job's lifetime; the kernel drops the lock when the owner exits or dies, which is exactly
what marks a leftover. flock works on cgroupfs directories like on any file (flock(2)),
and an open fd does not keep rmdir(2) from removing the cgroup.

Creating a job takes the parent's lock shared while it makes and locks the job directory,
and a sweep takes it exclusively while it lists and test-locks, so a sweep never sees a
job directory in the instant between its mkdir and its lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from worker.errors import CgroupError


def _open_dir(path: Path) -> int:
    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as err:
        raise CgroupError(f"cannot open cgroup {path} to lock it: {err.strerror}") from err


class JobLock:
    """An exclusive flock on a job's cgroup directory, held while the job is ours."""

    def __init__(self, fd: int) -> None:
        """Wraps a directory fd that already holds the lock."""
        self._fd = fd

    @classmethod
    def try_acquire(cls, path: Path) -> JobLock | None:
        """Locks ``path``; returns None when another open file holds the lock.

        Raises:
            CgroupError: The directory cannot be opened or flock failed otherwise.
        """
        fd = _open_dir(path)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except OSError as err:
            os.close(fd)
            raise CgroupError(f"cannot lock cgroup {path}: {err.strerror}") from err
        return cls(fd)

    def release(self) -> None:
        """Drops the lock; calling it again does nothing."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


@contextlib.contextmanager
def parent_locked(parent: Path, *, exclusive: bool) -> Iterator[None]:
    """Holds the parent's flock: shared to create a job, exclusive to scan for leftovers.

    Both holders keep it for a few syscalls only, so the blocking flock is brief.
    """
    fd = _open_dir(parent)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        except OSError as err:
            raise CgroupError(f"cannot lock cgroup {parent}: {err.strerror}") from err
        yield
    finally:
        os.close(fd)
