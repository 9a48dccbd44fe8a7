from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hashlib
import os
import random
import threading
from pathlib import Path

import pytest

from worker.inotify import LogWatcher
from worker.output_log import CHUNK_SIZE, OutputLog
from worker.testing_output_log import (
    collect,
    digest,
    evict_from_page_cache,
    new_log,
    run_writer,
    sha,
    wait_until,
    write_all,
    write_log,
)


async def test_hundred_readers_at_random_times_get_identical_bytes(tmp_path: Path) -> None:
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    data = rng.randbytes(16 * 1024 * 1024)
    source = tmp_path / "source"
    source.write_bytes(data)

    async def reader(delay: float, offset: int) -> tuple[int, str]:
        await asyncio.sleep(delay)
        return offset, await digest(log, offset)

    def random_offset() -> int:
        return 0 if rng.random() < 0.5 else rng.randrange(len(data) + 2)

    async with new_log(tmp_path) as (log, _), asyncio.TaskGroup() as group:
        during = [
            group.create_task(reader(rng.uniform(0, 0.5), random_offset())) for _ in range(80)
        ]
        await run_writer(log, source, seed, most=CHUNK_SIZE, pause=0.3)
        log.finish()
        after = [
            group.create_task(reader(rng.uniform(0, 0.05), random_offset())) for _ in range(20)
        ]
    for task in during + after:
        offset, got = task.result()
        assert got == sha(data[offset:]), f"seed={seed} offset={offset}"


async def test_stalled_reader_holds_back_neither_writer_nor_other_readers(tmp_path: Path) -> None:
    data = random.randbytes(100 * 1024 * 1024)
    source = tmp_path / "source"
    source.write_bytes(data)
    async with new_log(tmp_path) as (log, _):
        write_log(log, b"head\n")
        async with contextlib.aclosing(log.read()) as stalled:
            assert await anext(stalled) == b"head\n"
            # `stalled` now sits parked at its yield, holding one fd and no buffer.
            async with asyncio.TaskGroup() as group:
                active = group.create_task(digest(log))
                await run_writer(log, source, seed=1, most=1024 * 1024, pause=0.0)
                # The 100 MiB are on disk although the stalled reader took 5 bytes.
                assert log.size() == len(b"head\n") + len(data)
                log.finish()
            assert active.result() == sha(b"head\n" + data)
            rest = hashlib.sha256()
            async for chunk in stalled:
                rest.update(chunk)
        assert rest.hexdigest() == sha(data)


async def test_cancelled_follower_returns_and_releases_fd_and_watch(tmp_path: Path) -> None:
    async with new_log(tmp_path) as (log, watcher):
        task = asyncio.create_task(collect(log))
        await wait_until(lambda: watcher.watch_count == 1)
        assert log.reader_count == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert log.reader_count == 0
        assert watcher.watch_count == 0
        # The leak fixture checks that the reader's fd is closed.


async def test_read_of_evicted_pages_is_correct(tmp_path: Path) -> None:
    data = random.randbytes(3 * CHUNK_SIZE + 17)
    async with new_log(tmp_path) as (log, _):
        write_log(log, data)
        log.finish()
        evict_from_page_cache(log.path)
        assert await collect(log, offset=5) == data[5:]


@pytest.mark.parametrize("steps", [0, 1, 2, 3, 5, 8])
async def test_cancelled_reader_of_evicted_pages_leaves_no_fd(tmp_path: Path, steps: int) -> None:
    async with new_log(tmp_path) as (log, _):
        write_log(log, random.randbytes(8 * CHUNK_SIZE))
        evict_from_page_cache(log.path)
        task = asyncio.create_task(collect(log))
        for _ in range(steps):
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert log.reader_count == 0
        # The executor thread closes its own dup of the fd; the leak fixture checks that.


async def test_reader_cancelled_while_its_disk_read_is_queued_leaves_no_fd(
    tmp_path: Path,
) -> None:
    loop = asyncio.get_running_loop()
    loop.set_default_executor(concurrent.futures.ThreadPoolExecutor(max_workers=1))
    gate = threading.Event()
    busy = loop.run_in_executor(None, gate.wait)  # Occupies the only executor thread.
    try:
        async with new_log(tmp_path) as (log, _):
            write_log(log, random.randbytes(CHUNK_SIZE))
            evict_from_page_cache(log.path)
            task = asyncio.create_task(collect(log))
            # The reader's first suspension is on its queued disk read.
            await wait_until(lambda: log.reader_count == 1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert log.reader_count == 0
    finally:
        gate.set()
        await busy
    # The queued read still runs and closes its dup of the fd; the leak fixture checks that.


async def test_one_watcher_wakes_the_right_followers_of_many_logs(tmp_path: Path) -> None:
    watcher = LogWatcher.open()
    logs = [OutputLog.create(tmp_path / f"{i}.log", watcher) for i in range(50)]
    fds = [log.open_writer() for log in logs]
    received = [bytearray() for _ in logs]

    async def follow(i: int) -> None:
        async with contextlib.aclosing(logs[i].read()) as chunks:
            async for chunk in chunks:
                received[i].extend(chunk)

    try:
        async with asyncio.TaskGroup() as group:
            for i in range(len(logs)):
                group.create_task(follow(i))
            await wait_until(lambda: watcher.watch_count == len(logs))
            for i in reversed(range(len(logs))):
                write_all(fds[i], b"log %d" % i)
            # Before finish(): each follower can only have its bytes from its own wake-up.
            await wait_until(lambda: received == [b"log %d" % i for i in range(len(logs))])
            for log in logs:
                log.finish()
    finally:
        for fd in fds:
            os.close(fd)
        for log in logs:
            log.close()
        watcher.close()
