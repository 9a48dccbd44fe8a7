"""Starting one job: its log, its spawn into a placement, and undoing both if the start fails."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from worker.config import ManagerConfig
from worker.errors import SpawnerLost, StartFailed
from worker.inotify import LogWatcher
from worker.job import Job
from worker.limits import Limits
from worker.output_log import OutputLog
from worker.spare import Placement, undo_cgroup
from worker.spawn_protocol import SpawnRequest
from worker.spawner import Spawner
from worker.spec import JobSpec
from worker.tasks import TaskSet


def hostname(job_id: str) -> str:
    """The hostname a job sees (its own UTS namespace): ``job-`` and its id."""
    return f"job-{job_id}"


@dataclasses.dataclass(frozen=True, slots=True)
class Launcher:
    """What every start of one manager shares.

    Attributes:
        logs_dir: The private directory of the job logs.
        watcher: The manager's inotify watcher, for the logs' followers.
        uid: The user id jobs run as.
        gid: The group id jobs run as.
        grace: The grace period of a stop at a job's deadline (limit ``timeout_seconds``).
        tasks: The manager's task set, which owns each job's supervisor and stop sequence.
    """

    logs_dir: Path
    watcher: LogWatcher
    uid: int
    gid: int
    grace: float
    tasks: TaskSet

    @classmethod
    def prepare(cls, config: ManagerConfig, watcher: LogWatcher, tasks: TaskSet) -> Launcher:
        """Makes the data and logs directories private (0700) and returns the launcher.

        Raises:
            OSError: A directory cannot be made or its mode set.
        """
        logs_dir = config.data_dir / "logs"
        for directory in (config.data_dir, logs_dir):
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            # mkdir's mode is filtered by the umask, and an existing directory keeps its
            # mode: tighten it so that jobs (another uid) can never read any log.
            os.chmod(directory, 0o700)
        return cls(logs_dir, watcher, config.job_uid, config.job_gid, config.default_grace, tasks)

    async def launch(
        self, placement: Placement, spec: JobSpec, limits: Limits, spawner: Spawner
    ) -> Job:
        """Creates the job's log and spawns its program into ``placement``.

        Args:
            placement: The job's id and cgroup, with a prepared sandbox or not; from now on
                undone here if the start fails.
            spec: What to run.
            limits: The effective limits, already written into the placement's cgroup.
            spawner: The spawner that runs the job.

        Returns:
            The running job, supervised by a task of ``tasks``.

        Raises:
            StartFailed: The program could not be started, or the spawner died meanwhile.

        On any failure everything is undone before raising: no process, cgroup or log
        remains, so a start failure is never a job that "exited 127".
        """
        try:
            log = OutputLog.create(self.logs_dir / placement.job_id, self.watcher)
        except BaseException as err:
            await undo_cgroup(placement.cgroup, err)
            raise
        request = SpawnRequest(
            argv=spec.argv,
            env=dict(spec.env),
            cwd=spec.cwd,
            uid=self.uid,
            gid=self.gid,
            cgroup_procs=placement.cgroup.procs_files,
            hostname=hostname(placement.job_id),
        )
        try:
            writer = log.open_writer()
            try:
                pid = await spawner.spawn(request, writer, placement.prepared)
            finally:
                # The job holds its own copies as fds 1 and 2 now; ours must go, so that
                # only the job's processes keep the log open for writing.
                os.close(writer)
        except BaseException as err:
            await undo_cgroup(placement.cgroup, err)
            log.delete()
            if isinstance(err, SpawnerLost):
                raise StartFailed("spawn", f"the spawner process died: {err}") from err
            raise
        job = Job(
            job_id=placement.job_id,
            spec=spec,
            limits=limits,
            cgroup=placement.cgroup,
            log=log,
            spawner=spawner,
            pid=pid,
            tasks=self.tasks,
        )
        self.tasks.start(job.supervise(), f"jobworker-supervise-{job.job_id}")
        if limits.timeout_seconds is not None:
            job.set_deadline(limits.timeout_seconds, self.grace)
        return job
