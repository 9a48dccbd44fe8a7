"""Test helpers: run workloads inside job cgroups without the spawner.

Only tests import this module. A workload joins the job's cgroups from a shell before it
execs, just as the spawner's child writes "0" into each cgroup.procs before exec.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Sequence
from pathlib import Path

from worker.cgroup import teardown
from worker.cgroup.base import CgroupDriver, JobCgroup
from worker.limits import Limits

# Joins every cgroup.procs named in $JOIN ("0" means the writer), then execs "$@".
# TODO: find why, only when Bazel runs the cgroup tests, opening the cgroup.procs of a
# just-made v1 cpuacct directory sometimes fails with ENOENT while the directory exists
# (listed before and after); retrying here keeps these tests about what they assert. The
# spawner's join has not shown it. Next step: trace the failing open in the kernel (a kernfs
# lookup of a node not yet activated is the suspect).
JOIN_SCRIPT = (
    'for f in $JOIN; do n=0; until echo 0 2>/dev/null > "$f"; do n=$((n + 1)); '
    '[ "$n" -lt 50 ] || exit 99; sleep 0.01; done; done; exec "$@"'
)


async def start_in(
    cg: JobCgroup, argv: Sequence[str], *, stdout: int | None = None, stderr: int | None = None
) -> asyncio.subprocess.Process:
    """Starts ``argv`` inside the job's cgroups; no instruction of it runs outside them."""
    env = {"PATH": "/usr/bin:/bin", "JOIN": " ".join(cg.procs_files)}
    return await asyncio.create_subprocess_exec(
        "/bin/sh", "-c", JOIN_SCRIPT, "sh", *argv, env=env, stdout=stdout, stderr=stderr
    )


async def wait_exit(proc: asyncio.subprocess.Process, seconds: float = 60) -> int:
    """Waits for ``proc`` to exit and returns its return code (-N for signal N)."""
    async with asyncio.timeout(seconds):
        return await proc.wait()


def listed_pids(cg: JobCgroup) -> set[int]:
    """Returns the pids the job's cgroup.procs files list."""
    return {int(p) for f in cg.procs_files for p in Path(f).read_text().split()}


def exists(cg: JobCgroup) -> bool:
    """Returns True while any directory of the job's cgroups exists."""
    return any(Path(f).parent.exists() for f in cg.procs_files)


class JobFactory:
    """Creates job cgroups for a test and kills and removes whatever the test left."""

    def __init__(self, driver: CgroupDriver) -> None:
        """Creates jobs with ``driver``."""
        self.driver = driver
        self._made: list[JobCgroup] = []

    def create(self, limits: Limits | None = None) -> JobCgroup:
        """Creates a job cgroup with a random id."""
        cg = self.driver.create(secrets.token_urlsafe(9), limits or Limits())
        self._made.append(cg)
        return cg

    def cleanup(self) -> None:
        """Kills and removes every job cgroup still there; call from a fixture's teardown."""
        left = [cg for cg in self._made if exists(cg)]
        if left:
            asyncio.run(self._remove(left))

    @staticmethod
    async def _remove(cgs: Sequence[JobCgroup]) -> None:
        for cg in cgs:
            await teardown.kill_until_empty(cg)
            await cg.remove()
