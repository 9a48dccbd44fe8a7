"""Helpers shared by the output log tests: a log on a fresh watcher, writers and readers."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Final

from worker.inotify import LogWatcher
from worker.output_log import CHUNK_SIZE, OutputLog

HANG: Final = 120.0
"""A generous bound that only turns a hang into a failure; no test asserts on time."""

# Writes argv[1]'s bytes to stdout in random-sized write(2)s with random short pauses, like
# a job that prints in bursts. Runs on Debian's python3, which an unprivileged job can run too.
_WRITER: Final = """
import os, random, sys, time
data = open(sys.argv[1], "rb").read()
rng = random.Random(int(sys.argv[2]))
most, pause = int(sys.argv[3]), float(sys.argv[4])
view, pos = memoryview(data), 0
while pos < len(data):
    pos += os.write(1, view[pos : pos + rng.randint(1, most)])
    if rng.random() < pause:
        time.sleep(0.002)
"""


@contextlib.asynccontextmanager
async def new_log(
    tmp_path: Path, name: str = "out.log"
) -> AsyncIterator[tuple[OutputLog, LogWatcher]]:
    """Yields a new log under ``tmp_path`` and its own watcher, and closes both."""
    watcher = LogWatcher.open()
    try:
        log = OutputLog.create(tmp_path / name, watcher)
        try:
            yield log, watcher
        finally:
            log.close()
    finally:
        watcher.close()


async def run_writer(log: OutputLog, source: Path, seed: int, most: int, pause: float) -> None:
    """Runs a process that writes ``source`` into the log in random bursts, and waits for it."""
    fd = log.open_writer()
    try:
        proc = await asyncio.create_subprocess_exec(
            "/usr/bin/python3",
            "-c",
            _WRITER,
            str(source),
            str(seed),
            str(most),
            str(pause),
            stdin=subprocess.DEVNULL,
            stdout=fd,
        )
    finally:
        os.close(fd)
    async with asyncio.timeout(HANG):
        assert await proc.wait() == 0


async def digest(log: OutputLog, offset: int = 0, follow: bool = True) -> str:
    """Returns the sha256 of what a reader delivers, checking each chunk's size."""
    sha = hashlib.sha256()
    async with contextlib.aclosing(log.read(offset, follow)) as chunks:
        async for chunk in chunks:
            assert 0 < len(chunk) <= CHUNK_SIZE
            sha.update(chunk)
    return sha.hexdigest()


async def collect(log: OutputLog, offset: int = 0, follow: bool = True) -> bytes:
    """Returns everything a reader delivers."""
    async with contextlib.aclosing(log.read(offset, follow)) as chunks:
        return b"".join([chunk async for chunk in chunks])


async def forward(log: OutputLog, received: asyncio.Queue[bytes]) -> None:
    """Follows the log from its start, putting each chunk into ``received``."""
    async with contextlib.aclosing(log.read()) as chunks:
        async for chunk in chunks:
            received.put_nowait(chunk)


async def wait_until(condition: Callable[[], bool]) -> None:
    """Waits until ``condition()`` holds.

    It polls the test's view of internal state; the code under test never polls.
    """
    async with asyncio.timeout(HANG):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.001)


def write_all(fd: int, data: bytes) -> None:
    """Writes all of ``data`` to ``fd``."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def write_log(log: OutputLog, data: bytes) -> None:
    """Appends ``data`` to the log through a writer fd of its own."""
    fd = log.open_writer()
    try:
        write_all(fd, data)
    finally:
        os.close(fd)


def evict_from_page_cache(path: Path) -> None:
    """Drops the file's pages from the page cache, so that reading it needs the disk."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)  # Only clean pages can be dropped.
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        try:
            os.preadv(fd, [bytearray(1)], 0, os.RWF_NOWAIT)
        except BlockingIOError:
            return
        raise AssertionError(f"{path} is still in the page cache after POSIX_FADV_DONTNEED")
    finally:
        os.close(fd)


def sha(data: bytes) -> str:
    """Returns the sha256 hex digest of ``data``."""
    return hashlib.sha256(data).hexdigest()
