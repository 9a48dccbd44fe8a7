"""The manager's record of one running or ended job: its state machine, supervision and stop.

A job moves through three phases, and every transition happens synchronously between two
awaits, so no lock is needed:

1. running: the program (PID 1 of the job's PID namespace) runs;
2. exited: the spawner reaped PID 1, so the kernel has killed and reaped every process of
   the namespace (pid_namespaces(7)); the cgroup and the log are still being closed;
3. final: the cgroup is empty and removed and the log is finished, so every reader can drain
   to a known end. Only now does the state leave RUNNING (EXITED, STOPPED or FAILED).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
from collections.abc import Awaitable, Callable

from worker.cgroup.base import JobCgroup
from worker.cgroup.teardown import kill_until_empty
from worker.errors import JobNotRunning, SpawnerLost
from worker.limits import Limits
from worker.output_log import OutputLog
from worker.spawn_protocol import ExitStatus
from worker.spawner import Spawner
from worker.spec import JobSpec
from worker.status import JobState, JobStatus, StopReason, Usage
from worker.stopper import Stopper, describe
from worker.tasks import TaskSet


def utc_now() -> datetime.datetime:
    """Returns the current time in UTC."""
    return datetime.datetime.now(datetime.UTC)


class Job:
    """One job: what was asked, the kernel resources it holds, and what happened to it.

    worker/launch.py creates a Job once the program runs and starts its `supervise` task;
    the job starts its own stop sequence (`begin_stop`). Both tasks belong to the manager's
    TaskSet, which awaits them on close.

    Attributes:
        job_id: The job's id.
        spec: The spec as given.
        limits: The effective limits, defaults applied.
        log: The job's output log.
        exited: Set once the program's PID namespace is gone (or the spawner was lost).
        finished: Set once the status is final: exited, cgroup removed and log finished.
    """

    def __init__(
        self,
        *,
        job_id: str,
        spec: JobSpec,
        limits: Limits,
        cgroup: JobCgroup,
        log: OutputLog,
        spawner: Spawner,
        pid: int,
        tasks: TaskSet,
        record: Callable[[JobStatus], Awaitable[None]],
    ) -> None:
        self.job_id = job_id
        self.spec = spec
        self.limits = limits
        self.log = log
        self.exited = asyncio.Event()
        self.finished = asyncio.Event()
        self._cgroup = cgroup
        # The spawner that forked the job is the only one that can wait for and signal its
        # PID 1, even after the manager has replaced a dead spawner with a new one.
        self._spawner = spawner
        self._pid = pid
        self._record = record
        self._started_at = utc_now()
        self._ended_at: datetime.datetime | None = None
        self._exit: ExitStatus | None = None
        self._failure: str | None = None
        self._problems: list[str] = []
        self._usage = Usage()
        self._stopper = Stopper(
            name=job_id,
            spawner=spawner,
            pid=pid,
            cgroup=cgroup,
            exited=self.exited,
            tasks=tasks,
            problems=self._problems,
        )

    @property
    def owner(self) -> str:
        """The owner given in the spec."""
        return self.spec.owner

    @property
    def cgroup(self) -> JobCgroup:
        """The job's cgroup, for reading its usage (see worker/usage.py)."""
        return self._cgroup

    def record_usage(self, usage: Usage) -> None:
        """Keeps a live usage reading, unless the job has ended and has its final one."""
        if not self.exited.is_set():
            self._usage = usage

    def status(self) -> JobStatus:
        """Returns a consistent snapshot, with the usage last read (see worker/usage.py)."""
        return self._status(final=self.finished.is_set())

    async def record(self) -> None:
        """Makes the job's status as it is now durable in the job store.

        Raises:
            StoreError: The store could not write it.
        """
        await self._record(self.status())

    def _status(self, *, final: bool) -> JobStatus:
        if not final:
            state = JobState.RUNNING
        elif self._failure is not None:
            state = JobState.FAILED
        elif self._stopper.reason is not None:
            state = JobState.STOPPED
        else:
            state = JobState.EXITED
        exit_status = self._exit if final else None
        lost = final and self._failure is not None
        errors = ([self._failure] if self._failure else []) + self._problems
        return JobStatus(
            job_id=self.job_id,
            owner=self.spec.owner,
            argv=self.spec.argv,
            state=state,
            exit_code=exit_status.exit_code if exit_status else None,
            signal=exit_status.signal if exit_status else None,
            core_dumped=exit_status.core_dumped if exit_status else False,
            oom_killed=self._usage.oom_kills > 0,
            stop_reason=StopReason.WORKER_LOST if lost else self._stopper.reason,
            started_at=self._started_at,
            ended_at=self._ended_at,
            limits=self.limits,
            usage=self._usage,
            error="; ".join(errors) if final and errors else None,
        )

    async def supervise(self) -> None:
        """Waits for the program to end, then releases the job's resources and finalizes.

        This is the only place that moves the job out of RUNNING, so "the process exited"
        and "the output is complete" are always ordered: the log is finished only after the
        last process that could hold its writer fd is gone.
        """
        try:
            try:
                self._exit = await self._spawner.wait(self._pid)
            except SpawnerLost as err:
                self._failure = (
                    f"the spawner process died while the job ran ({err}); the kernel killed "
                    "the job with it (PR_SET_PDEATHSIG), so its exit status is unknown"
                )
            except Exception as err:  # The status must become final whatever broke.
                self._failure = f"waiting for the job failed: {err!r}"
            finally:
                self.exited.set()
                self._stopper.cancel()
            await self._release()
        finally:
            # Whatever broke above, even a cancellation, the status becomes final: wait(),
            # stop() and aclose() all wait for `finished`, and nothing else would ever set it.
            if self._exit is None and self._failure is None:
                self._failure = "supervising the job was cancelled before it exited"
            self.log.finish()  # Idempotent; skipped above only by a cancellation.
            self._ended_at = utc_now()
            try:
                # Durable before anyone can learn the job ended (finished wakes them).
                await self._record(self._status(final=True))
            except Exception as err:  # The job still becomes final; the status says why not.
                self._problems.append(f"the job store did not record its end: {err}")
            self.finished.set()

    async def _release(self) -> None:
        # Failures are recorded in the status, never raised: the job must become final.
        try:
            # Normally a no-op: PID 1 is reaped only after every process of its namespace.
            # It matters after a lost spawner, whose jobs die by PDEATHSIG at their own pace.
            await kill_until_empty(self._cgroup)
            # Off the loop, like every usage read (see worker/usage.py). What an empty cgroup
            # still charges is page cache, mostly of the job's own log, not the job's memory:
            # an ended job reports 0 current memory, as JobStatus documents, and its peak.
            final = await asyncio.to_thread(self._cgroup.usage)
            self._usage = dataclasses.replace(final, memory_bytes=0)
        except Exception as err:
            self._problems.append(f"final cgroup cleanup failed: {describe(err)}")
        finally:
            self.log.finish()
        try:
            await self._cgroup.remove()
        except Exception as err:
            self._problems.append(f"removing the job's cgroup failed: {describe(err)}")

    def begin_stop(self, grace: float, reason: StopReason) -> asyncio.Task[None] | None:
        """Requests a stop; see `Stopper.begin`."""
        return self._stopper.begin(grace, reason)

    def set_deadline(self, seconds: float, grace: float) -> None:
        """Stops the job with ``grace`` once it has run ``seconds`` (StopReason.DEADLINE)."""
        self._stopper.set_deadline(seconds, grace)

    async def signal(self, sig: int, *, everyone: bool = False) -> None:
        """Sends ``sig`` to the job's program, or to every process of the job but its init.

        The program gets it through jobinit, which forwards it (SIGSTOP and SIGCONT too);
        SIGKILL kills jobinit, and with it the job. ``everyone`` signals through the cgroup
        instead, leaving out jobinit, which would forward a second copy to the program.

        Raises:
            JobNotRunning: The job has ended.
            CgroupError: The cgroup could not be signalled.
        """
        if self.exited.is_set():
            raise JobNotRunning(self.job_id)
        if everyone:
            await asyncio.to_thread(self._cgroup.signal_all, sig, frozenset({self._pid}))
            return
        try:
            delivered = await self._spawner.kill(self._pid, sig)
        except SpawnerLost as err:
            raise JobNotRunning(self.job_id) from err
        if not delivered:
            raise JobNotRunning(self.job_id)
