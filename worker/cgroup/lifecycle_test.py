"""Layout, kill-all, removal and the startup sweep, on whichever cgroup version this host runs."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from worker.cgroup import detect, teardown, v1, v2
from worker.cgroup.base import PARENT_DIR_NAME, CgroupDriver, CgroupMode, JobCgroup
from worker.cgroup.testing_jobs import JobFactory, exists, listed_pids, start_in, wait_exit
from worker.errors import CgroupError
from worker.limits import Limits
from worker.testing_spawner import is_alive

pytestmark = pytest.mark.kernel

# Five processes that try to escape: a setsid'd one, a double-forked one (its parent exits
# at once), a setsid'd shell with a child, and the job's main process.
ESCAPERS = (
    "setsid sleep 1000 & (sleep 1000 &); "
    'setsid sh -c "sleep 1000 & exec sleep 1000" & exec sleep 1000'
)


@pytest.fixture
def driver() -> CgroupDriver:
    return detect.open_driver(io_paths=())


@pytest.fixture
def jobs(driver: CgroupDriver) -> Iterator[JobFactory]:
    factory = JobFactory(driver)
    yield factory
    factory.cleanup()


async def wait_for_pids(cg: JobCgroup, count: int) -> set[int]:
    async with asyncio.timeout(30):
        # v1 has no notification of a cgroup.procs change, so the tests poll.
        while len(pids := listed_pids(cg)) < count:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    return pids


async def wait_until_empty(cg: JobCgroup) -> None:
    async with asyncio.timeout(10):
        while not cg.is_empty():  # noqa: ASYNC110 (as above)
            await asyncio.sleep(0.02)


def listed_pids_of(procs_files: list[str]) -> set[int]:
    pids = set()
    for procs_file in procs_files:
        with contextlib.suppress(FileNotFoundError):
            pids |= {int(p) for p in Path(procs_file).read_text().split()}
    return pids


def own_cgroups() -> dict[str, str]:
    return detect.parse_proc_cgroup(Path("/proc/self/cgroup").read_text())


def test_layout_under_own_cgroup(driver: CgroupDriver, jobs: JobFactory) -> None:
    cg = jobs.create()
    for procs in cg.procs_files:
        job_dir = Path(procs).parent
        assert job_dir.is_dir()
        assert job_dir.parent.name == PARENT_DIR_NAME
    own = own_cgroups()
    if driver.mode is CgroupMode.UNIFIED:
        assert isinstance(driver, v2.V2Driver)
        # No internal processes: this process sits in the supervisor leaf beside the jobs.
        assert own[""].endswith(f"/{PARENT_DIR_NAME}/{v2.SUPERVISOR_DIR_NAME}")
        enabled = (driver.parent / "cgroup.subtree_control").read_text().split()
        assert set(v2.REQUIRED_CONTROLLERS) <= set(enabled)
    else:
        assert isinstance(driver, v1.V1Driver)
        for controller, parent in driver.parents.items():
            own_dir = Path("/sys/fs/cgroup", controller, own[controller].lstrip("/"))
            assert parent == own_dir / PARENT_DIR_NAME


def test_open_driver_again_reuses_the_layout(driver: CgroupDriver) -> None:
    before = own_cgroups()
    again = detect.open_driver(io_paths=())
    assert own_cgroups() == before
    if isinstance(driver, v2.V2Driver):
        assert isinstance(again, v2.V2Driver)
        assert again.parent == driver.parent
    else:
        assert isinstance(driver, v1.V1Driver) and isinstance(again, v1.V1Driver)
        assert again.parents == driver.parents


def test_create_same_id_twice_fails(driver: CgroupDriver, jobs: JobFactory) -> None:
    cg = jobs.create()
    job_id = Path(cg.procs_files[0]).parent.name.removeprefix("job-")
    with pytest.raises(CgroupError, match="cannot create cgroup"):
        driver.create(job_id, Limits())
    assert exists(cg)  # The failed create must not remove the live job's directory.
    assert all(Path(f).exists() for f in cg.procs_files)


def freezer_kill(cg: JobCgroup) -> None:
    """The freezer path: v2's fallback without cgroup.kill, v1's only way."""
    if isinstance(cg, v2.V2JobCgroup):
        v2.freeze_and_kill(cg.path)
    else:
        cg.kill_all()


@pytest.mark.parametrize(
    "kill", [lambda cg: cg.kill_all(), freezer_kill], ids=["kill_all", "freezer"]
)
async def test_kill_reaches_escaped_children(
    jobs: JobFactory, kill: Callable[[JobCgroup], None]
) -> None:
    cg = jobs.create()
    main = await start_in(cg, ["/bin/sh", "-c", ESCAPERS])
    pids = await wait_for_pids(cg, 5)
    kill(cg)
    assert await wait_exit(main) == -signal.SIGKILL
    await wait_until_empty(cg)
    assert not any(is_alive(pid) for pid in pids)


async def test_signal_all_sends_sigterm_everywhere(jobs: JobFactory) -> None:
    cg = jobs.create()
    main = await start_in(cg, ["/bin/sh", "-c", ESCAPERS])
    pids = await wait_for_pids(cg, 5)
    cg.signal_all(signal.SIGTERM)
    assert await wait_exit(main) == -signal.SIGTERM
    await wait_until_empty(cg)
    assert not any(is_alive(pid) for pid in pids)


async def test_usage_after_exit_and_remove_leaves_nothing(jobs: JobFactory) -> None:
    cg = jobs.create()
    proc = await start_in(cg, ["/bin/sh", "-c", "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done"])
    assert await wait_exit(proc) == 0
    assert cg.is_empty()
    usage = cg.usage()
    assert usage.cpu_usec > 0
    assert usage.oom_kills == 0
    await cg.remove()
    assert not exists(cg)
    await cg.remove()  # Removing again is harmless.


async def test_remove_retries_until_the_job_is_gone(jobs: JobFactory) -> None:
    cg = jobs.create()
    sleeper = await start_in(cg, ["/bin/sleep", "1000"])
    await wait_for_pids(cg, 1)
    async with asyncio.TaskGroup() as group:
        removal = group.create_task(cg.remove())
        await asyncio.sleep(0.3)
        assert not removal.done()  # EBUSY: the sleeper is still in the cgroup.
        assert exists(cg)
        cg.kill_all()
        await wait_exit(sleeper)
    assert not exists(cg)


async def test_remove_gives_up_while_busy(
    jobs: JobFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(teardown, "REMOVE_SECONDS", 0.3)
    cg = jobs.create()
    sleeper = await start_in(cg, ["/bin/sleep", "1000"])
    await wait_for_pids(cg, 1)
    with pytest.raises(CgroupError, match="still busy"):
        await cg.remove()
    assert exists(cg)
    await teardown.kill_until_empty(cg)
    assert await wait_exit(sleeper) == -signal.SIGKILL
    await cg.remove()
    assert not exists(cg)


# A daemon that dies with two running jobs: it creates them, starts ESCAPERS in each and
# exits without cleaning up, which also drops its ownership locks.
DYING_DAEMON = """
import subprocess, sys
from worker.cgroup import detect
from worker.cgroup.testing_jobs import JOIN_SCRIPT
from worker.limits import Limits
from worker.testing_spawner import is_alive
driver = detect.open_driver(io_paths=())
for i in range(2):
    cg = driver.create(f"{sys.argv[1]}-{i}", Limits(pids=64))
    env = {"PATH": "/usr/bin:/bin", "JOIN": " ".join(cg.procs_files)}
    argv = ["/bin/sh", "-c", JOIN_SCRIPT, "sh", "/bin/sh", "-c", sys.argv[2]]
    subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL)
    print(cg.procs_files[0], flush=True)
"""


async def test_sweep_kills_and_removes_leftovers() -> None:
    dying = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        DYING_DAEMON,
        secrets.token_urlsafe(6),
        ESCAPERS,
        stdout=asyncio.subprocess.PIPE,
        env={"PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert dying.stdout is not None
    procs_files = (await dying.stdout.read()).decode().split()
    assert await wait_exit(dying) == 0
    assert len(procs_files) == 2
    pids = set()
    async with asyncio.timeout(30):
        while len(pids := listed_pids_of(procs_files)) < 10:  # noqa: ASYNC110 (as above)
            await asyncio.sleep(0.05)
    # The restarted daemon opens a new driver and sweeps what the dead one left.
    restarted = detect.open_driver(io_paths=())
    assert await restarted.sweep() == 2
    assert not any(Path(f).parent.exists() for f in procs_files)
    assert not any(is_alive(pid) for pid in pids)
    assert await restarted.sweep() == 0


async def test_sweep_leaves_live_jobs_alone(jobs: JobFactory) -> None:
    cg = jobs.create()
    sleeper = await start_in(cg, ["/bin/sleep", "1000"])
    await wait_for_pids(cg, 1)
    # Another daemon starting beside this one must not take this process's running job.
    other = detect.open_driver(io_paths=())
    await other.sweep()
    await asyncio.sleep(0.2)
    assert sleeper.returncode is None
    assert exists(cg)
    await teardown.kill_until_empty(cg)
    assert await wait_exit(sleeper) == -signal.SIGKILL
    await cg.remove()
    assert not exists(cg)
