"""Helpers for the spawner and sandbox tests (not part of the library)."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from worker.spawn_protocol import ExitStatus, SpawnRequest
from worker.spawner import Spawner

NOBODY = 65534
PYTHON = "/usr/bin/python3"  # World-executable, unlike the pyenv interpreter under /root.


def request(*argv: str, cwd: str = "/", cgroup_procs: tuple[str, ...] = ()) -> SpawnRequest:
    """Returns a request to run ``argv`` as nobody with a minimal environment."""
    return SpawnRequest(
        argv=argv,
        env={"PATH": "/usr/bin:/bin"},
        cwd=cwd,
        uid=NOBODY,
        gid=NOBODY,
        cgroup_procs=cgroup_procs,
    )


def open_log(path: Path) -> int:
    """Opens (creates) ``path`` for appending, as the output fd of a job."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)


async def run(spawner: Spawner, req: SpawnRequest, log: Path) -> tuple[ExitStatus, str]:
    """Runs a job to completion and returns its exit status and its output."""
    fd = open_log(log)
    try:
        pid = await spawner.spawn(req, fd)
    finally:
        os.close(fd)
    status = await spawner.wait(pid)
    return status, small_text(log)


def small_text(path: Path) -> str:
    """Returns the text of a small file (a test log, a /proc file), or "" if it is missing.

    A few KiB read synchronously do not stall the event loop.
    """
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


async def wait_for_text(path: Path, needle: str, seconds: float = 30) -> None:
    """Polls ``path`` until it contains ``needle``; fails the test after ``seconds``."""
    assert await until(lambda: needle in small_text(path), seconds), f"no {needle!r} in {path}"


def is_alive(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def children_of(pid: int) -> set[int]:
    """The child pids of a single-threaded process (empty if it is gone)."""
    try:
        return {int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}
    except FileNotFoundError:
        return set()


@contextlib.contextmanager
def scratch_cgroup(name: str) -> Iterator[Path]:
    """Makes a cgroup of the pids hierarchy (v1) or of the unified one (v2); removes it after."""
    pids_v1 = Path("/sys/fs/cgroup/pids")
    root = pids_v1 if pids_v1.is_dir() else Path("/sys/fs/cgroup")
    path = root / f"{name}-{os.getpid()}"
    path.mkdir()
    try:
        yield path
    finally:
        path.rmdir()


def procs_of(cgroup: Path) -> set[int]:
    """The pids listed in a cgroup's cgroup.procs."""
    return {int(p) for p in small_text(cgroup / "cgroup.procs").split()}


def pid_namespace(pid: int) -> str:
    """The PID namespace of ``pid``, like ``pid:[4026532000]``."""
    return os.readlink(f"/proc/{pid}/ns/pid")


def processes_in(namespace: str) -> set[int]:
    """Live processes (by host pid) whose PID namespace is ``namespace``."""
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if pid_namespace(int(entry)) == namespace and is_alive(int(entry)):
                    found.add(int(entry))
            except OSError:  # Gone meanwhile, or not ours to inspect (like PID 1 here).
                continue
    return found


async def until(condition: Callable[[], bool], seconds: float) -> bool:
    """Polls ``condition()`` every 10 ms; returns whether it held within ``seconds``."""
    try:
        async with asyncio.timeout(seconds):
            # Process and file state in /proc has no event to wait on: poll.
            while not condition():  # noqa: ASYNC110
                await asyncio.sleep(0.01)
    except TimeoutError:
        return False
    return True


async def _daemon(argv: tuple[str, ...]) -> None:
    async with await Spawner.start() as spawner:
        null = os.open("/dev/null", os.O_WRONLY)
        pid = await spawner.spawn(request(*argv), null)
        print(pid, flush=True)
        await spawner.wait(pid)


def daemon_main() -> None:
    """A stand-in daemon: starts a spawner and one job, prints the job's pid, waits.

    Run as ``python -c 'from worker.testing_spawner import daemon_main; daemon_main()' ARGV``.
    """
    import sys

    asyncio.run(_daemon(tuple(sys.argv[1:])))
