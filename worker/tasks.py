"""TaskSet: the one owner of tasks that outlive the call that started them."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

_T = TypeVar("_T")


class TaskSet:
    """Keeps every task it starts until the task ends, and awaits them all on ``join``.

    Like ``asyncio.TaskGroup`` without its scope: the manager's tasks (job supervisors, stop
    sequences, starts) begin and end across many calls, so no ``async with`` block can hold
    them. A task's exception is left to whoever awaits the task; ``join`` retrieves it too, so
    that asyncio never reports it as unretrieved. Use from one event loop only.
    """

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def start(self, coro: Coroutine[Any, Any, _T], name: str) -> asyncio.Task[_T]:
        """Runs ``coro`` in a task that this set owns, and returns the task."""
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def join(self) -> None:
        """Returns once every task has ended, including tasks started while waiting."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
