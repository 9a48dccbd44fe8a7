"""The manager's jobs by id, in start order: running ones, and ended ones from the store."""

from __future__ import annotations

import asyncio

from worker.errors import JobNotFound, JobNotRunning
from worker.ids import is_job_id
from worker.job import Job
from worker.output_log import OutputLog
from worker.status import JobStatus, StopReason


class EndedJob:
    """A job that ended before this manager started, as the job store recorded it.

    It answers like an ended Job: its status is final, a stop changes nothing, a signal is
    refused, and its output is its finished log.
    """

    def __init__(self, status: JobStatus, log: OutputLog) -> None:
        """Wraps a final status and the finished log of the same job."""
        self._status = status
        self.log = log
        self.exited = asyncio.Event()
        self.exited.set()
        self.finished = asyncio.Event()
        self.finished.set()

    @property
    def job_id(self) -> str:
        """The job's id."""
        return self._status.job_id

    @property
    def owner(self) -> str:
        """The job's owner."""
        return self._status.owner

    def status(self) -> JobStatus:
        """Returns the final status as recorded."""
        return self._status

    def begin_stop(self, grace: float, reason: StopReason) -> None:
        """Does nothing: the job has ended (as Job.begin_stop for an ended job)."""

    async def signal(self, sig: int, *, everyone: bool = False) -> None:
        """Refuses: the job has ended.

        Raises:
            JobNotRunning: Always.
        """
        raise JobNotRunning(self.job_id)


class JobTable:
    """Every job a manager knows, running or ended, for the manager's life.

    TODO: evict ended jobs and delete their logs after a retention period; today memory and
    disk grow with the number of jobs ever run (design §11).
    """

    def __init__(self) -> None:
        self._jobs: dict[str, Job | EndedJob] = {}  # Insertion order is start order.

    def add(self, job: Job | EndedJob) -> None:
        """Records a job that has started, or one loaded from the store."""
        self._jobs[job.job_id] = job

    def get(self, job_id: str) -> Job | EndedJob:
        """Returns the job with this id.

        Raises:
            JobNotFound: No such job, or ``job_id`` is not shaped like an id (then no table
                lookup is made).
        """
        job = self._jobs.get(job_id) if is_job_id(job_id) else None
        if job is None:
            raise JobNotFound(job_id)
        return job

    def owned_by(self, owner: str | None) -> list[Job | EndedJob]:
        """Returns the jobs of ``owner``, or every job for None, in start order."""
        return [job for job in self._jobs.values() if owner is None or job.owner == owner]

    def running(self) -> list[Job]:
        """Returns the jobs this manager runs (not those loaded from the store)."""
        return [job for job in self._jobs.values() if isinstance(job, Job)]
