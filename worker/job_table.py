"""The manager's jobs by id, in start order."""

from __future__ import annotations

from worker.errors import JobNotFound
from worker.ids import is_job_id
from worker.job import Job


class JobTable:
    """Every job a manager started, running or ended, for the manager's life.

    TODO: evict ended jobs and delete their logs after a retention period, and persist the
    records so that status survives a restart; today memory and disk grow with the number
    of jobs ever run (design §11).
    """

    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}  # Insertion order is start order.

    def add(self, job: Job) -> None:
        """Records a job that has started."""
        self._jobs[job.job_id] = job

    def get(self, job_id: str) -> Job:
        """Returns the job with this id.

        Raises:
            JobNotFound: No such job, or ``job_id`` is not shaped like an id (then no table
                lookup is made).
        """
        job = self._jobs.get(job_id) if is_job_id(job_id) else None
        if job is None:
            raise JobNotFound(job_id)
        return job

    def owned_by(self, owner: str | None) -> list[Job]:
        """Returns the jobs of ``owner``, or every job for None, in start order."""
        return [job for job in self._jobs.values() if owner is None or job.owner == owner]
