"""Snapshots of what a test may leak: threads, fds, child processes and job cgroups."""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import threading
import time
from pathlib import Path

from worker.cgroup.base import JOB_DIR_PREFIX, PARENT_DIR_NAME
from worker.cgroup.ownership import parent_locked
from worker.errors import CgroupError

_SETTLE_SECONDS = 3.0


def _fds() -> frozenset[tuple[int, str]]:
    found = set()
    for name in os.listdir("/proc/self/fd"):
        try:
            found.add((int(name), os.readlink(f"/proc/self/fd/{name}")))
        except FileNotFoundError:  # The fd of the listdir itself, closed by now.
            continue
    return frozenset(found)


def _children() -> frozenset[int]:
    pids: set[int] = set()
    for task in Path("/proc/self/task").iterdir():
        try:
            pids.update(int(p) for p in (task / "children").read_text().split())
        except FileNotFoundError:  # A thread that exited during the scan.
            continue
    return frozenset(pids)


def _cgroup_mounts() -> list[Path]:
    mounts = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            if right.split()[0] in ("cgroup", "cgroup2"):
                mounts.append(Path(left.split()[4]))
    return mounts


def _locked(path: str) -> bool:
    """Whether a live driver holds the job directory's lock (worker/cgroup/ownership.py).

    Other processes on the host (a daemon, a parallel test run) own job cgroups that are not
    this test's leaks, and hold a flock on one directory of each job. flock conflicts between
    open files of one process too, so a job that this process forgot and still locks is
    caught by the fd check instead (its lock's fd is new).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def _unowned(paths: frozenset[str]) -> list[str]:
    """Returns the job cgroups in ``paths`` whose job no live driver owns, and that exist.

    Each probe holds the parent's lock exclusively, as a sweep does: a probe between another
    driver's mkdir and its lock would make that driver's create fail.
    """
    owned = set()
    for path in paths:
        parent = Path(path).parent
        # CgroupError: the parent is gone, and the job with it.
        with contextlib.suppress(CgroupError), parent_locked(parent, exclusive=True):
            if _locked(path):
                owned.add(os.path.basename(path))
    return sorted(p for p in paths if os.path.basename(p) not in owned and os.path.isdir(p))


def _job_cgroups() -> frozenset[str]:
    found: set[str] = set()
    for mount in _cgroup_mounts():
        # A test that cannot write a hierarchy cannot leak a cgroup in it, and the job cgroups
        # there belong to someone else: Bazel's linux-sandbox mounts /sys/fs/cgroup read-only
        # (access(2): EROFS), while kernel tests tagged "local" run on the writable host one.
        if not os.access(mount, os.W_OK):
            continue
        for dirpath, dirnames, _ in os.walk(mount):
            if os.path.basename(dirpath) == PARENT_DIR_NAME:
                found.update(f"{dirpath}/{d}" for d in dirnames if d.startswith(JOB_DIR_PREFIX))
    return frozenset(found)


@dataclasses.dataclass(frozen=True, slots=True)
class Snapshot:
    """What the process holds at one moment."""

    threads: frozenset[str]
    fds: frozenset[tuple[int, str]]
    children: frozenset[int]
    cgroups: frozenset[str]

    @classmethod
    def take(cls) -> Snapshot:
        """Returns the current snapshot."""
        return cls(
            threads=frozenset(f"{t.name}#{t.ident}" for t in threading.enumerate()),
            fds=_fds(),
            children=_children(),
            cgroups=_job_cgroups(),
        )

    def leaked_since(self, before: Snapshot) -> dict[str, list[str]]:
        """Returns what exists now and did not before, by kind; empty when nothing leaked."""
        leaks = {
            "threads": sorted(self.threads - before.threads),
            "fds": sorted(f"{fd} -> {target}" for fd, target in self.fds - before.fds),
            "child processes": sorted(str(p) for p in self.children - before.children),
            "job cgroups": _unowned(self.cgroups - before.cgroups),
        }
        return {kind: items for kind, items in leaks.items() if items}


def wait_for_no_leaks(before: Snapshot) -> dict[str, list[str]]:
    """Polls until nothing has leaked since ``before``, or the settle time passes.

    Threads of a closed executor and reaped children can take a moment to disappear, so a
    leak is only reported if it is still there after a few seconds.
    """
    deadline = time.monotonic() + _SETTLE_SECONDS
    while True:
        leaks = Snapshot.take().leaked_since(before)
        if not leaks or time.monotonic() > deadline:
            return leaks
        time.sleep(0.05)
