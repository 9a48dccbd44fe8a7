"""JobManager: starts, stops, reports on and streams the output of jobs.

The manager glues together the cgroup driver (limits, kill-all, usage), the spawner (a
single-threaded fork server that runs each job as PID 1 of new namespaces) and the output
log (a file per job that the job writes directly). One TaskSet owns every task it or its
jobs create: one supervisor per job, shared stop sequences and in-flight starts, all
awaited by aclose().
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncGenerator
from types import TracebackType
from typing import Self

from worker.cgroup import open_driver
from worker.config import ManagerConfig
from worker.errors import InvalidSpec, ManagerClosed
from worker.inotify import LogWatcher
from worker.job import Job
from worker.job_table import EndedJob, JobTable
from worker.launch import Launcher, logs_dir, make_data_dirs
from worker.limits import Limits
from worker.recovery import recover
from worker.spec import JobSpec
from worker.status import JobStatus, StopReason
from worker.store import JobStore
from worker.tasks import TaskSet
from worker.usage import read_usage


class JobManager:
    """Runs jobs and keeps their status and output until the manager is closed.

    Use it as ``async with JobManager(config) as manager:``. Every method must be called
    from the event loop that entered the manager.

    Ended jobs stay in the table, with their logs, for the life of the manager.
    """

    def __init__(self, config: ManagerConfig) -> None:
        self._config = config
        self._jobs = JobTable()
        # Every task the manager and its jobs create: supervisors, stop sequences, starts.
        self._tasks = TaskSet()
        self._starting: set[asyncio.Task[tuple[Job, JobStatus]]] = set()
        self._watcher: LogWatcher | None = None
        self._launcher: Launcher | None = None
        self._store: JobStore | None = None
        self._closing = False
        self._close_task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        """Prepares the data directory, the store, the cgroups, the log watcher, the spawner.

        Jobs recorded in the store by earlier managers are in the table, ended.

        Raises:
            CgroupError: A required cgroup controller is missing or the sweep failed.
            OSError: The data directory cannot be created.
            StoreError: The job store cannot be opened or written.
        """
        if self._closing or self._watcher is not None:
            raise ManagerClosed("a JobManager can be entered only once")
        try:
            make_data_dirs(self._config)
            self._store, records = await JobStore.open(self._config.data_dir / "jobs.db")
            # The driver before the spawner: on cgroup v2 it moves this process into a leaf
            # cgroup, which the spawner must inherit.
            driver = open_driver(root=self._config.cgroup_root, io_paths=self._config.io_paths)
            self._watcher = LogWatcher.open()
            logs = logs_dir(self._config)
            for ended in await recover(records, self._store, logs, self._watcher):
                self._jobs.add(ended)
            await driver.sweep()
            self._launcher = Launcher(self._config, self._watcher, self._tasks, self._store, driver)
            await self._launcher.open()
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
        task = self._tasks.start(self._start(spec, limits), "jobworker-start")
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
        status (state EXITED, no stop_reason). Concurrent stops of one job share one
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
        return await self._stop(self._jobs.get(job_id), grace, StopReason.REQUESTED)

    async def _stop(self, job: Job | EndedJob, grace: float, reason: StopReason) -> JobStatus:
        stopping = job.begin_stop(grace, reason)
        if stopping is not None and not job.finished.is_set():
            await asyncio.shield(stopping)
        await job.finished.wait()
        return job.status()

    async def signal(self, job_id: str, sig: int, *, everyone: bool = False) -> None:
        """Sends ``sig`` to a job's program, or with ``everyone`` to all its processes.

        The program gets it through the job's init (jobinit), which forwards it; see
        `Job.signal`.

        Raises:
            JobNotFound: No such job.
            JobNotRunning: The job has ended.
            CgroupError: The job's cgroup could not be signalled.
        """
        await self._jobs.get(job_id).signal(sig, everyone=everyone)

    async def wait(self, job_id: str) -> JobStatus:
        """Returns the final status once the job has ended and its output is complete.

        Raises:
            JobNotFound: No such job.
        """
        job = self._jobs.get(job_id)
        await job.finished.wait()
        return job.status()

    def owner(self, job_id: str) -> str:
        """Returns the owner of a job, reading nothing else (for authorization).

        Raises:
            JobNotFound: No such job.
        """
        return self._jobs.get(job_id).owner

    async def status(self, job_id: str) -> JobStatus:
        """Returns the current status of a job.

        Raises:
            JobNotFound: No such job.
            CgroupError: The usage of a running job could not be read.
        """
        job = self._jobs.get(job_id)
        await read_usage([job])
        return job.status()

    async def list(self, owner: str | None = None) -> list[JobStatus]:
        """Returns the status of every job, or of ``owner``'s jobs, in start order.

        Raises:
            CgroupError: The usage of a running job could not be read.
        """
        jobs = self._jobs.owned_by(owner)
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
        job = self._jobs.get(job_id)
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
        grace = self._config.default_grace
        await asyncio.gather(
            *(self._stop(job, grace, StopReason.SHUTDOWN) for job in self._jobs.running()),
            return_exceptions=True,
        )
        if self._launcher is not None:
            # A job that could not be stopped dies with its spawner (PDEATHSIG), and its
            # supervisor then reports it FAILED.
            await self._launcher.aclose()
        await self._tasks.join()
        for job in self._jobs.owned_by(None):
            job.log.close()
        if self._watcher is not None:
            self._watcher.close()
        if self._store is not None:
            await self._store.aclose()

    def _check_open(self) -> None:
        if self._closing:
            raise ManagerClosed("the job manager is shutting down")
        if self._watcher is None:
            raise ManagerClosed("the job manager was not entered with 'async with'")

    async def _start(self, spec: JobSpec, limits: Limits) -> tuple[Job, JobStatus]:
        assert self._launcher
        job = await self._launcher.launch(spec, limits)
        self._jobs.add(job)
        # Taken now: a quick job may be final by the time the caller of start() resumes.
        return job, job.status()

    def _abandon_start(self, task: asyncio.Task[tuple[Job, JobStatus]]) -> None:
        # The caller of start() was cancelled. If the job started anyway, nobody knows its
        # id, so stop it at once; a failed start already undid itself.
        if task.cancelled() or task.exception() is not None:
            return
        job, _ = task.result()
        job.begin_stop(0.0, StopReason.REQUESTED)
