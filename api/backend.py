"""The slice of ``worker.manager.JobManager`` that the API uses, as a structural protocol.

The servicer depends on this protocol rather than on the class, so unit tests can run it
against an in-memory double (api/testing_fake_manager.py) with the same contract.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from worker.spec import JobSpec
from worker.status import JobStatus


class JobBackend(Protocol):
    """Starts, stops and observes jobs; see worker/manager.py for the full contract."""

    async def start(self, spec: JobSpec) -> JobStatus:
        """Starts a job; raises InvalidSpec, StartFailed, CgroupError or ManagerClosed."""
        ...

    async def stop(self, job_id: str, grace: float | None = None) -> JobStatus:
        """Stops a job and returns its final status; an ended job's status as is."""
        ...

    def owner(self, job_id: str) -> str:
        """Returns the owner of a job, reading nothing else; raises JobNotFound."""
        ...

    async def status(self, job_id: str) -> JobStatus:
        """Returns a job's status; raises JobNotFound."""
        ...

    async def list(self, owner: str | None = None) -> list[JobStatus]:
        """Returns the jobs of ``owner``, or every job for None."""
        ...

    async def signal(self, job_id: str, sig: int, *, everyone: bool = False) -> None:
        """Signals a job's program, or all its processes; raises JobNotRunning once ended."""
        ...

    def output(self, job_id: str, offset: int = 0, follow: bool = True) -> AsyncIterator[bytes]:
        """Yields output chunks of at most 64 KiB; raises JobNotFound on first iteration."""
        ...

    async def aclose(self) -> None:
        """Stops every job, ends every output reader, and accepts no new work."""
        ...
