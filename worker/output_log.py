"""A job's combined stdout and stderr: an append-only file on disk and the readers that follow it.

The job writes straight into a regular file: the spawner dup2()s a descriptor from
`OutputLog.open_writer` onto the job's fds 1 and 2. No pipe and no copy pass through the
daemon, so a job never blocks on its readers, nothing is lost at exit, and the daemon holds at
most one chunk per active reader however much the job prints.

Readers read the file with pread at their own offset. A follower that reaches the end waits
for an inotify ``IN_MODIFY`` event on the file; one `LogWatcher` (one inotify instance,
registered with the event loop) serves every log of a manager, because
fs.inotify.max_user_instances is only 128 by default and a manager runs many more jobs. A log
is watched only while at least one follower exists, so unread jobs cost the daemon no wake-ups.

Everything here runs on the event loop thread; none of it is thread-safe.
"""

from __future__ import annotations

import asyncio
import errno
import os
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Final

from worker.inotify import LogWatcher

CHUNK_SIZE: Final = 64 * 1024
"""The largest chunk a reader yields, so a reader holds at most this much memory."""

_MAX_FILE_OFFSET: Final = 2**63 - 1
"""The largest off_t. pread(2) fails with EINVAL when offset + size would exceed it."""


class OutputLog:
    """One job's output file: created empty, appended to by the job, read by any number.

    Lifecycle: `create`, hand `open_writer` fds to the job, `finish` once every writer is
    gone (for a job in its own PID namespace: once its init was reaped, because the kernel
    kills the rest of the namespace first, pid_namespaces(7)), `close`, and `delete`.
    """

    def __init__(self, path: Path, fd: int | None, watcher: LogWatcher) -> None:
        self._path = path
        # Held only until `finish`: a log of an ended job costs no fd, however many ended
        # jobs the manager remembers; readers of a finished log open it by path instead.
        self._fd: int | None = fd
        self._closed = False
        self._watcher = watcher
        # The generation event: set and replaced on every change, so a reader that takes
        # the current one *before* reading cannot miss a change that happens after the read.
        self._changed = asyncio.Event()
        self._finished = False
        self._wd: int | None = None
        self._followers = 0
        self._readers = 0

    @classmethod
    def create(cls, path: Path, watcher: LogWatcher) -> OutputLog:
        """Creates a new, empty log file with mode 0600.

        Args:
            path: Where; it must not exist, and its directory should be private (0700).
            watcher: The manager's watcher, used while the log has followers.

        Raises:
            FileExistsError: If ``path`` exists (O_EXCL; a symlink there counts too).
            OSError: For any other failure of open(2).
        """
        fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        return cls(path, fd, watcher)

    @classmethod
    def finished_at(cls, path: Path, watcher: LogWatcher) -> OutputLog:
        """Returns the finished log of a job that ended under an earlier manager.

        Readers open it by path, as any finished log's (``_reopen``); it need not exist yet
        to be read: a missing file is an error of the reader, not of the manager's start.
        """
        log = cls(path, None, watcher)
        log.finish()
        return log

    @property
    def path(self) -> Path:
        """Where the log file is."""
        return self._path

    @property
    def finished(self) -> bool:
        """Whether `finish` or `close` was called: no byte will be added any more."""
        return self._finished

    @property
    def reader_count(self) -> int:
        """How many readers are running now (started and not yet ended)."""
        return self._readers

    def open_writer(self) -> int:
        """Opens a new O_WRONLY|O_APPEND|O_CLOEXEC fd of the log; the caller closes it.

        O_APPEND makes every write(2) land at the end atomically, so the job's stdout and
        stderr interleave in write order and no two writers overwrite each other.

        Raises:
            ValueError: If the log is finished or closed.
        """
        if self._finished:
            raise ValueError(f"output log {self._path} is finished; no writer may be added")
        return self._reopen(os.O_WRONLY | os.O_APPEND)

    def size(self) -> int:
        """Returns the number of bytes in the log now.

        Raises:
            ValueError: If the log is closed.
        """
        self._require_open()
        return os.fstat(self._fd).st_size if self._fd is not None else self._path.stat().st_size

    def finish(self) -> None:
        """Declares that no more bytes will come; followers deliver the rest and end.

        Call it only after every writer fd, in the job and in the caller, is closed. Idempotent.
        """
        if self._finished:
            return
        self._finished = True
        self._drop_watch()
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)
        self._notify()

    def close(self) -> None:
        """Finishes the log and refuses new readers and writers; open readers drain and end.

        Idempotent. Readers that already run keep their own fd, so they still deliver every
        byte; new readers are refused.
        """
        self.finish()
        self._closed = True

    def delete(self) -> None:
        """Closes the log and unlinks its file. Idempotent; running readers still drain."""
        self.close()
        self._path.unlink(missing_ok=True)

    def read(self, offset: int = 0, follow: bool = True) -> AsyncGenerator[bytes, None]:
        """Returns an async iterator over the log's bytes from ``offset`` on.

        Use it as ``async with contextlib.aclosing(log.read()) as chunks``, so that a consumer
        that stops early releases the reader's fd at once instead of at garbage collection.

        Args:
            offset: The first byte to deliver; 0 is the first byte the job wrote. Past the
                end, a follower waits for the log to grow beyond it (and ends empty if it
                never does); a non-follower yields nothing.
            follow: If true, wait for new bytes and end exactly when the log is finished and
                every byte was delivered. If false, deliver the bytes that exist when
                iteration starts, and end.

        Returns:
            An async generator of non-empty chunks of at most `CHUNK_SIZE` bytes.

        Raises:
            ValueError: If ``offset`` is negative or the log is closed. Raised here, before
                iteration; a reader created before `close` but first iterated after it
                raises it from its first iteration.
            OSError: From iteration, if a follower cannot watch the file (ENOSPC at
                fs.inotify.max_user_watches) or a read fails.
        """
        if offset < 0:
            raise ValueError(f"output offset must be >= 0, got {offset}")
        self._require_open()
        return self._read(offset, follow)

    async def _read(self, offset: int, follow: bool) -> AsyncGenerator[bytes, None]:
        # Each reader has its own fd: it outlives close() and delete(), so a reader drains
        # what exists even then, and no reader ever waits for another. O_NOATIME: with
        # relatime, the first read after each write would otherwise dirty the inode (an ext4
        # journal write); open(2) allows it because this process owns the file.
        fd = self._reopen(os.O_RDONLY | os.O_NOATIME)
        self._readers += 1
        following = False
        try:
            end = None if follow else os.fstat(fd).st_size
            while True:
                # Both snapshots come before the read. If the log was finished before the
                # read, the read saw every byte; a change after the read sets `changed`.
                changed = self._changed
                finished = self._finished
                size = CHUNK_SIZE if end is None else min(CHUNK_SIZE, end - offset)
                # A follower at an absurd offset reads nothing, rather than fail EINVAL.
                size = min(size, _MAX_FILE_OFFSET - offset)
                chunk = await _pread(fd, size, offset) if size > 0 else b""
                if chunk:
                    offset += len(chunk)
                    yield chunk
                    # A consumer that never awaits (hashing, buffering) would otherwise run
                    # through a hot log without returning to the loop: 100 such followers
                    # of 256 MiB stalled the loop 9 s; with this, p50 tick lateness ~7 ms.
                    await asyncio.sleep(0)
                elif finished or not follow:
                    return
                elif not following:
                    # Watch only now, and read once more before waiting: a write between
                    # the last read and the watch produced no event.
                    self._follow()
                    following = True
                else:
                    await changed.wait()
        finally:
            if following:
                self._unfollow()
            self._readers -= 1
            os.close(fd)

    def _follow(self) -> None:
        if self._wd is None and self._fd is not None:
            self._wd = self._watcher.watch(f"/proc/self/fd/{self._fd}", self._notify)
        self._followers += 1

    def _unfollow(self) -> None:
        self._followers -= 1
        if self._followers == 0:
            self._drop_watch()

    def _drop_watch(self) -> None:
        wd, self._wd = self._wd, None
        if wd is not None:
            self._watcher.unwatch(wd)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _require_open(self) -> None:
        if self._closed:
            raise ValueError(f"output log {self._path} is closed")

    def _reopen(self, flags: int) -> int:
        # Until `finish`, /proc/self/fd/N names the very inode this log created, whatever
        # happened to the path since (proc(5)). After it, the path in the private (0700) data
        # directory does, with O_NOFOLLOW against a symlink. O_CLOEXEC keeps every fd out of
        # every child but the intended one.
        self._require_open()
        if self._fd is not None:
            return os.open(f"/proc/self/fd/{self._fd}", flags | os.O_CLOEXEC)
        return os.open(self._path, flags | os.O_NOFOLLOW | os.O_CLOEXEC)


async def _pread(fd: int, size: int, offset: int) -> bytes:
    """Reads up to ``size`` bytes at ``offset``, never blocking the loop on the disk.

    A page-cache hit is a memory copy (about 10 us per 64 KiB here), so it runs on the loop;
    preadv2(RWF_NOWAIT) tells a hit from a miss without waiting for the disk (preadv2(2),
    Linux 4.14), and returns what is cached when only part is. A miss goes to the default
    executor, which costs a thread hop but keeps a cold 1 GiB log from stalling the loop.
    """
    buf = bytearray(size)
    try:
        count = os.preadv(fd, [buf], offset, os.RWF_NOWAIT)
    except BlockingIOError:
        return await _pread_in_thread(fd, size, offset)
    except OSError as err:
        if err.errno != errno.EOPNOTSUPP:  # A filesystem without RWF_NOWAIT support.
            raise
        return await _pread_in_thread(fd, size, offset)
    del buf[count:]
    return bytes(buf)


async def _pread_in_thread(fd: int, size: int, offset: int) -> bytes:
    # The thread reads its own dup and closes it, so the reader may close `fd` at any time
    # (cancellation) without the thread ever reading a reused fd number. The work item is
    # shielded: cancelling a still-queued item would leave the dup open forever.
    dup = os.dup(fd)
    try:
        work = asyncio.get_running_loop().run_in_executor(None, _pread_and_close, dup, size, offset)
    except BaseException:
        os.close(dup)
        raise
    work.add_done_callback(_mark_retrieved)
    return await asyncio.shield(work)


def _pread_and_close(fd: int, size: int, offset: int) -> bytes:
    try:
        return os.pread(fd, size, offset)
    finally:
        os.close(fd)


def _mark_retrieved(future: asyncio.Future[bytes]) -> None:
    # After a cancelled reader nobody awaits the work; retrieving its error here keeps
    # asyncio from reporting "exception was never retrieved".
    if not future.cancelled():
        future.exception()
