"""Waiting for a job cgroup to empty and removing its directories, off the event loop's back.

Both waits sleep with asyncio.sleep between tiny checks, so the loop never blocks; both are
bounded and raise CgroupError rather than hang.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from worker.cgroup import files
from worker.cgroup.base import JobCgroup
from worker.errors import CgroupError

_FIRST_DELAY = 0.005
_MAX_DELAY = 0.25
REMOVE_SECONDS = 10.0
KILL_SECONDS = 10.0


async def remove_dirs(dirs: Sequence[Path]) -> None:
    """Removes cgroup directories, retrying EBUSY with exponential backoff.

    A cgroup stays busy for a moment after its last process exits (the exit is accounted
    asynchronously), so EBUSY right after a kill is expected and retried.

    Raises:
        CgroupError: A directory was still busy after REMOVE_SECONDS, or rmdir failed.
    """
    pending = list(dirs)
    delay = _FIRST_DELAY
    try:
        async with asyncio.timeout(REMOVE_SECONDS):
            while True:
                pending = [d for d in pending if not files.try_rmdir(d)]
                if not pending:
                    return
                await asyncio.sleep(delay)
                delay = min(delay * 2, _MAX_DELAY)
    except TimeoutError as err:
        names = ", ".join(str(d) for d in pending)
        raise CgroupError(f"cgroup still busy after {REMOVE_SECONDS:.0f} s: {names}") from err


async def kill_until_empty(cgroup: JobCgroup) -> None:
    """Kills everything in ``cgroup`` and waits until it is empty.

    kill_all() is repeated between waits: a child whose fork was in flight during one pass
    (v1 freezer, or v2 without cgroup.kill) is caught by the next.

    Raises:
        CgroupError: Processes were still there after KILL_SECONDS (for example stuck in
            uninterruptible sleep).
    """
    delay = _FIRST_DELAY
    try:
        async with asyncio.timeout(KILL_SECONDS):
            while not cgroup.is_empty():
                cgroup.kill_all()
                await asyncio.sleep(delay)
                delay = min(delay * 2, _MAX_DELAY)
    except TimeoutError as err:
        raise CgroupError(f"job cgroup not empty {KILL_SECONDS:.0f} s after SIGKILL") from err


async def discard(cgroup: JobCgroup) -> None:
    """Kills whatever is left in ``cgroup`` and removes it.

    Raises:
        CgroupError: The cgroup could not be emptied or removed.
    """
    await kill_until_empty(cgroup)
    await cgroup.remove()
