"""inotify(7) for asyncio: ctypes bindings and `LogWatcher`, one instance on the event loop.

CPython has no inotify module, so this wraps glibc's ``inotify_init1``, ``inotify_add_watch``
and ``inotify_rm_watch`` (man 2 of each). Every call's return is checked and a failure raises
``OSError`` with the errno the kernel reported. `LogWatcher` registers one inotify fd with the
loop and calls a callback per watched file; worker/output_log.py uses it to wake followers.
"""

from __future__ import annotations

import asyncio
import ctypes
import dataclasses
import enum
import errno
import os
import struct
from collections.abc import Callable
from typing import Final

# glibc exports the wrappers from the process image itself; use_errno makes ctypes save errno
# right after each call, before any other libc call can overwrite it.
_LIBC: Final = ctypes.CDLL(None, use_errno=True)
_INIT1: Final = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, use_errno=True)(
    ("inotify_init1", _LIBC)
)
_ADD_WATCH: Final = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32, use_errno=True
)(("inotify_add_watch", _LIBC))
_RM_WATCH: Final = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_int, use_errno=True)(
    ("inotify_rm_watch", _LIBC)
)

# struct inotify_event { int wd; uint32_t mask; uint32_t cookie; uint32_t len; char name[]; }
_HEADER: Final = struct.Struct("=iIII")

# inotify_init1(2): IN_NONBLOCK and IN_CLOEXEC have the values of O_NONBLOCK and O_CLOEXEC.
IN_NONBLOCK: Final = os.O_NONBLOCK
IN_CLOEXEC: Final = os.O_CLOEXEC

# Enough for thousands of events per read(2): file watches carry no name, so each is 16 bytes.
_READ_SIZE: Final = 64 * 1024


class Mask(enum.IntFlag):
    """Event and watch flags from <sys/inotify.h> (inotify(7)) that jobworker uses."""

    MODIFY = 0x00000002
    """A write(2), truncate(2) or similar changed the file's data."""
    Q_OVERFLOW = 0x00004000
    """The event queue overflowed (fs.inotify.max_queued_events) and events were dropped."""
    IGNORED = 0x00008000
    """The watch is gone: removed by inotify_rm_watch, or the file was deleted or unmounted."""
    MASK_CREATE = 0x10000000
    """Fail with EEXIST instead of changing the mask of an existing watch (Linux 4.18)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Event:
    """One ``struct inotify_event``.

    Attributes:
        wd: The watch descriptor, or -1 for ``Q_OVERFLOW``.
        mask: What happened.
        cookie: Links the two halves of a rename; 0 otherwise.
        name: The entry name for watched directories; empty for watched files.
    """

    wd: int
    mask: Mask
    cookie: int
    name: bytes


def _checked(result: int, call: str, path: str | None = None) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{call}: {os.strerror(err)}", path)
    return result


def init(flags: int = IN_NONBLOCK | IN_CLOEXEC) -> int:
    """Creates an inotify instance.

    Args:
        flags: ``IN_NONBLOCK`` and/or ``IN_CLOEXEC``.

    Returns:
        The new inotify fd; the caller owns it and must close it.

    Raises:
        OSError: For example EMFILE when fs.inotify.max_user_instances is reached.
    """
    return _checked(_INIT1(flags), "inotify_init1")


def add_watch(fd: int, path: str | os.PathLike[str], mask: Mask) -> int:
    """Adds a watch for ``path`` (symlinks followed) to the instance ``fd``.

    Args:
        fd: An inotify fd from `init`.
        path: The file to watch. ``/proc/self/fd/N`` watches the inode behind fd N.
        mask: The events to report, plus flags such as ``MASK_CREATE``.

    Returns:
        The watch descriptor. The kernel returns the same one for the same inode.

    Raises:
        OSError: For example ENOSPC when fs.inotify.max_user_watches is reached, or EEXIST
            for ``MASK_CREATE`` on an inode that is already watched.
    """
    path = os.fspath(path)
    return _checked(_ADD_WATCH(fd, os.fsencode(path), mask), "inotify_add_watch", path)


def rm_watch(fd: int, wd: int) -> None:
    """Removes watch ``wd``; the kernel then queues an ``IGNORED`` event for it.

    Raises:
        OSError: EINVAL when ``wd`` is not a watch of ``fd``, for example because the kernel
            already removed it (file deleted, filesystem unmounted).
    """
    _checked(_RM_WATCH(fd, wd), "inotify_rm_watch")


def parse_events(data: bytes) -> list[Event]:
    """Splits the bytes returned by read(2) on an inotify fd into events.

    Raises:
        ValueError: If ``data`` ends in the middle of an event; the kernel never does that.
    """
    events = []
    offset = 0
    while offset < len(data):
        if len(data) - offset < _HEADER.size:
            raise ValueError(f"truncated inotify event header at byte {offset}")
        wd, mask, cookie, length = _HEADER.unpack_from(data, offset)
        offset += _HEADER.size
        if len(data) - offset < length:
            raise ValueError(f"truncated inotify event name at byte {offset}")
        # The kernel pads the name with NULs to an aligned length.
        name = data[offset : offset + length].rstrip(b"\0")
        offset += length
        events.append(Event(wd=wd, mask=Mask(mask), cookie=cookie, name=name))
    return events


def read_events(fd: int) -> list[Event]:
    """Reads the events queued on a non-blocking inotify fd; empty when none are queued.

    Raises:
        OSError: If read(2) fails for a reason other than EAGAIN.
    """
    try:
        data = os.read(fd, _READ_SIZE)
    except BlockingIOError:
        return []
    return parse_events(data)


class LogWatcher:
    """One inotify instance per manager, dispatching modify events to logs.

    Create it with `open` on the event loop that will use it, and `close` it after closing
    the logs that use it: a follower parked on a log's watch is not woken by `close`.
    """

    def __init__(self, fd: int, loop: asyncio.AbstractEventLoop) -> None:
        self._fd: int | None = fd
        self._loop = loop
        self._callbacks: dict[int, Callable[[], None]] = {}

    @classmethod
    def open(cls) -> LogWatcher:
        """Creates the inotify instance and registers it with the running loop.

        Raises:
            RuntimeError: If no event loop is running.
            OSError: If inotify_init1 fails, for example EMFILE at max_user_instances.
        """
        loop = asyncio.get_running_loop()
        fd = init(IN_NONBLOCK | IN_CLOEXEC)
        try:
            watcher = cls(fd, loop)
            loop.add_reader(fd, watcher._on_readable)
        except BaseException:
            os.close(fd)
            raise
        return watcher

    @property
    def watch_count(self) -> int:
        """How many files are watched now (for tests and metrics)."""
        return len(self._callbacks)

    def watch(self, path: str, on_change: Callable[[], None]) -> int:
        """Calls ``on_change`` on the loop after each modification of ``path``.

        Calls may be coalesced, and a queue overflow calls every callback; callers re-check
        the file rather than count calls.

        Args:
            path: The file; ``/proc/self/fd/N`` pins the inode behind fd N.
            on_change: A cheap, non-raising callback.

        Returns:
            The watch descriptor, for `unwatch`.

        Raises:
            ValueError: If the watcher is closed.
            OSError: From inotify_add_watch, for example ENOSPC at max_user_watches, or
                EEXIST if the inode is already watched.
        """
        if self._fd is None:
            raise ValueError("the log watcher is closed")
        # MASK_CREATE: two owners of one inode would share a wd and silently replace each
        # other's callback; fail loudly instead.
        wd = add_watch(self._fd, path, Mask.MODIFY | Mask.MASK_CREATE)
        self._callbacks[wd] = on_change
        return wd

    def unwatch(self, wd: int) -> None:
        """Stops a watch from `watch`; a no-op if it is already gone or the watcher closed."""
        if self._callbacks.pop(wd, None) is None or self._fd is None:
            return
        try:
            rm_watch(self._fd, wd)
        except OSError as err:
            # EINVAL: the kernel removed the watch itself (inode freed, filesystem unmounted)
            # and its IN_IGNORED is still queued (inotify(7)). The goal state is reached.
            if err.errno != errno.EINVAL:
                raise

    def close(self) -> None:
        """Unregisters from the loop and closes the instance, dropping every watch.

        Idempotent. Ends and wakes nothing: close the logs first.
        """
        fd, self._fd = self._fd, None
        if fd is None:
            return
        self._callbacks.clear()
        try:
            self._loop.remove_reader(fd)
        finally:
            os.close(fd)

    def _on_readable(self) -> None:
        if self._fd is None:
            return
        woken: set[int] = set()
        for event in read_events(self._fd):
            if event.mask & Mask.Q_OVERFLOW:
                # Events were dropped, so any log may have grown unseen: wake them all.
                woken.update(self._callbacks)
                continue
            if event.mask & Mask.IGNORED:
                # The kernel dropped the watch (after unwatch, or the filesystem went away):
                # forget it, and let its followers re-check the file one last time.
                callback = self._callbacks.pop(event.wd, None)
                if callback is not None:
                    callback()
                continue
            woken.add(event.wd)
        for wd in woken:
            callback = self._callbacks.get(wd)
            if callback is not None:
                callback()
