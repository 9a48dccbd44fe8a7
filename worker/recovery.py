"""What a manager finds at its start: the jobs that earlier managers recorded in the store."""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Sequence
from pathlib import Path

from worker.inotify import LogWatcher
from worker.job_table import EndedJob
from worker.output_log import OutputLog
from worker.status import JobState, StopReason
from worker.store import JobRecord, JobStore

LOST = (
    "jobworkerd restarted and nothing held the job any more: it died with its spawner, so "
    "its exit status is unknown"
)


async def recover(
    records: Sequence[JobRecord], store: JobStore, logs_dir: Path, watcher: LogWatcher
) -> list[EndedJob]:
    """Returns the recorded jobs, each ended, in start order.

    A job recorded as running ran under a manager that is gone: with nothing left to hold
    it, it died with its spawner. It is recorded FAILED (worker lost) before it is
    returned, so that a later restart finds the same answer.

    Raises:
        StoreError: The store could not record a lost job.
    """
    jobs = []
    for record in sorted(records, key=lambda r: r.status.started_at):
        status = record.status
        if status.state is JobState.RUNNING:
            status = dataclasses.replace(
                status,
                state=JobState.FAILED,
                stop_reason=StopReason.WORKER_LOST,
                ended_at=datetime.datetime.now(datetime.UTC),
                error=LOST,
            )
            await store.put(dataclasses.replace(record, status=status))
        jobs.append(EndedJob(status, OutputLog.finished_at(logs_dir / status.job_id, watcher)))
    return jobs
