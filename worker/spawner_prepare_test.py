"""The spawner's prepared sandboxes: made ahead of a start, already in the job's cgroups."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from worker.errors import SpawnerLost
from worker.spawn_protocol import ExitStatus
from worker.spawner import Spawner
from worker.testing_spawner import (
    children_of,
    is_alive,
    open_log,
    procs_of,
    request,
    run,
    scratch_cgroup,
    until,
)

pytestmark = pytest.mark.kernel


@pytest.fixture(name="cgroup")
def _cgroup() -> Iterator[Path]:
    with scratch_cgroup("spawner-prepare-test") as path:
        yield path


async def _prepared_sandbox(spawner: Spawner, key: str, cgroup: Path) -> int:
    """Prepares a sandbox in ``cgroup`` and returns its pid once it has joined."""
    spawner.prepare(key, (str(cgroup / "cgroup.procs"),))
    assert await until(lambda: len(procs_of(cgroup)) == 1, 30), "the sandbox never joined"
    (pid,) = procs_of(cgroup)
    return pid


async def _run_in(
    spawner: Spawner, cgroup: Path, log: Path, prepared: str
) -> tuple[int, set[int], ExitStatus]:
    """Runs a job in ``cgroup``; returns its init's pid, the cgroup's processes while the job
    ran (seen from the host: inside, its cgroup namespace shows "/"), and its status."""
    fd = open_log(log)
    try:
        job = request("/bin/sleep", "1000", cgroup_procs=(str(cgroup / "cgroup.procs"),))
        pid = await spawner.spawn(job, fd, prepared=prepared)
    finally:
        os.close(fd)
    assert await until(lambda: len(procs_of(cgroup)) == 2, 30)  # jobinit and sleep.
    members = procs_of(cgroup)
    await spawner.kill(pid, signal.SIGKILL)
    return pid, members, await spawner.wait(pid)


async def test_prepared_sandbox_waits_in_the_cgroup_and_becomes_the_job(
    tmp_path: Path, cgroup: Path
) -> None:
    async with await Spawner.start() as spawner:
        waiting = await _prepared_sandbox(spawner, "k1", cgroup)
        assert os.stat(f"/proc/{waiting}").st_uid == 0  # Still setup: no job's uid yet.
        pid, members, status = await _run_in(spawner, cgroup, tmp_path / "log", "k1")
    assert pid == waiting
    assert pid in members
    assert status.signal == signal.SIGKILL


@pytest.mark.parametrize("fate", ["join-fails", "killed"])
async def test_a_lost_prepared_sandbox_is_reaped_and_its_spawn_forks_anew(
    tmp_path: Path, cgroup: Path, fate: str
) -> None:
    async with await Spawner.start() as spawner:
        if fate == "killed":
            os.kill(await _prepared_sandbox(spawner, "k1", cgroup), signal.SIGKILL)
        else:
            spawner.prepare("k1", ("/no/cgroup.procs",))
        # Messages are handled in order: once this job ran, the prepare was seen too.
        await run(spawner, request("/bin/true"), tmp_path / "other")
        assert await until(lambda: not children_of(spawner.pid), 30)
        pid, members, status = await _run_in(spawner, cgroup, tmp_path / "log", "k1")
        assert spawner.alive
    assert pid in members
    assert status.signal == signal.SIGKILL


async def test_aclose_kills_a_prepared_sandbox(cgroup: Path) -> None:
    async with await Spawner.start() as spawner:
        waiting = await _prepared_sandbox(spawner, "k1", cgroup)
    assert not procs_of(cgroup)
    assert not is_alive(waiting)


async def test_preparing_a_key_twice_is_a_protocol_error(cgroup: Path) -> None:
    async with await Spawner.start() as spawner:
        await _prepared_sandbox(spawner, "k1", cgroup)
        spawner.prepare("k1", ())
        assert await until(lambda: not spawner.alive, 30)
        with pytest.raises(SpawnerLost, match="twice"):
            await spawner.spawn(request("/bin/true"), 1)
    assert not procs_of(cgroup)
