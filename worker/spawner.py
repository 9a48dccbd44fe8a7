"""Manager-side client of the spawner, the single-threaded fork server that starts jobs.

The daemon runs grpcio's C threads, so it never runs code between fork and exec. Instead,
``Spawner.start()`` launches worker/spawner_main.py once as a fresh interpreter
(worker/spawner_launch.py), which forks per job. Protocol and ordering:
worker/spawn_protocol.py. One reader and one writer task per Spawner, ended in ``aclose()``;
any number of tasks may call its methods concurrently.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import signal
import socket
from pathlib import Path
from typing import Any

from worker.config import JOBINIT, JobWorld
from worker.errors import SpawnerLost, StartFailed
from worker.record_sender import RecordSender
from worker.spawn_protocol import (
    MAX_MESSAGE,
    Exited,
    ExitStatus,
    Failed,
    Fatal,
    Kill,
    Killed,
    Prepare,
    ProtocolError,
    Spawn,
    SpawnRequest,
    Started,
    decode,
    describe_failure,
    encode,
)
from worker.spawner_launch import describe_returncode, launch

_EXIT_TIMEOUT_S = 10.0  # Bounds a broken machine, not a slow one.
_Reply = Started | Failed | Killed


class Spawner:
    """A running spawner process and the tasks talking to it. Create with ``start()``."""

    def __init__(self, process: asyncio.subprocess.Process, sock: socket.socket) -> None:
        self._process = process
        self._sock = sock
        self._ids = itertools.count(1)
        self._replies: dict[int, asyncio.Future[_Reply]] = {}
        self._exits: dict[int, asyncio.Future[ExitStatus]] = {}
        self._abandoned: set[int] = set()  # Started for a cancelled spawn(): killed, not waited.
        self._sender = RecordSender(sock, "spawner-writer")
        self._lost: SpawnerLost | None = None
        self._fatal = ""
        self._closing: asyncio.Task[None] | None = None
        self._reader = asyncio.create_task(self._read_loop(), name="spawner-reader")

    @classmethod
    async def start(cls, init: Path = JOBINIT, world: JobWorld | None = None) -> Spawner:
        """Launches the spawner process and waits until it is ready.

        Args:
            init: The jobinit binary that runs as PID 1 of every job.
            world: The jobs' view of the host's files; JobWorld() by default.

        Raises:
            SpawnerLost: The spawner could not be started, for example without jobinit.
        """
        return cls(*await launch(init, world or JobWorld()))

    @property
    def pid(self) -> int:
        """The spawner process's pid."""
        return self._process.pid

    @property
    def alive(self) -> bool:
        """Whether the spawner is usable: not lost and not closed."""
        return self._lost is None and self._closing is None

    async def _request(self, message: Spawn | Kill, fd: int | None = None) -> _Reply:
        if self._lost is not None or self._closing is not None:
            raise self._lost or SpawnerLost("the spawner is closed")
        request_id = next(self._ids)
        record = encode(dataclasses.replace(message, request_id=request_id))
        if len(record) > MAX_MESSAGE:
            raise StartFailed("request", f"{len(record)} bytes encoded, over {MAX_MESSAGE}")
        future: asyncio.Future[_Reply] = asyncio.get_running_loop().create_future()
        self._replies[request_id] = future
        # Not sent at all if the caller gave up before its turn.
        sent = self._sender.put(record, fd, wanted=lambda: not future.done())
        sent.add_done_callback(lambda sent: self._unsent(request_id, sent))
        try:
            return await future
        except asyncio.CancelledError:
            # The reply can arrive just before the cancellation, which then wins: a job it
            # started must not outlive a caller that never learns its pid.
            late = future.result() if future.done() and not future.cancelled() else None
            if isinstance(late, Started):
                self._abandon(late.pid)
            raise

    def prepare(self, key: str, cgroup_procs: tuple[str, ...]) -> None:
        """Asks for a sandbox that waits, already in these cgroups, for ``spawn(prepared=key)``.

        Fire and forget: if the sandbox cannot be made, or the spawner is gone, that spawn
        makes a new sandbox (or fails) instead. The prepared sandbox dies with the spawner,
        or when its cgroups are killed.
        """
        if self.alive:
            self._sender.put(encode(Prepare(key, cgroup_procs)))

    async def spawn(
        self, request: SpawnRequest, output_fd: int, prepared: str | None = None
    ) -> int:
        """Starts a job and returns its pid once its program has been exec'd.

        Args:
            request: What to run, as whom, where, in which cgroups.
            output_fd: Becomes the job's stdout and stderr; the caller keeps its own fd.
            prepared: The key of an earlier ``prepare`` for the same cgroups, if any.

        Returns:
            The job's pid, as seen by the daemon. Pass it to ``wait`` exactly once.

        Raises:
            StartFailed: A setup step or the exec failed; nothing of the job is running.
            SpawnerLost: The spawner died or is closed.
        """
        match await self._request(Spawn(0, request, prepared), output_fd):
            case Started(pid=pid):
                return pid
            case Failed() as failed:
                detail = describe_failure(failed.errno, failed.detail)
                raise StartFailed(failed.step, detail, failed.errno)
            case other:
                raise ProtocolError(f"{other.TYPE!r} in reply to a spawn")

    async def wait(self, pid: int) -> ExitStatus:
        """Returns the exit status of a job once the spawner has reaped it.

        The status is kept until the first ``wait`` for the pid returns; concurrent waiters
        all get it. Cancelling a waiter does not lose the status.

        Raises:
            SpawnerLost: The spawner died before the job was reaped; the job died with it.
            ValueError: ``pid`` is not a job of this spawner, or was already waited for.
        """
        future = self._exits.get(pid)
        if future is None:
            raise ValueError(f"pid {pid} is not an unwaited job of this spawner")
        status = await asyncio.shield(future)
        if self._exits.get(pid) is future:
            del self._exits[pid]
        return status

    async def kill(self, pid: int, sig: int) -> bool:
        """Sends ``sig`` to a job, unless the spawner has already reaped it.

        The spawner reaps and signals in one thread, so a reaped (maybe reused) pid is never
        signalled. The job is PID 1 of its namespace: only SIGKILL, SIGSTOP and signals it
        handles reach it (pid_namespaces(7)).

        Args:
            pid: A pid returned by ``spawn``.
            sig: The signal number.

        Returns:
            True if the signal was sent, False if the job had already ended.

        Raises:
            SpawnerLost: The spawner died or is closed.
        """
        match await self._request(Kill(0, pid, int(signal.Signals(sig)))):
            case Killed(delivered=delivered):
                return delivered
            case other:
                raise ProtocolError(f"{other.TYPE!r} in reply to a kill")

    def _unsent(self, request_id: int, sent: asyncio.Future[None]) -> None:
        """Forgets a request that was dropped or could not be sent; no reply will come."""
        if not sent.cancelled() and sent.exception() is None:
            return  # Sent: its reply comes, or the reader fails it at EOF.
        reply = self._replies.pop(request_id, None)
        if reply is not None and not reply.done():
            # The reader sees the EOF too, and fails everything else.
            error = "closed" if sent.cancelled() else sent.exception()
            reply.set_exception(SpawnerLost(f"cannot send to the spawner: {error}"))
            reply.exception()  # Retrieved: an abandoned job's kill has no awaiter.

    async def _read_loop(self) -> None:
        loop = asyncio.get_running_loop()
        reason = "the spawner was closed"
        try:
            while True:
                record = await loop.sock_recv(self._sock, MAX_MESSAGE)
                if not record:
                    reason = await self._death_reason()
                    return
                self._dispatch(decode(record))
        except (OSError, ProtocolError, KeyError, TypeError) as err:
            reason = f"the spawner broke the protocol: {err!r}"
            if self._process.returncode is None:
                self._process.kill()  # It can no longer be trusted with jobs.
        finally:
            self._lose(SpawnerLost(f"spawner (pid {self._process.pid}): {reason}"))

    async def _death_reason(self) -> str:
        # The socket closes when the spawner exits, so this returns at once unless it hangs.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_EXIT_TIMEOUT_S):
                await self._process.wait()
        fatal = f" after an internal error: {self._fatal}" if self._fatal else ""
        return f"closed its socket{fatal} ({describe_returncode(self._process.returncode)})"

    def _dispatch(self, message: object) -> None:
        match message:
            case Exited(pid=pid) if pid in self._abandoned:
                self._abandoned.discard(pid)
            case Exited(pid=pid, status=status):
                future = self._exits.get(pid)
                if future is None or future.done():
                    raise ProtocolError(f"exit of unknown pid {pid}")
                future.set_result(status)
            case Fatal():
                self._fatal = message.message
            case Started() | Failed() | Killed():
                reply = self._replies.pop(message.request_id)
                if isinstance(message, Started):
                    if reply.cancelled():
                        self._abandon(message.pid)
                        return
                    # Registered before the reply is seen: the exit report may be next.
                    self._exits[message.pid] = asyncio.get_running_loop().create_future()
                if not reply.done():
                    reply.set_result(message)
            case _:
                raise ProtocolError(f"unexpected message {message!r}")

    def _abandon(self, pid: int) -> None:
        """Kills a started job that nobody will ever know of, and drops its exit report."""
        exit_future = self._exits.pop(pid, None)
        if exit_future is not None and exit_future.done():
            return  # It has ended and been reported already: nothing left to kill or drop.
        self._abandoned.add(pid)
        self._replies[-pid] = asyncio.get_running_loop().create_future()
        sent = self._sender.put(encode(Kill(-pid, pid, signal.SIGKILL)))
        sent.add_done_callback(lambda sent: self._unsent(-pid, sent))

    def _lose(self, error: SpawnerLost) -> None:
        if self._lost is None:
            self._lost = error
        futures: list[asyncio.Future[Any]] = [*self._replies.values(), *self._exits.values()]
        for future in futures:
            if not future.done():
                future.set_exception(error)
                # Nobody may ever await it (a job never waited for): retrieve it, or asyncio
                # logs "exception was never retrieved". Awaiting it still raises.
                future.exception()
        self._replies.clear()

    async def aclose(self) -> None:
        """Ends the spawner process and reaps it; jobs still running are SIGKILLed with it.

        Idempotent and safe to call concurrently; every call returns once the spawner is
        gone. Outstanding ``spawn``, ``wait`` and ``kill`` calls raise SpawnerLost.
        """
        if self._closing is None:
            self._closing = asyncio.create_task(self._close(), name="spawner-close")
        await asyncio.shield(self._closing)

    async def _close(self) -> None:
        self._reader.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)
        await self._sender.aclose()
        # EOF tells the spawner to SIGKILL and reap its jobs, then exit.
        self._sock.close()
        try:
            async with asyncio.timeout(_EXIT_TIMEOUT_S):
                await self._process.wait()
        except TimeoutError:
            self._process.kill()
            await self._process.wait()

    async def __aenter__(self) -> Spawner:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
