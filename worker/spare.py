"""A job's id and cgroup made ahead of time, with a sandbox of the spawner already in it.

Moving a process into a cgroup makes the kernel wait for an RCU grace period (writing
cgroup.procs takes cgroup_threadgroup_rwsem for writing), which costs ~10 ms on an idle host
while the rest of an isolated start takes ~3 ms. So the manager keeps one spare: a new job
id, its cgroup without limits, and a sandbox that has joined that cgroup and waits. A start
takes the spare, writes its limits and hands the job over; a new spare is made just after.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses

from worker.cgroup.base import CgroupDriver, JobCgroup
from worker.cgroup.teardown import kill_until_empty
from worker.errors import CgroupError
from worker.ids import new_job_id
from worker.spawner import Spawner
from worker.spec import Limits

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


async def _discard(spare: Spare) -> None:
    # Killing the cgroup ends the waiting sandbox, which the spawner then reaps.
    await kill_until_empty(spare.cgroup)
    await spare.cgroup.remove()


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

    async def take(self, spawner: Spawner) -> Spare | None:
        """Returns the spare, which is the caller's from now on, or None if there is none.

        A spare made for another spawner (one that died since) is discarded instead.
        """
        spare, self._spare = self._spare, None
        if spare is None or spare.spawner is spawner:
            return spare
        # Its sandbox died with that spawner. If the cgroup cannot be removed now, the next
        # manager's startup sweep removes it.
        with contextlib.suppress(CgroupError):
            await _discard(spare)
        return None

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
            await _discard(spare)
