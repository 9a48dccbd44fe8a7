"""Refreshing the resource usage of running jobs off the event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from worker.cgroup.base import JobCgroup
from worker.errors import CgroupError
from worker.job import Job
from worker.status import Usage


async def read_usage(jobs: Sequence[object]) -> None:
    """Refreshes the usage of the running ``jobs``, reading their cgroups in a thread.

    cgroupfs reads are small but not free: under a burst of 50 concurrent starts on two cores
    one job's usage() took up to 70 ms, so a list of many jobs would stall the event loop.

    Raises:
        CgroupError: The usage of a job that is still running could not be read.
    """
    running = [job for job in jobs if isinstance(job, Job) and not job.exited.is_set()]
    if not running:
        return
    results = await asyncio.to_thread(_usages, [job.cgroup for job in running])
    for job, usage in zip(running, results, strict=True):
        if job.exited.is_set():
            # The job ended while its cgroup was read: supervise() has the final numbers,
            # and a failed read was the cgroup going away, not an error.
            continue
        if isinstance(usage, CgroupError):
            raise usage
        job.record_usage(usage)


def _usages(cgroups: Sequence[JobCgroup]) -> list[Usage | CgroupError]:
    results: list[Usage | CgroupError] = []
    for cgroup in cgroups:
        try:
            results.append(cgroup.usage())
        except CgroupError as err:
            results.append(err)
    return results
