import asyncio
import errno
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from worker.errors import SpawnerLost, StartFailed
from worker.spawn_protocol import ExitStatus
from worker.spawner import Spawner
from worker.testing_spawner import (
    PYTHON,
    children_of,
    is_alive,
    open_log,
    procs_of,
    request,
    run,
    scratch_cgroup,
    small_text,
    until,
    wait_for_text,
)

pytestmark = pytest.mark.kernel


@pytest.mark.parametrize("code", [0, 3, 255])
async def test_exit_code_is_faithful(tmp_path: Path, code: int) -> None:
    async with await Spawner.start() as spawner:
        status, _ = await run(spawner, request("/bin/sh", "-c", f"exit {code}"), tmp_path / "log")
    assert (status.exit_code, status.signal) == (code, None)


async def test_fatal_signal_is_faithful(tmp_path: Path) -> None:
    crash = request(PYTHON, "-c", "import ctypes; ctypes.string_at(0)")
    async with await Spawner.start() as spawner:
        status, _ = await run(spawner, crash, tmp_path / "log")
    # No core: jobs inherit the spawner's RLIMIT_CORE, 0 here (see jobinit_test.py).
    assert status == ExitStatus(None, signal.SIGSEGV, False, *dataclass_tail(status))


def dataclass_tail(status: ExitStatus) -> tuple[float, float, int]:
    return status.user_seconds, status.system_seconds, status.max_rss_kib


async def test_sigkill_ends_job_and_later_kills_are_not_delivered(tmp_path: Path) -> None:
    async with await Spawner.start() as spawner:
        fd = open_log(tmp_path / "log")
        pid = await spawner.spawn(request("/bin/sleep", "1000"), fd)
        os.close(fd)
        assert await spawner.kill(pid, signal.SIGKILL)
        status = await spawner.wait(pid)
        assert not await spawner.kill(pid, signal.SIGKILL)
        with pytest.raises(ValueError, match="not an unwaited job"):
            await spawner.wait(pid)
    assert (status.exit_code, status.signal) == (None, signal.SIGKILL)


async def test_sigterm_reaches_a_handler_and_ends_a_program_without_one(tmp_path: Path) -> None:
    handler = (
        "import signal, sys, time\n"
        "signal.signal(signal.SIGTERM, lambda *_: (print('term', flush=True), sys.exit(7)))\n"
        "print('ready', flush=True)\n"
        "time.sleep(1000)\n"
    )
    async with await Spawner.start() as spawner:
        fd = open_log(tmp_path / "log")
        with_handler = await spawner.spawn(request(PYTHON, "-c", handler), fd)
        without = await spawner.spawn(request("/bin/sleep", "1000"), fd)
        os.close(fd)
        await wait_for_text(tmp_path / "log", "ready")
        assert await spawner.kill(with_handler, signal.SIGTERM)
        assert (await spawner.wait(with_handler)).exit_code == 7
        # jobinit is PID 1 and forwards the signal: the program is an ordinary process, so
        # SIGTERM's default action ends it (pid_namespaces(7) exempts only the init).
        assert await spawner.kill(without, signal.SIGTERM)
        assert (await spawner.wait(without)).signal == signal.SIGTERM
    assert "term" in small_text(tmp_path / "log")


@pytest.mark.parametrize(
    ("argv", "cwd", "step", "err", "named"),
    [
        (("nosuchbinary",), "/", "exec", errno.ENOENT, "'nosuchbinary'"),
        (("/no/such/binary",), "/", "exec", errno.ENOENT, "'/no/such/binary'"),
        (("/etc/passwd",), "/", "exec", errno.EACCES, "'/etc/passwd'"),
        (("/bin/true",), "/no/such/dir", "chdir", errno.ENOENT, "'/no/such/dir'"),
        (("/bin/true",), "/root", "chdir", errno.EACCES, "'/root'"),  # 0700: not for nobody.
    ],
)
async def test_start_failure_names_step_errno_and_path(
    argv: tuple[str, ...], cwd: str, step: str, err: int, named: str
) -> None:
    async with await Spawner.start() as spawner:
        with pytest.raises(StartFailed) as failure:
            await spawner.spawn(request(*argv, cwd=cwd), 1)
        # Nothing of the job is left: the spawner has no child.
        assert await until(lambda: not children_of(spawner.pid), 10)
        assert spawner.alive
    assert (failure.value.step, failure.value.errno) == (step, err)
    assert named in str(failure.value)
    assert str(failure.value).startswith(f"start failed at {step}: ")


async def test_cgroup_join_failure_fails_the_start() -> None:
    async with await Spawner.start() as spawner:
        with pytest.raises(StartFailed) as failure:
            await spawner.spawn(request("/bin/true", cgroup_procs=("/no/cgroup.procs",)), 1)
    assert (failure.value.step, failure.value.errno) == ("cgroup", errno.ENOENT)
    assert "/no/cgroup.procs" in str(failure.value)


async def test_concurrent_spawns_from_many_tasks(tmp_path: Path) -> None:
    async def one(i: int) -> tuple[ExitStatus, str]:
        job = request("/bin/sh", "-c", f"echo $$ {i}; exit {i % 7}")
        return await run(spawner, job, tmp_path / f"log{i}")

    async with await Spawner.start() as spawner:
        results = await asyncio.gather(*(one(i) for i in range(40)))
    for i, (status, output) in enumerate(results):
        assert status.exit_code == i % 7
        # Each job has its own namespace, where jobinit is PID 1 and the program its child.
        assert output == f"2 {i}\n"


async def test_large_environment_and_non_ascii_pass_through(tmp_path: Path) -> None:
    big = "x" * 100_000
    job = request(PYTHON, "-c", "import os, sys; print(len(os.environ['BIG']), sys.argv[1])", "é✓")
    job = type(job)(job.argv, {**job.env, "BIG": big}, job.cwd, job.uid, job.gid, ())
    async with await Spawner.start() as spawner:
        status, output = await run(spawner, job, tmp_path / "log")
    assert status.exit_code == 0
    assert output == "100000 é✓\n"


async def test_spawner_killed_fails_waits_and_takes_jobs_with_it(tmp_path: Path) -> None:
    async with await Spawner.start() as spawner:
        fd = open_log(tmp_path / "log")
        pids = [await spawner.spawn(request("/bin/sleep", "1000"), fd) for _ in range(3)]
        os.close(fd)
        assert await until(lambda: len(children_of(spawner.pid)) == 3, 10)
        family = children_of(spawner.pid)
        os.kill(spawner.pid, signal.SIGKILL)
        for pid in pids:
            with pytest.raises(SpawnerLost, match="killed by SIGKILL"):
                await spawner.wait(pid)
        assert not spawner.alive
        with pytest.raises(SpawnerLost):
            await spawner.spawn(request("/bin/true"), 1)
        # PDEATHSIG on each job's init, which takes its namespace down with it.
        assert await until(lambda: not any(is_alive(p) for p in family | set(pids)), 5)


async def test_aclose_kills_running_jobs_and_is_idempotent(tmp_path: Path) -> None:
    spawner = await Spawner.start()
    fd = open_log(tmp_path / "log")
    pid = await spawner.spawn(request("/bin/sleep", "1000"), fd)
    os.close(fd)
    waiter = asyncio.create_task(spawner.wait(pid))
    await asyncio.gather(spawner.aclose(), spawner.aclose())
    await spawner.aclose()
    with pytest.raises(SpawnerLost):
        await waiter
    assert not is_alive(pid)


async def test_cancelled_spawns_leave_no_job(tmp_path: Path) -> None:
    async with await Spawner.start() as spawner:
        fd = open_log(tmp_path / "log")
        for delay in (0, 0.001, 0.003, 0.01):
            task = asyncio.create_task(spawner.spawn(request("/bin/sleep", "1000"), fd))
            await asyncio.sleep(delay)
            task.cancel()
            (outcome,) = await asyncio.gather(task, return_exceptions=True)
            if isinstance(outcome, int):  # Started before the cancel: not this test's case.
                await spawner.kill(outcome, signal.SIGKILL)
                await spawner.wait(outcome)
        os.close(fd)
        assert await until(lambda: not children_of(spawner.pid), 10)
        assert spawner.alive


async def test_spawner_is_single_threaded_with_null_stdio() -> None:
    async with await Spawner.start() as spawner:
        status = small_text(Path(f"/proc/{spawner.pid}/status"))
        stdio = [os.readlink(f"/proc/{spawner.pid}/fd/{fd}") for fd in (0, 1, 2)]
    assert "\nThreads:\t1\n" in status
    assert stdio == ["/dev/null"] * 3


async def test_invalid_signal_is_rejected() -> None:
    async with await Spawner.start() as spawner:
        with pytest.raises(ValueError):
            await spawner.kill(1, 12345)


async def test_spawner_keeps_no_fd_per_job(tmp_path: Path) -> None:
    async with await Spawner.start() as spawner:
        await run(spawner, request("/bin/true"), tmp_path / "warmup")
        before = len(os.listdir(f"/proc/{spawner.pid}/fd"))
        for i in range(20):
            await run(spawner, request("/bin/true"), tmp_path / f"log{i}")
        with pytest.raises(StartFailed):
            await spawner.spawn(request("nosuchbinary"), 1)
        after = len(os.listdir(f"/proc/{spawner.pid}/fd"))
    assert after == before, f"spawner fds went from {before} to {after} over 21 jobs"


@pytest.fixture(name="cgroup")
def _cgroup() -> Iterator[Path]:
    with scratch_cgroup("spawner-test") as path:
        yield path


async def test_job_is_in_its_cgroup_from_the_start(tmp_path: Path, cgroup: Path) -> None:
    # The job's cgroup namespace was made by B once it had joined the cgroup, before it
    # exec'd anything: so the program's first read of /proc/self/cgroup shows the namespace's
    # root, "/", in every hierarchy; the host sees the same processes in the cgroup.
    script = "cat /proc/self/cgroup; echo done; exec sleep 1000"
    job = request("/bin/sh", "-c", script, cgroup_procs=(str(cgroup / "cgroup.procs"),))
    async with await Spawner.start() as spawner:
        fd = open_log(tmp_path / "log")
        pid = await spawner.spawn(job, fd)
        os.close(fd)
        await wait_for_text(tmp_path / "log", "done\n")
        assert await until(lambda: len(procs_of(cgroup)) == 2, 30)  # jobinit and sleep.
        members = procs_of(cgroup)
        await spawner.kill(pid, signal.SIGKILL)
        await spawner.wait(pid)
    assert pid in members
    *lines, done_line = small_text(tmp_path / "log").splitlines()
    assert done_line == "done"
    assert lines and all(line.endswith(":/") for line in lines), lines


async def test_jobinit_takes_one_pid_of_the_limit(tmp_path: Path, cgroup: Path) -> None:
    if not (cgroup / "pids.max").exists():
        pytest.skip("no pids controller in this hierarchy")
    procs = (str(cgroup / "cgroup.procs"),)
    async with await Spawner.start() as spawner:
        (cgroup / "pids.max").write_text("1")
        with pytest.raises(StartFailed) as failure:
            await spawner.spawn(request("/bin/true", cgroup_procs=procs), 1)
        (cgroup / "pids.max").write_text("2")
        alone, _ = await run(spawner, request("/bin/true", cgroup_procs=procs), tmp_path / "a")
        forking, output = await run(
            spawner, request("/bin/sh", "-c", "/bin/true", cgroup_procs=procs), tmp_path / "b"
        )
    # jobinit cannot fork the program: the start fails and says why.
    assert (failure.value.step, failure.value.errno) == ("fork", errno.EAGAIN)
    assert alone.exit_code == 0
    assert forking.exit_code != 0, output  # The kernel refuses the third process.
