"""Starting jobs: a spawner and a placement for each, its log, its spawn, and its record."""

from __future__ import annotations

import contextlib
import dataclasses
import os
from pathlib import Path

from worker.cgroup.base import CgroupDriver
from worker.config import ManagerConfig
from worker.errors import CgroupError, SpawnerLost, StartFailed
from worker.inotify import LogWatcher
from worker.job import Job
from worker.limits import Limits
from worker.output_log import OutputLog
from worker.spare import Placement, SpareKeeper, undo_cgroup
from worker.spawn_protocol import SpawnRequest
from worker.spawner import Spawner
from worker.spawner_slot import SpawnerSlot
from worker.spec import JobSpec
from worker.status import JobStatus, StopReason
from worker.store import JobRecord, JobStore, StoreError
from worker.tasks import TaskSet


def logs_dir(config: ManagerConfig) -> Path:
    """Where the manager keeps the output log of each job, named by the job's id."""
    return config.data_dir / "logs"


def make_data_dirs(config: ManagerConfig) -> None:
    """Makes the data and logs directories, private (0700), unless they exist.

    Raises:
        OSError: A directory cannot be made or its mode set.
    """
    for directory in (config.data_dir, logs_dir(config)):
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        # mkdir's mode is filtered by the umask, and an existing directory keeps its mode:
        # tighten it so that jobs (another uid) can never read any log.
        os.chmod(directory, 0o700)


def hostname(job_id: str) -> str:
    """The hostname a job sees (its own UTS namespace): ``job-`` and its id."""
    return f"job-{job_id}"


class Launcher:
    """The start path of one manager: its spawner, its spare, and each job's log and spawn.

    Use from the manager's event loop; ``open`` before the first start, ``aclose`` at the end.
    """

    def __init__(
        self, config: ManagerConfig, watcher: LogWatcher, tasks: TaskSet, store: JobStore,
        driver: CgroupDriver,
    ) -> None:  # fmt: skip
        """Starts nothing yet.

        Args:
            config: The manager's configuration; its data directory exists.
            watcher: The manager's inotify watcher, for the logs' followers.
            tasks: The manager's task set, which owns each job's supervisor and stop.
            store: Where each job's record is kept, from its start to its end.
            driver: Makes the jobs' cgroups.
        """
        self._config = config
        self._watcher = watcher
        self._tasks = tasks
        self._store = store
        # Jobs never see the manager's data: other jobs' logs live there.
        world = config.world
        world = dataclasses.replace(world, hidden=(str(config.data_dir), *world.hidden))
        self._spawners = SpawnerSlot(config.init_path, world)
        self._spares = SpareKeeper(driver)

    async def open(self) -> None:
        """Starts the spawner and makes the first spare.

        Raises:
            SpawnerLost: The spawner could not be started.
        """
        self._spares.replenish(await self._spawners.live())

    async def launch(self, spec: JobSpec, limits: Limits) -> Job:
        """Places, spawns and records one job; see ``_spawn``.

        Raises:
            StartFailed: As ``_spawn``.
            CgroupError: The job's cgroup could not be made or a limit was refused.
            ManagerClosed: The launcher is closed.
        """
        spawner = await self._spawners.live()
        placement = await self._spares.place(spawner, limits)
        job = await self._spawn(placement, spec, limits, spawner)
        self._spares.replenish_soon(spawner)
        return job

    async def aclose(self) -> None:
        """Closes the spawner, which SIGKILLs the jobs it still runs, and the spare."""
        await self._spawners.aclose()
        # Shutdown goes on: a cgroup left behind is removed by the next manager's sweep.
        with contextlib.suppress(CgroupError):
            await self._spares.aclose()

    async def _spawn(
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
            The running job, supervised by a task of ``tasks`` and recorded in the store.

        Raises:
            StartFailed: The program could not be started, or the spawner died meanwhile,
                or the store could not record the start (the job is then stopped at once).

        On any failure everything is undone before raising: no process, cgroup or log
        remains, so a start failure is never a job that "exited 127".
        """
        try:
            log = OutputLog.create(logs_dir(self._config) / placement.job_id, self._watcher)
        except BaseException as err:
            await undo_cgroup(placement.cgroup, err)
            raise
        request = SpawnRequest(
            argv=spec.argv,
            env=dict(spec.env),
            cwd=spec.cwd,
            uid=self._config.job_uid,
            gid=self._config.job_gid,
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
        env_names = tuple(spec.env)  # Never the values: they may be secrets.

        async def record(status: JobStatus) -> None:
            await self._store.put(JobRecord(status, env_names, spec.cwd))

        job = Job(
            job_id=placement.job_id,
            spec=spec,
            limits=limits,
            cgroup=placement.cgroup,
            log=log,
            spawner=spawner,
            pid=pid,
            tasks=self._tasks,
            record=record,
        )
        self._tasks.start(job.supervise(), f"jobworker-supervise-{job.job_id}")
        try:
            # Durable before the caller can tell anyone the job started.
            await job.record()
        except StoreError as err:
            job.begin_stop(0.0, StopReason.REQUESTED)
            raise StartFailed("store", f"the job store did not record the start: {err}") from err
        if limits.timeout_seconds is not None:
            job.set_deadline(limits.timeout_seconds, self._config.default_grace)
        return job
