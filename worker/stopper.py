"""How a job is stopped: SIGTERM through its init, a grace period, SIGKILL; and its deadline."""

from __future__ import annotations

import asyncio
import signal

from worker.cgroup.base import JobCgroup
from worker.errors import CgroupError, SpawnerLost
from worker.spawner import Spawner
from worker.status import StopReason
from worker.tasks import TaskSet


def describe(err: Exception) -> str:
    """Says what failed: a CgroupError's text, or for anything unexpected also its type."""
    return str(err) if isinstance(err, CgroupError) else repr(err)


class Stopper:
    """The stop sequence of one job, shared by every stop request and its deadline.

    Concurrent requests join the running sequence, and a shorter grace moves its SIGKILL
    earlier. Failures are appended to ``problems``, which the job's status reports.
    """

    def __init__(
        self,
        *,
        name: str,
        spawner: Spawner,
        pid: int,
        cgroup: JobCgroup,
        exited: asyncio.Event,
        tasks: TaskSet,
        problems: list[str],
    ) -> None:
        """Stops nothing yet.

        Args:
            name: Names the tasks, for debugging.
            spawner: The spawner that runs the job; it alone may signal the job's init.
            pid: The job's init (jobinit), PID 1 of its namespace.
            cgroup: The job's cgroup, for the SIGKILL of everything in it.
            exited: Set once the job's PID namespace is gone: the sequence ends there.
            tasks: Owns the sequence's task.
            problems: Where failures are recorded.
        """
        self.reason: StopReason | None = None
        self._name = name
        self._spawner = spawner
        self._pid = pid
        self._cgroup = cgroup
        self._exited = exited
        self._tasks = tasks
        self._problems = problems
        self._task: asyncio.Task[None] | None = None
        self._kill_timer: asyncio.Timeout | None = None
        self._deadline: asyncio.TimerHandle | None = None

    def begin(self, grace: float, reason: StopReason) -> asyncio.Task[None] | None:
        """Requests a stop; returns the task of the stop sequence, or None if none is needed.

        A request for a job that has already exited changes nothing. A request while a stop
        is in progress joins it, and only moves the SIGKILL earlier when its grace is
        shorter; the first request's reason stays. A request after a sequence that failed
        starts a new one. The task returns once the kill was sent, not once the job is
        final, and raises CgroupError when the job could not be killed.
        """
        if self._exited.is_set():
            return None
        self.reason = self.reason or reason
        if self._task is None or _failed(self._task):
            # A stop sequence that raised (it could not SIGKILL the job) is not joined but
            # retried: re-awaiting it would only repeat its stale error while the job runs.
            self._task = self._tasks.start(self._run(grace), f"jobworker-stop-{self._name}")
        elif self._kill_timer is not None:
            deadline = asyncio.get_running_loop().time() + grace
            when = self._kill_timer.when()
            if when is None or deadline < when:
                self._kill_timer.reschedule(deadline)
        return self._task

    def set_deadline(self, seconds: float, grace: float) -> None:
        """Stops the job, with ``grace``, once ``seconds`` have passed; see ``cancel``."""
        loop = asyncio.get_running_loop()
        self._deadline = loop.call_later(seconds, self.begin, grace, StopReason.DEADLINE)

    def cancel(self) -> None:
        """Drops the deadline: the job has exited."""
        if self._deadline is not None:
            self._deadline.cancel()

    async def _run(self, grace: float) -> None:
        if self._exited.is_set():  # It ended between begin() and this task's first step.
            return
        try:
            # To jobinit, which forwards them to the program alone (worker/init/jobinit.c).
            # SIGCONT after SIGTERM, as systemd does: a stopped program gets to handle it.
            for sig in (signal.SIGTERM, signal.SIGCONT):
                await self._spawner.kill(self._pid, sig)
        except SpawnerLost:
            return  # The job died with its spawner (PDEATHSIG); supervise() says so.
        except Exception as err:  # Whatever failed, the SIGKILL below must still happen.
            self._problems.append(f"SIGTERM failed, killed without grace: {describe(err)}")
            grace = 0.0
        timer = asyncio.timeout(grace)
        self._kill_timer = timer
        try:
            async with timer:
                await self._exited.wait()
            return
        except TimeoutError:
            if self._exited.is_set():
                return
        finally:
            self._kill_timer = None
        await self._kill()

    async def _kill(self) -> None:
        cgroup_error: Exception | None = None
        try:
            self._cgroup.kill_all()
        except Exception as err:  # The spawner's SIGKILL of jobinit below may still work.
            cgroup_error = err
        try:
            # Killing jobinit is enough on its own: the kernel then kills the namespace.
            delivered = await self._spawner.kill(self._pid, signal.SIGKILL)
        except SpawnerLost:
            return  # As above.
        if cgroup_error is not None and not delivered and not self._exited.is_set():
            problem = f"cannot SIGKILL the job: {describe(cgroup_error)}"
            self._problems.append(problem)  # Also in the status, once the job has ended.
            raise CgroupError(problem) from cgroup_error


def _failed(task: asyncio.Task[None]) -> bool:
    """Returns whether ``task`` ended with an exception or was cancelled."""
    return task.done() and (task.cancelled() or task.exception() is not None)
