from __future__ import annotations

import errno
import functools
import os
import struct
from pathlib import Path

import pytest

from worker import inotify
from worker.inotify import LogWatcher
from worker.testing_output_log import wait_until


def max_queued_events() -> int:
    return int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())


def test_parse_events_splits_records_and_rejects_truncation() -> None:
    header = struct.Struct("=iIII")
    data = header.pack(3, 0x2, 0, 0) + header.pack(4, 0x100, 7, 8) + b"name\0\0\0\0"
    assert inotify.parse_events(data) == [
        inotify.Event(wd=3, mask=inotify.Mask.MODIFY, cookie=0, name=b""),
        inotify.Event(wd=4, mask=inotify.Mask(0x100), cookie=7, name=b"name"),
    ]
    with pytest.raises(ValueError, match="header"):
        inotify.parse_events(data[:20])
    with pytest.raises(ValueError, match="name"):
        inotify.parse_events(data[:-1])


async def test_watcher_errors_carry_errno_and_close_is_idempotent(tmp_path: Path) -> None:
    watcher = LogWatcher.open()
    try:
        with pytest.raises(FileNotFoundError):
            watcher.watch(str(tmp_path / "missing"), lambda: None)
        (tmp_path / "file").touch()
        wd = watcher.watch(str(tmp_path / "file"), lambda: None)
        with pytest.raises(FileExistsError):  # MASK_CREATE: one owner per inode.
            watcher.watch(str(tmp_path / "file"), lambda: None)
        watcher.unwatch(wd)
        watcher.unwatch(wd)  # Already gone: a no-op.
        with pytest.raises(OSError) as caught:
            inotify.rm_watch(-1, 1)
        assert caught.value.errno == errno.EBADF
    finally:
        watcher.close()
    watcher.close()
    with pytest.raises(ValueError, match="closed"):
        watcher.watch(str(tmp_path / "file"), lambda: None)


def test_watcher_needs_a_running_loop() -> None:
    with pytest.raises(RuntimeError):
        LogWatcher.open()


async def test_event_queue_overflow_calls_every_callback(tmp_path: Path) -> None:
    rounds = max_queued_events() // 2 + 10
    calls = {name: 0 for name in "bcd"}
    fds = {
        name: os.open(tmp_path / name, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC) for name in calls
    }
    watcher = LogWatcher.open()
    try:
        for name in calls:
            watcher.watch(str(tmp_path / name), functools.partial(calls.__setitem__, name, 1))
        # Without yielding to the loop: b's and d's events alternate, so they do not
        # coalesce; the queue overflows, and the kernel drops c's only event.
        for _ in range(rounds):
            os.write(fds["b"], b"b")
            os.write(fds["d"], b"d")
        os.write(fds["c"], b"c")
        # Only the IN_Q_OVERFLOW event can make the watcher call c's callback now.
        await wait_until(lambda: calls["c"] == 1)
        assert calls == {"b": 1, "c": 1, "d": 1}
    finally:
        watcher.close()
        for fd in fds.values():
            os.close(fd)


async def test_callbacks_follow_their_own_files_and_stop_after_unwatch(tmp_path: Path) -> None:
    calls: list[str] = []
    watcher = LogWatcher.open()
    try:
        wds = {}
        for name in ("x", "y"):
            (tmp_path / name).touch()
            wds[name] = watcher.watch(str(tmp_path / name), functools.partial(calls.append, name))
        assert watcher.watch_count == 2
        (tmp_path / "y").write_bytes(b"1")
        await wait_until(lambda: calls == ["y"])
        watcher.unwatch(wds["y"])
        assert watcher.watch_count == 1
        (tmp_path / "y").write_bytes(b"2")
        (tmp_path / "x").write_bytes(b"3")
        await wait_until(lambda: "x" in calls)
        assert calls[0] == "y" and "y" not in calls[1:]
    finally:
        watcher.close()
