"""Where a job will run: its id and cgroup, made ahead of time when possible.

Moving a process into a cgroup makes the kernel wait for an RCU grace period (writing
cgroup.procs takes cgroup_threadgroup_rwsem for writing), which costs ~10 ms on an idle host
while the rest of an isolated start takes ~3 ms. So the manager keeps one spare: a new job
id, its cgroup without limits, and a sandbox that has joined that cgroup and waits. A start
takes the spare, writes its limits and hands the job over; a new spare is made just after.
Without a spare, the start makes a fresh cgroup and the spawner a fresh sandbox. Either way
the start gets a `Placement`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses

from worker.cgroup.base import CgroupDriver, JobCgroup
from worker.cgroup.teardown import discard
from worker.errors import CgroupError
from worker.ids import new_job_id
from worker.limits import Limits
from worker.spawner import Spawner

# After a start, the next spare is made this much later: a timer runs after the callbacks that
# are ready now, so the reply to that start goes out first. Measured on 2 vCPUs: with no
# delay, starts 50 ms apart took 1.3x unshare(1); with 1 ms, 0.9x; 5 ms slowed back-to-back
# starts, which then missed the spare more often.
REPLENISH_DELAY_S = 0.001


@dataclasses.dataclass(frozen=True, slots=True)
class Spare:
    """A job id and its cgroup, with a sandbox of ``spawner`` waiting inside.

    Attributes:
        job_id: The id the job that takes the spare gets; also the spawner's prepare key.
        cgroup: The job's cgroup, with no limits written yet.
        spawner: The spawner whose sandbox waits in ``cgroup``.
    """

    job_id: str
    cgroup: JobCgroup
    spawner: Spawner


@dataclasses.dataclass(frozen=True, slots=True)
class Placement:
    """Where a starting job goes.

    Attributes:
        job_id: The job's id.
        cgroup: The job's cgroup, with the job's limits written.
        prepared: The spawner's key of a sandbox waiting in ``cgroup``, or None when the
            spawner must make a fresh one.
    """

    job_id: str
    cgroup: JobCgroup
    prepared: str | None


async def undo_cgroup(cgroup: JobCgroup, err: BaseException) -> None:
    """Removes the cgroup of a failed start; a cleanup failure is noted on ``err``."""
    try:
        # Whatever is in it dies here: a prepared sandbox, or a child that got in before
        # its spawner died.
        await discard(cgroup)
    except CgroupError as cleanup:
        err.add_note(f"cleaning up the failed start also failed: {cleanup}")


class SpareKeeper:
    """Keeps at most one Spare. Use from the manager's event loop only."""

    def __init__(self, driver: CgroupDriver) -> None:
        """Makes no spare yet; see replenish()."""
        self._driver = driver
        self._spare: Spare | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False

    def replenish(self, spawner: Spawner) -> None:
        """Makes a spare for ``spawner`` now, unless there is one.

        A failure leaves no spare: the next start then creates its cgroup itself, and
        reports whatever makes that fail.
        """
        self._timer = None
        if self._closed or self._spare is not None or not spawner.alive:
            return
        job_id = new_job_id()
        try:
            cgroup = self._driver.create(job_id, Limits())
        except CgroupError:
            return
        spawner.prepare(job_id, cgroup.procs_files)
        self._spare = Spare(job_id, cgroup, spawner)

    def replenish_soon(self, spawner: Spawner) -> None:
        """Calls replenish() after REPLENISH_DELAY_S, unless a call is already pending."""
        if self._timer is None and not self._closed:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(REPLENISH_DELAY_S, self.replenish, spawner)

    async def place(self, spawner: Spawner, limits: Limits) -> Placement:
        """Returns a placement for a job of ``spawner``: the spare's, or a fresh cgroup's.

        The placement is the caller's from now on; a spare made for another spawner (one
        that died since) is discarded instead of used. Its cgroup gets ``limits`` with one
        more pid, for the job's init (jobinit), which the job's own limit does not count.

        Raises:
            CgroupError: The cgroup could not be made or a limit was refused; nothing of the
                placement is left.
        """
        if limits.pids is not None:
            limits = dataclasses.replace(limits, pids=limits.pids + 1)
        spare, self._spare = self._spare, None
        if spare is not None and spare.spawner is not spawner:
            # Its sandbox died with that spawner. If the cgroup cannot be removed now, the
            # next manager's startup sweep removes it.
            with contextlib.suppress(CgroupError):
                await discard(spare.cgroup)
            spare = None
        if spare is None:
            job_id = new_job_id()
            return Placement(job_id, self._driver.create(job_id, limits), None)
        try:
            # Before the spawn: the prepared sandbox runs nothing of the job until then.
            spare.cgroup.apply(limits)
        except BaseException as err:
            await undo_cgroup(spare.cgroup, err)
            raise
        return Placement(spare.job_id, spare.cgroup, spare.job_id)

    async def aclose(self) -> None:
        """Stops making spares and removes the current one. Idempotent.

        Raises:
            CgroupError: The spare's cgroup could not be emptied or removed.
        """
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        spare, self._spare = self._spare, None
        if spare is not None:
            # Killing the cgroup ends the waiting sandbox, which the spawner then reaps.
            await discard(spare.cgroup)
