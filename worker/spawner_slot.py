"""The manager's current spawner: started on first use, replaced after it died, closed once."""

from __future__ import annotations

import asyncio
from pathlib import Path

from worker.config import JobWorld
from worker.errors import ManagerClosed
from worker.spawner import Spawner


class SpawnerSlot:
    """Holds at most one live Spawner. Use from the manager's event loop only.

    A spawner that died (its jobs died with it) is replaced on the next ``live()``; jobs of
    the dead one keep their reference to it until their supervisors have reported them.
    """

    def __init__(self, init: Path, world: JobWorld) -> None:
        """Starts nothing yet; spawners run ``init`` as PID 1 of jobs that see ``world``."""
        self._init = init
        self._world = world
        self._spawner: Spawner | None = None
        # Guards replacing a dead spawner, which spans the await of starting a new one.
        self._lock = asyncio.Lock()
        self._closed = False

    async def live(self) -> Spawner:
        """Returns the current spawner, starting a new one if there is none or it died.

        Raises:
            SpawnerLost: A new spawner could not be started.
            ManagerClosed: The slot is closed.
        """
        async with self._lock:
            if self._closed:
                raise ManagerClosed("the job manager is shutting down")
            if self._spawner is not None and self._spawner.alive:
                return self._spawner
            dead, self._spawner = self._spawner, None
            if dead is not None:
                await dead.aclose()
            self._spawner = await Spawner.start(self._init, self._world)
            return self._spawner

    async def aclose(self) -> None:
        """Closes the current spawner, which SIGKILLs the jobs it still runs. Idempotent."""
        async with self._lock:
            self._closed = True
            spawner, self._spawner = self._spawner, None
        if spawner is not None:
            await spawner.aclose()
