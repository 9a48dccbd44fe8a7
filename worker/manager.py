"""JobManager: starts, stops, reports on and streams the output of jobs.

The manager glues together the cgroup driver (limits, kill-all, usage), the spawner (a
single-threaded fork server that runs each job as PID 1 of new namespaces) and the output
log (a file per job that the job writes directly). It owns every task it creates: one
supervisor per job, shared stop sequences and in-flight starts, all awaited by aclose().
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
from collections.abc import AsyncGenerator, Coroutine
from types import TracebackType
from typing import Any, Self

from worker.cgroup import open_driver
from worker.cgroup.base import CgroupDriver
from worker.config import ManagerConfig
from worker.errors import (
    CgroupError,
    InvalidSpec,
    JobNotFound,
    ManagerClosed,
)
from worker.ids import is_job_id, new_job_id
from worker.job import Job
from worker.output_log import LogWatcher
from worker.spare import SpareKeeper
from worker.spawner import Spawner
from worker.spec import JobSpec, Limits
from worker.status import JobStatus
from worker.usage import read_usage

# ManagerConfig lives in worker/config.py; callers import both from here.
__all__ = ["JobManager", "ManagerConfig"]


class JobManager:
    """Runs jobs and keeps their status and output until the manager is closed.

    Use it as ``async with JobManager(config) as manager:``. Every method must be called
    from the event loop that entered the manager.

    Ended jobs stay in the table, with their logs, for the life of the manager.
    """

    # TODO: evict ended jobs and delete their logs after a retention period (and persist
    # metadata so that status survives a restart); today they live as long as the manager,
    # so memory and disk grow with the number of jobs ever run.

    def __init__(self, config: ManagerConfig) -> None:
        self._config = config
        self._logs_dir = config.data_dir / "logs"
        self._jobs: dict[str, Job] = {}
        # Every task the manager creates: supervisors, stop sequences, in-flight starts.
        self._tasks: set[asyncio.Task[Any]] = set()
        self._starting: set[asyncio.Task[tuple[Job, JobStatus]]] = set()
        self._driver: CgroupDriver | None = None
        self._spares: SpareKeeper | None = None
        self._watcher: LogWatcher | None = None
        self._spawner: Spawner | None = None
        # Guards replacing a dead spawner, which spans the await of starting a new one.
        self._spawner_lock = asyncio.Lock()
        self._closing = False
        self._close_task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        """Prepares the data directory, the cgroups, the log watcher and the spawner.

        Raises:
            CgroupError: A required cgroup controller is missing or the sweep failed.
            OSError: The data directory cannot be created.
        """
        if self._closing or self._watcher is not None:
            raise ManagerClosed("a JobManager can be entered only once")
        for directory in (self._config.data_dir, self._logs_dir):
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            # mkdir's mode is filtered by the umask, and an existing directory keeps its
            # mode: tighten it so that jobs (another uid) can never read any log.
            os.chmod(directory, 0o700)
        try:
            # The driver first: on cgroup v2 it moves this process into a leaf cgroup,
            # which the spawner must inherit.
            self._driver = open_driver(
                root=self._config.cgroup_root, io_paths=self._config.io_paths
            )
            await self._driver.sweep()
            self._watcher = LogWatcher.open()
            self._spawner = await Spawner.start()
            self._spares = SpareKeeper(self._driver)
            self._spares.replenish(self._spawner)
        except BaseException:
            await self.aclose()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Closes the manager; see aclose()."""
        await self.aclose()

    async def start(self, spec: JobSpec) -> JobStatus:
        """Starts a job and returns its status once its program runs.

        The start runs in a task the manager owns. If the caller is cancelled, the start
        still completes or undoes itself, and a job that did start is then stopped at once,
        so that nothing runs that its caller never heard of.

        Args:
            spec: What to run; its limits are merged over the configured defaults.

        Returns:
            The status of the running job.

        Raises:
            InvalidSpec: A limit exceeds the configured maximum.
            StartFailed: The program could not be started (for example a missing binary,
                one that is not executable, or a missing working directory); nothing of it
                is left behind.
            CgroupError: The job's cgroup could not be created or a limit not applied.
            ManagerClosed: The manager is closing or was never entered.
        """
        self._check_open()
        limits = spec.limits.merged_over(self._config.default_limits)
        limits.check_within(self._config.max_limits)
        task = asyncio.create_task(self._start(spec, limits), name="jobworker-start")
        self._starting.add(task)
        task.add_done_callback(self._starting.discard)
        try:
            _, status = await asyncio.shield(task)
        except asyncio.CancelledError:
            task.add_done_callback(self._abandon_start)
            raise
        return status

    async def stop(self, job_id: str, grace: float | None = None) -> JobStatus:
        """Stops a job: SIGTERM to all its processes, then SIGKILL after ``grace`` seconds.

        Stopping a job whose program has already exited is a no-op that returns its final
        status (state EXITED, stop_requested False). Concurrent stops of one job share one
        stop sequence; a shorter grace moves the SIGKILL earlier.

        Args:
            job_id: The job to stop.
            grace: Seconds between SIGTERM and SIGKILL; the configured default when None.

        Returns:
            The final status, once every process is gone and the output is complete.

        Raises:
            JobNotFound: No such job.
            InvalidSpec: ``grace`` is negative or not finite.
            CgroupError: The job could not be killed.
        """
        if grace is None:
            grace = self._config.default_grace
        if not math.isfinite(grace) or grace < 0:
            raise InvalidSpec("grace", f"must be a finite number of seconds >= 0, got {grace}")
        job = self._lookup(job_id)
        if job.request_stop(grace):
            job.stop_task = self._own(job.stop(grace), f"jobworker-stop-{job_id}")
        if job.stop_task is not None and not job.finished.is_set():
            await asyncio.shield(job.stop_task)
        await job.finished.wait()
        return job.status()

    async def wait(self, job_id: str) -> JobStatus:
        """Returns the final status once the job has ended and its output is complete.

        Raises:
            JobNotFound: No such job.
        """
        job = self._lookup(job_id)
        await job.finished.wait()
        return job.status()

    async def status(self, job_id: str) -> JobStatus:
        """Returns the current status of a job.

        Raises:
            JobNotFound: No such job.
            CgroupError: The usage of a running job could not be read.
        """
        job = self._lookup(job_id)
        await read_usage([job])
        return job.status()

    async def list(self, owner: str | None = None) -> list[JobStatus]:
        """Returns the status of every job, or of ``owner``'s jobs, in start order.

        Raises:
            CgroupError: The usage of a running job could not be read.
        """
        jobs = [job for job in self._jobs.values() if owner is None or job.owner == owner]
        await read_usage(jobs)
        return [job.status() for job in jobs]

    async def output(
        self, job_id: str, offset: int = 0, follow: bool = True
    ) -> AsyncGenerator[bytes, None]:
        """Yields a job's combined stdout and stderr in chunks of at most 64 KiB.

        Any number of readers may read concurrently, each from its own offset. A follower
        waits for new bytes (inotify, no polling) and ends once the job is final and every
        byte was delivered; a non-follower ends at the current end of the log.

        Args:
            job_id: The job whose output to read.
            offset: The first byte to return; 0 is the first byte the job wrote.
            follow: Whether to wait for more output until the job ends.

        Raises:
            JobNotFound: No such job (raised on the first iteration).
            InvalidSpec: ``offset`` is negative.
            ManagerClosed: The manager is closed, and with it every log.
        """
        job = self._lookup(job_id)
        if offset < 0:
            raise InvalidSpec("offset", f"must be >= 0, got {offset}")
        if self._close_task is not None and self._close_task.done():
            raise ManagerClosed("the job manager is closed")
        # aclosing() closes the log reader (and its fd) as soon as this generator is closed
        # or cancelled, instead of whenever the garbage collector finalizes it.
        async with contextlib.aclosing(job.log.read(offset, follow)) as chunks:
            async for chunk in chunks:
                yield chunk

    async def aclose(self) -> None:
        """Stops every job (with the default grace), waits for them and releases everything.

        New starts fail with ManagerClosed from the first call on. Repeated and concurrent
        calls are safe: they all wait for the same shutdown. Statuses stay readable after.
        """
        self._closing = True
        if self._close_task is None:
            self._close_task = asyncio.create_task(self._close(), name="jobworker-close")
        await asyncio.shield(self._close_task)

    async def _close(self) -> None:
        # Starts in flight finish first, so that every job that will ever exist is in the
        # table before it is stopped.
        await asyncio.gather(*self._starting, return_exceptions=True)
        await asyncio.gather(
            *(self.stop(job.job_id) for job in list(self._jobs.values())),
            return_exceptions=True,
        )
        async with self._spawner_lock:
            spawner, self._spawner = self._spawner, None
        if spawner is not None:
            # A job that could not be stopped dies with its spawner (PDEATHSIG), and its
            # supervisor then reports it FAILED.
            await spawner.aclose()
        if self._spares is not None:
            # Shutdown goes on: a cgroup left behind is removed by the next manager's sweep.
            with contextlib.suppress(CgroupError):
                await self._spares.aclose()
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for job in self._jobs.values():
            job.log.close()
        if self._watcher is not None:
            self._watcher.close()

    def _check_open(self) -> None:
        if self._closing:
            raise ManagerClosed("the job manager is shutting down")
        if self._watcher is None:
            raise ManagerClosed("the job manager was not entered with 'async with'")

    def _lookup(self, job_id: str) -> Job:
        job = self._jobs.get(job_id) if is_job_id(job_id) else None
        if job is None:
            raise JobNotFound(job_id)
        return job

    def _own(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _start(self, spec: JobSpec, limits: Limits) -> tuple[Job, JobStatus]:
        assert self._driver and self._watcher and self._spares
        spawner = await self._live_spawner()
        spare = await self._spares.take(spawner)
        job = await Job.launch(
            new_job_id() if spare is None else spare.job_id,
            spec,
            limits,
            logs_dir=self._logs_dir,
            watcher=self._watcher,
            driver=self._driver,
            spawner=spawner,
            uid=self._config.job_uid,
            gid=self._config.job_gid,
            spare=None if spare is None else spare.cgroup,
        )
        self._spares.replenish_soon(spawner)
        self._jobs[job.job_id] = job
        self._own(job.supervise(), f"jobworker-supervise-{job.job_id}")
        # Taken now: a quick job may be final by the time the caller of start() resumes.
        return job, job.status()

    async def _live_spawner(self) -> Spawner:
        async with self._spawner_lock:
            if self._spawner is not None and self._spawner.alive:
                return self._spawner
            if self._closing:
                raise ManagerClosed("the job manager is shutting down")
            dead, self._spawner = self._spawner, None
            if dead is not None:
                await dead.aclose()
            self._spawner = await Spawner.start()
            return self._spawner

    def _abandon_start(self, task: asyncio.Task[tuple[Job, JobStatus]]) -> None:
        # The caller of start() was cancelled. If the job started anyway, nobody knows its
        # id, so stop it at once; a failed start already undid itself.
        if task.cancelled() or task.exception() is not None:
            return
        job, _ = task.result()
        if job.request_stop(0.0):
            job.stop_task = self._own(job.stop(0.0), f"jobworker-stop-{job.job_id}")
