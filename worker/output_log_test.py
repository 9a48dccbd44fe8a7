from __future__ import annotations

import asyncio
import contextlib
import os
import random
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from worker.inotify import LogWatcher
from worker.output_log import CHUNK_SIZE, OutputLog
from worker.testing_output_log import (
    HANG,
    collect,
    forward,
    new_log,
    wait_until,
    write_all,
    write_log,
)


async def test_create_makes_private_empty_file_and_refuses_existing_path(tmp_path: Path) -> None:
    async with new_log(tmp_path) as (log, watcher):
        info = os.stat(log.path)
        assert stat.S_IMODE(info.st_mode) == 0o600
        assert log.size() == 0
        assert not log.finished
        with pytest.raises(FileExistsError):
            OutputLog.create(log.path, watcher)
    (tmp_path / "link").symlink_to(tmp_path / "elsewhere")
    watcher = LogWatcher.open()
    try:
        with pytest.raises(FileExistsError):
            OutputLog.create(tmp_path / "link", watcher)
        assert not (tmp_path / "elsewhere").exists()
    finally:
        watcher.close()


async def test_bytes_written_just_before_finish_without_newline_arrive(tmp_path: Path) -> None:
    async with new_log(tmp_path) as (log, _):
        follower = asyncio.create_task(collect(log))
        fd = log.open_writer()
        try:
            proc = await asyncio.create_subprocess_exec(
                "/usr/bin/python3",
                "-c",
                "import os; os.write(1, b'line\\n'); os.write(1, b'no newline')",
                stdin=subprocess.DEVNULL,
                stdout=fd,
            )
        finally:
            os.close(fd)
        assert await proc.wait() == 0
        log.finish()
        async with asyncio.timeout(HANG):
            assert await follower == b"line\nno newline"


async def test_two_writers_append_in_write_order(tmp_path: Path) -> None:
    async with new_log(tmp_path) as (log, _):
        out, err = log.open_writer(), log.open_writer()
        try:
            proc = await asyncio.create_subprocess_exec(
                "/usr/bin/python3",
                "-c",
                "import os\nfor i in range(1000): os.write(1 + i % 2, b'%d,' % i)",
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
            )
        finally:
            os.close(out)
            os.close(err)
        assert await proc.wait() == 0
        log.finish()
        assert await collect(log) == b"".join(b"%d," % i for i in range(1000))


@pytest.mark.parametrize("follow", [True, False])
@pytest.mark.parametrize(
    "offset", [0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, 2 * CHUNK_SIZE + 99, 2 * CHUNK_SIZE + 100, 10**9]
)
async def test_offset_selects_the_first_byte(tmp_path: Path, offset: int, follow: bool) -> None:
    data = random.randbytes(2 * CHUNK_SIZE + 100)
    async with new_log(tmp_path) as (log, _):
        write_log(log, data)
        log.finish()
        assert await collect(log, offset, follow) == data[offset:]


async def test_follower_past_the_end_waits_for_the_log_to_reach_its_offset(
    tmp_path: Path,
) -> None:
    async with new_log(tmp_path) as (log, watcher):
        fd = log.open_writer()
        try:
            follower = asyncio.create_task(collect(log, offset=4))
            write_all(fd, b"ab")
            await wait_until(lambda: watcher.watch_count == 1)
            write_all(fd, b"cdefg")
        finally:
            os.close(fd)
        await asyncio.sleep(0.05)
        assert not follower.done()  # Not finished yet, so it must keep waiting.
        log.finish()
        async with asyncio.timeout(HANG):
            assert await follower == b"efg"


# A follower read CHUNK_SIZE bytes at its offset, and pread(2) fails EINVAL once offset + size
# exceeds the largest off_t, 2**63 - 1; StreamOutput turned that into INTERNAL.
@pytest.mark.parametrize("offset", [2**63 - CHUNK_SIZE, 2**63 - 2, 2**63 - 1])
async def test_offsets_near_the_largest_file_offset_read_nothing_and_end(
    tmp_path: Path, offset: int
) -> None:
    async with new_log(tmp_path) as (log, watcher):
        write_log(log, b"abc")
        assert await collect(log, offset, follow=False) == b""
        follower = asyncio.create_task(collect(log, offset))
        await wait_until(lambda: follower.done() or watcher.watch_count == 1)
        write_log(log, b"more")  # Wakes the follower, which reads again and waits on.
        await asyncio.sleep(0.05)
        if follower.done():
            follower.result()  # Raises what ended it.
        assert not follower.done()
        log.finish()
        async with asyncio.timeout(HANG):
            assert await follower == b""


async def test_non_follow_returns_only_what_exists_when_it_starts(tmp_path: Path) -> None:
    first = random.randbytes(2 * CHUNK_SIZE + 1)
    async with new_log(tmp_path) as (log, _):
        fd = log.open_writer()
        try:
            write_all(fd, first)
            async with contextlib.aclosing(log.read(follow=False)) as chunks:
                got = [await anext(chunks)]
                write_all(fd, b"later")
                got += [chunk async for chunk in chunks]
        finally:
            os.close(fd)
        assert not log.finished
        assert b"".join(got) == first
        assert await collect(log, follow=False) == first + b"later"


async def test_follower_sleeps_until_a_write_wakes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads = 0
    real_preadv = os.preadv

    def counting_preadv(*args: Any) -> int:
        nonlocal reads
        reads += 1
        return real_preadv(*args)

    monkeypatch.setattr(os, "preadv", counting_preadv)
    received: asyncio.Queue[bytes] = asyncio.Queue()
    async with new_log(tmp_path) as (log, watcher):
        fd = log.open_writer()
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(forward(log, received))
                await wait_until(lambda: watcher.watch_count == 1)
                reads = 0
                await asyncio.sleep(0.3)
                assert reads == 0, "an idle follower must wait for inotify, not poll"
                assert received.empty()
                write_all(fd, b"wake")
                async with asyncio.timeout(HANG):
                    assert await received.get() == b"wake"
                log.finish()
        finally:
            os.close(fd)
        assert 1 <= reads <= 3  # The chunk, then at most one empty read per wake-up.


async def test_write_between_last_read_and_watch_is_not_missed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with new_log(tmp_path) as (log, watcher):
        fd = log.open_writer()
        real_watch = watcher.watch

        def watch_after_a_write(path: str, on_change: Callable[[], None]) -> int:
            write_all(fd, b"raced")  # Lands after the follower's empty read, before the watch.
            return real_watch(path, on_change)

        monkeypatch.setattr(watcher, "watch", watch_after_a_write)
        received: asyncio.Queue[bytes] = asyncio.Queue()
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(forward(log, received))
                # No inotify event exists for these bytes; only the re-read can find them.
                async with asyncio.timeout(HANG):
                    assert await received.get() == b"raced"
                log.finish()
        finally:
            os.close(fd)


async def test_close_lets_open_followers_drain_and_refuses_new_readers(tmp_path: Path) -> None:
    async with new_log(tmp_path) as (log, watcher):
        follower = asyncio.create_task(collect(log))
        await wait_until(lambda: watcher.watch_count == 1)
        write_log(log, b"tail")
        log.close()  # Before the loop saw the inotify event for "tail".
        assert log.finished
        assert watcher.watch_count == 0
        async with asyncio.timeout(HANG):
            assert await follower == b"tail"
        with pytest.raises(ValueError, match="closed"):
            log.read()
        with pytest.raises(ValueError, match="closed"):
            log.size()
        with pytest.raises(ValueError):
            log.open_writer()
        log.close()  # Idempotent.


async def test_reader_created_before_close_but_started_after_raises(tmp_path: Path) -> None:
    async with new_log(tmp_path) as (log, _):
        chunks = log.read()
        log.close()
        with pytest.raises(ValueError, match="closed"):
            await anext(chunks)
        await chunks.aclose()


async def test_running_reader_survives_delete(tmp_path: Path) -> None:
    data = random.randbytes(3 * CHUNK_SIZE)
    async with new_log(tmp_path) as (log, _):
        write_log(log, data)
        async with contextlib.aclosing(log.read()) as chunks:
            got = [await anext(chunks)]
            log.delete()
            assert not log.path.exists()
            got += [chunk async for chunk in chunks]
        assert b"".join(got) == data
        log.delete()  # Idempotent.


async def test_bad_arguments_and_states_raise(tmp_path: Path) -> None:
    async with new_log(tmp_path) as (log, _):
        with pytest.raises(ValueError, match="offset"):
            log.read(-1)
        log.finish()
        log.finish()  # Idempotent.
        with pytest.raises(ValueError, match="finished"):
            log.open_writer()
        assert await collect(log, offset=3) == b""


async def test_log_is_watched_only_while_followed_and_not_finished(tmp_path: Path) -> None:
    async with new_log(tmp_path) as (log, watcher):
        watcher = watcher
        fd = log.open_writer()
        try:
            write_all(fd, b"x")
            assert await collect(log, follow=False) == b"x"
            assert watcher.watch_count == 0
            followers = [asyncio.create_task(collect(log)) for _ in range(3)]
            await wait_until(lambda: watcher.watch_count == 1)
            followers.pop().cancel()
            await asyncio.sleep(0.01)
            assert watcher.watch_count == 1  # Two followers remain.
            log.finish()
            assert watcher.watch_count == 0
            assert await asyncio.gather(*followers) == [b"x", b"x"]
        finally:
            os.close(fd)


async def test_finished_log_holds_no_fd_and_stays_readable(tmp_path: Path) -> None:
    # The manager remembers every ended job; a log that kept its fd would cost one fd per
    # ended job forever (the bench found exactly that).
    async with new_log(tmp_path) as (log, _):
        write_log(log, b"kept on disk")
        log.finish()
        held = set()
        for fd in os.listdir("/proc/self/fd"):
            with contextlib.suppress(FileNotFoundError):  # The listing's own fd.
                held.add(os.readlink(f"/proc/self/fd/{fd}"))
        assert str(log.path) not in held
        assert log.size() == len(b"kept on disk")
        assert await collect(log) == b"kept on disk"
        assert await collect(log, follow=False) == b"kept on disk"
