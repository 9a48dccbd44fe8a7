"""jobinit as PID 1 of a job: true statuses, signals, STOP, its own privileges and memory."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from worker.spawner import Spawner
from worker.testing_spawner import (
    NOBODY,
    PYTHON,
    children_of,
    open_log,
    request,
    run,
    small_text,
    until,
    wait_for_text,
)

pytestmark = pytest.mark.kernel


def _state(pid: int) -> str:
    """The one-letter state of a process (proc(5), /proc/pid/stat), or "" once it is gone."""
    fields = small_text(Path(f"/proc/{pid}/stat")).rpartition(")")[2].split()
    return fields[0] if fields else ""


@pytest.mark.parametrize("allow_core", [False, True])
async def test_abort_is_sigabrt_with_the_true_core_flag(tmp_path: Path, allow_core: bool) -> None:
    # glibc's abort() raises SIGABRT; a program that is PID 1 has it dropped and faults.
    # With core_pattern "core" (core(5)) the kernel writes the dump into the cwd, here the
    # job's private /tmp, which is gone with the job.
    limit = "unlimited" if allow_core else "0"
    script = f"ulimit -c {limit}; exec {PYTHON} -c 'import os; os.abort()'"
    async with await Spawner.start() as spawner:
        status, _ = await run(
            spawner, request("/bin/sh", "-c", script, cwd="/tmp"), tmp_path / "log"
        )
    assert (status.exit_code, status.signal) == (None, signal.SIGABRT)
    assert status.core_dumped is allow_core


@pytest.mark.parametrize(("sig", "expected"), [("TERM", signal.SIGTERM), ("SEGV", signal.SIGSEGV)])
async def test_a_program_can_kill_itself_with_a_signal(
    tmp_path: Path, sig: str, expected: int
) -> None:
    async with await Spawner.start() as spawner:
        status, _ = await run(
            spawner, request("/bin/sh", "-c", f"kill -{sig} $$"), tmp_path / "log"
        )
    assert (status.exit_code, status.signal) == (None, expected)


async def test_stop_and_cont_reach_the_program_not_jobinit(tmp_path: Path) -> None:
    async with await Spawner.start() as spawner:
        fd = open_log(tmp_path / "log")
        init = await spawner.spawn(request("/bin/sleep", "1000"), fd)
        os.close(fd)
        (program,) = children_of(init)
        assert await spawner.kill(init, signal.SIGSTOP)
        assert await until(lambda: _state(program) == "T", 10)
        assert _state(init) == "S"  # Waiting for signals, not stopped.
        assert await spawner.kill(init, signal.SIGCONT)
        assert await until(lambda: _state(program) == "S", 10)
        assert await spawner.kill(init, signal.SIGKILL)
        assert (await spawner.wait(init)).signal == signal.SIGKILL


_PROBE_INIT = """
import ctypes, errno, json, os
libc = ctypes.CDLL(None, use_errno=True)
out = {"pid": os.getpid(), "ppid": os.getppid()}
try:
    os.listdir("/proc/1/fd")
    out["fds"] = "listed"
except PermissionError:
    out["fds"] = "denied"
PTRACE_ATTACH = 16
out["ptrace"] = 0 if libc.ptrace(PTRACE_ATTACH, 1, None, None) == 0 else ctypes.get_errno()
status = dict(l.split(":\\t") for l in open("/proc/1/status").read().splitlines())
out["uid"] = status["Uid"].split()[0]
out["nnp"] = status["NoNewPrivs"]
print(json.dumps(out))
"""


async def test_jobinit_is_unprivileged_undumpable_and_holds_only_its_report_pipe(
    tmp_path: Path,
) -> None:
    async with await Spawner.start() as spawner:
        fd = open_log(tmp_path / "log")
        init = await spawner.spawn(request("/bin/sleep", "1000"), fd)
        os.close(fd)
        fds = {int(n): os.readlink(f"/proc/{init}/fd/{n}") for n in os.listdir(f"/proc/{init}/fd")}
        rss_kib = int(small_text(Path(f"/proc/{init}/status")).split("VmRSS:")[1].split()[0])
        await spawner.kill(init, signal.SIGKILL)
        await spawner.wait(init)
        status, output = await run(spawner, request(PYTHON, "-c", _PROBE_INIT), tmp_path / "probe")
    assert list(fds) == [3] and fds[3].startswith("pipe:")
    # The job (same uid) cannot reach jobinit's report pipe, nor trace it to forge a report.
    assert json.loads(output) == {
        "pid": 2,
        "ppid": 1,
        "fds": "denied",
        "ptrace": 1,  # EPERM
        "uid": str(NOBODY),
        "nnp": "1",
    }, output
    assert status.exit_code == 0
    assert rss_kib <= 256  # Paid once per running job (the bound).


# Says which signal it got: USR1 and carries on, HUP and exits 5.
_HANDLER = """
import os, signal, sys, time
# os.write: a handler that print()s while "ready" is still being printed fails reentrant.
signal.signal(signal.SIGUSR1, lambda *_: os.write(1, b"usr1\\n"))
signal.signal(signal.SIGHUP, lambda *_: (os.write(1, b"hup\\n"), sys.exit(5)))
print("ready", flush=True)
while True:
    time.sleep(1)
"""


async def test_signals_sent_to_jobinit_are_forwarded(tmp_path: Path) -> None:
    async with await Spawner.start() as spawner:
        fd = open_log(tmp_path / "log")
        init = await spawner.spawn(request(PYTHON, "-c", _HANDLER), fd)
        os.close(fd)
        await wait_for_text(tmp_path / "log", "ready")
        # As an administrator on the host would: a plain kill(2) of PID 1.
        os.kill(init, signal.SIGUSR1)
        await wait_for_text(tmp_path / "log", "usr1")
        os.kill(init, signal.SIGHUP)
        status = await spawner.wait(init)
    assert status.exit_code == 5
    assert small_text(tmp_path / "log") == "ready\nusr1\nhup\n"
