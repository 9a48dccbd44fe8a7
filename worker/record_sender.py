"""Sending records, each with at most one fd, in order on a non-blocking seqpacket socket."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class RecordSender:
    """Sends queued records from one task it owns, so that callers never block on the socket.

    A ``SOCK_SEQPACKET`` send is all or nothing: on EAGAIN the task waits until the socket
    is writable and sends the same record again, so records keep their order. Create it on
    the event loop that will use it; ``aclose`` ends its task.
    """

    def __init__(self, sock: socket.socket, name: str) -> None:
        """Starts sending on ``sock``, which must be non-blocking; the caller keeps it."""
        self._sock = sock
        # (record, fd to attach or None, whether the record is still wanted, its outcome).
        self._queue: asyncio.Queue[
            tuple[bytes, int | None, Callable[[], bool], asyncio.Future[None]]
        ] = asyncio.Queue()
        self._task = asyncio.create_task(self._loop(), name=name)

    def put(
        self, record: bytes, fd: int | None = None, wanted: Callable[[], bool] = lambda: True
    ) -> asyncio.Future[None]:
        """Queues ``record``, with a dup of ``fd`` attached (the caller keeps its own).

        Args:
            record: One record.
            fd: An fd to send with it as SCM_RIGHTS, or None.
            wanted: Asked when the record's turn comes; False drops it unsent (its sender
                gave up meanwhile).

        Returns:
            A future that is done once the record was sent, failed with the OSError of the
            send, or cancelled when the record was dropped.
        """
        outcome = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((record, None if fd is None else os.dup(fd), wanted, outcome))
        return outcome

    async def _loop(self) -> None:
        while True:
            record, fd, wanted, outcome = await self._queue.get()
            try:
                if not wanted():
                    outcome.cancel()
                    continue
                await self._send(record, fd)
                outcome.set_result(None)
            except OSError as err:
                outcome.set_exception(err)
            finally:
                if fd is not None:
                    os.close(fd)

    async def _send(self, record: bytes, fd: int | None) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                socket.send_fds(self._sock, [record], [] if fd is None else [fd])
                return
            except BlockingIOError:
                writable = loop.create_future()
                loop.add_writer(self._sock, _resolve, writable)
                try:
                    await writable
                finally:
                    loop.remove_writer(self._sock)

    async def aclose(self) -> None:
        """Ends the sending task; queued records are dropped and their fds closed."""
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        while not self._queue.empty():
            _, fd, _, outcome = self._queue.get_nowait()
            outcome.cancel()
            if fd is not None:
                os.close(fd)
