"""The small protocol that the manager uses and both cgroup drivers implement."""

from __future__ import annotations

import enum
import re
from typing import Protocol

from worker.errors import CgroupError
from worker.limits import Limits
from worker.status import Usage

# Every job cgroup directory is named JOB_DIR_PREFIX + job_id, under a parent directory
# named PARENT_DIR_NAME, so that the startup sweep and the tests' leak check can find them.
PARENT_DIR_NAME = "jobworker"
JOB_DIR_PREFIX = "job-"
# Job ids become directory names, so they may not hold "/" or be "." or "..".
_JOB_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")


def job_dir_name(job_id: str) -> str:
    """Returns the cgroup directory name of a job.

    Raises:
        CgroupError: ``job_id`` is not a URL-safe token that can name a directory.
    """
    if not _JOB_ID.fullmatch(job_id):
        raise CgroupError(f"job id {job_id!r} is not a URL-safe token of 1 to 128 characters")
    return JOB_DIR_PREFIX + job_id


class CgroupMode(enum.Enum):
    """How the host mounts cgroups."""

    UNIFIED = "unified"  # cgroup v2 only.
    HYBRID = "hybrid"  # v1 controllers plus a v2 hierarchy without them (systemd "hybrid").
    LEGACY = "legacy"  # v1 only.


class JobCgroup(Protocol):
    """The cgroup (v2) or cgroups (v1, one per hierarchy) of one job."""

    @property
    def procs_files(self) -> tuple[str, ...]:
        """The cgroup.procs files that the forked child writes "0" into before exec."""
        ...

    def apply(self, limits: Limits) -> None:
        """Writes every limit that ``limits`` sets; unset ones are left as they are.

        Raises:
            CgroupError: A limit was refused or cannot be enforced on this host.
        """
        ...

    def signal_all(self, sig: int, exclude: frozenset[int] = frozenset()) -> None:
        """Sends ``sig`` to every process in the job's cgroup but the pids in ``exclude``."""
        ...

    def kill_all(self) -> None:
        """SIGKILLs every process in the cgroup, race-free (cgroup.kill or freezer)."""
        ...

    def is_empty(self) -> bool:
        """Returns True when no process is left in the cgroup."""
        ...

    def usage(self) -> Usage:
        """Reads CPU, memory and IO usage, and the OOM kill counter."""
        ...

    async def remove(self) -> None:
        """Removes the cgroup directories, retrying EBUSY with backoff off the event loop."""
        ...


class CgroupDriver(Protocol):
    """Creates job cgroups under the daemon's own cgroup, on one cgroup version."""

    @property
    def mode(self) -> CgroupMode:
        """The detected mount mode."""
        ...

    def create(self, job_id: str, limits: Limits) -> JobCgroup:
        """Creates the job's cgroup and applies every set limit.

        Raises:
            CgroupError: A directory could not be made or a limit was refused; nothing is
                left behind.
        """
        ...

    async def sweep(self) -> int:
        """Kills and removes job cgroups left by an earlier run; returns how many."""
        ...
