"""An in-memory JobBackend for unit tests of the API: no processes, scripted output.

It follows worker/manager.py's contract (defaults and caps on limits, JobNotFound, a
final status from stop, readers that follow until the job ends, ManagerClosed after
aclose) so the servicer and the guard can be tested without root.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import signal
from collections.abc import AsyncIterator

from worker.errors import JobNotFound, JobNotRunning, ManagerClosed
from worker.ids import new_job_id
from worker.limits import Limits
from worker.output_log import CHUNK_SIZE
from worker.spec import JobSpec
from worker.status import JobState, JobStatus, StopReason, Usage


class _FakeJob:
    __slots__ = ("changed", "output", "status")

    def __init__(self, status: JobStatus) -> None:
        self.status = status
        self.output = bytearray()
        self.changed = asyncio.Condition()


class FakeJobManager:
    """Jobs that run until a test ends them; output is whatever the test appends."""

    def __init__(
        self, default_limits: Limits | None = None, max_limits: Limits | None = None
    ) -> None:
        self._default_limits = default_limits or Limits()
        self._max_limits = max_limits or Limits()
        self._jobs: dict[str, _FakeJob] = {}
        self._closed = False
        self.open_readers = 0
        self.started: list[JobSpec] = []
        self.signals: list[tuple[str, int, bool]] = []

    def _job(self, job_id: str) -> _FakeJob:
        job = self._jobs.get(job_id)
        if job is None:
            raise JobNotFound(job_id)
        return job

    async def start(self, spec: JobSpec) -> JobStatus:
        """Records the spec and returns a RUNNING job."""
        if self._closed:
            raise ManagerClosed("the manager is closed")
        spec.limits.check_within(self._max_limits)
        status = JobStatus(
            job_id=new_job_id(),
            owner=spec.owner,
            argv=spec.argv,
            state=JobState.RUNNING,
            exit_code=None,
            signal=None,
            oom_killed=False,
            core_dumped=False,
            stop_reason=None,
            started_at=datetime.datetime.now(datetime.UTC),
            ended_at=None,
            limits=spec.limits.merged_over(self._default_limits),
            usage=Usage(),
        )
        self._jobs[status.job_id] = _FakeJob(status)
        self.started.append(spec)
        return status

    async def append(self, job_id: str, data: bytes) -> None:
        """Appends output to a running job, as if the job wrote it."""
        job = self._job(job_id)
        async with job.changed:
            job.output += data
            job.changed.notify_all()

    async def finish(
        self, job_id: str, *, exit_code: int | None = 0, stopped: bool = False
    ) -> None:
        """Ends a job: exit code, or SIGTERM when ``exit_code`` is None."""
        job = self._job(job_id)
        if job.status.state is not JobState.RUNNING:
            return
        async with job.changed:
            job.status = dataclasses.replace(
                job.status,
                state=JobState.STOPPED if stopped else JobState.EXITED,
                exit_code=exit_code,
                signal=None if exit_code is not None else signal.SIGTERM,
                stop_reason=StopReason.REQUESTED if stopped else None,
                ended_at=datetime.datetime.now(datetime.UTC),
            )
            job.changed.notify_all()

    async def signal(self, job_id: str, sig: int, *, everyone: bool = False) -> None:
        """Records the signal; a job that has ended refuses it."""
        job = self._job(job_id)
        if job.status.state is not JobState.RUNNING:
            raise JobNotRunning(job_id)
        self.signals.append((job_id, sig, everyone))

    async def stop(self, job_id: str, grace: float | None = None) -> JobStatus:
        """Ends a running job as if SIGTERM killed it; returns the final status."""
        await self.finish(job_id, exit_code=None, stopped=True)
        return self._job(job_id).status

    async def wait(self, job_id: str) -> JobStatus:
        """Returns once the job has ended."""
        job = self._job(job_id)
        async with job.changed:
            await job.changed.wait_for(lambda: job.status.state is not JobState.RUNNING)
        return job.status

    def owner(self, job_id: str) -> str:
        """Returns the job's owner."""
        return self._job(job_id).status.owner

    async def status(self, job_id: str) -> JobStatus:
        """Returns the job's status."""
        return self._job(job_id).status

    async def list(self, owner: str | None = None) -> list[JobStatus]:
        """Returns the jobs of ``owner``, or all."""
        return [j.status for j in self._jobs.values() if owner in (None, j.status.owner)]

    async def output(
        self, job_id: str, offset: int = 0, follow: bool = True
    ) -> AsyncIterator[bytes]:
        """Yields output from ``offset``; with follow, until the job has ended."""
        job = self._job(job_id)
        self.open_readers += 1
        try:
            position = offset
            while True:
                async with job.changed:

                    def ready(at: int = position) -> bool:
                        return (
                            len(job.output) > at
                            or not follow
                            or job.status.state is not JobState.RUNNING
                        )

                    await job.changed.wait_for(ready)
                    data = bytes(job.output[position : position + CHUNK_SIZE])
                if data:
                    position += len(data)
                    yield data
                elif not follow or job.status.state is not JobState.RUNNING:
                    return
        finally:
            self.open_readers -= 1

    async def aclose(self) -> None:
        """Stops every job and refuses new ones."""
        self._closed = True
        for job_id in list(self._jobs):
            await self.finish(job_id, exit_code=None, stopped=True)
