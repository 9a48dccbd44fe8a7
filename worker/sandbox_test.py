"""Isolation of jobs, observed from inside the job and from the host."""

import asyncio
import json
import os
import signal
import socket
import sys
from pathlib import Path

import pytest

from worker.spawner import Spawner
from worker.testing_spawner import (
    NOBODY,
    PYTHON,
    children_of,
    is_alive,
    open_log,
    pid_namespace,
    processes_in,
    request,
    run,
    small_text,
    until,
    wait_for_text,
)

pytestmark = pytest.mark.kernel


async def run_python(code: str, log: Path, *args: str) -> object:
    """Runs ``code`` in a job with /usr/bin/python3; it prints one JSON object."""
    async with await Spawner.start() as spawner:
        status, output = await run(spawner, request(PYTHON, "-I", "-c", code, *args), log)
    assert status.exit_code == 0, output
    return json.loads(output)


async def test_proc_shows_only_the_job(tmp_path: Path) -> None:
    code = """
import json, os
pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
cmdline = open("/proc/1/cmdline").read().split("\\0")[:2]
print(json.dumps({"pids": pids, "cmdline": cmdline, "self": os.getpid()}))
"""
    seen = await run_python(code, tmp_path / "log")
    # jobinit (worker/init/) is PID 1 and the program its child: nothing else is visible.
    assert seen == {"pids": [1, 2], "cmdline": ["jobinit", PYTHON], "self": 2}


async def test_network_has_only_lo_and_it_is_up(tmp_path: Path) -> None:
    code = (
        "import json, os\n"
        "print(json.dumps({'links': sorted(os.listdir('/sys/class/net')),"
        " 'flags': int(open('/sys/class/net/lo/flags').read(), 16)}))"
    )
    seen = await run_python(code, tmp_path / "log")
    assert isinstance(seen, dict)
    assert seen["links"] == ["lo"]
    assert seen["flags"] & 0x1, "IFF_UP"


async def test_host_loopback_is_unreachable_but_own_loopback_works(tmp_path: Path) -> None:
    code = (
        "import json, socket, sys\n"
        "out = {}\n"
        "try:\n"
        "    socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=5)\n"
        "    out['host'] = 'connected'\n"
        "except OSError as e:\n"
        "    out['host'] = e.errno\n"
        "server = socket.create_server(('127.0.0.1', 0))\n"
        "client = socket.create_connection(server.getsockname(), timeout=5)\n"
        "conn, _ = server.accept()\n"
        "client.sendall(b'ping')\n"
        "out['own'] = conn.recv(4).decode()\n"
        "try:\n"
        "    socket.create_connection(('192.0.2.1', 80), timeout=5)\n"
        "except OSError as e:\n"
        "    out['outside'] = e.errno\n"
        "print(json.dumps(out))\n"
    )
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.setblocking(False)
        port = listener.getsockname()[1]
        seen = await run_python(code, tmp_path / "log", str(port))
        try:
            listener.accept()[0].close()
            accepted = True
        except BlockingIOError:
            accepted = False
    assert seen == {"host": 111, "own": "ping", "outside": 101}  # ECONNREFUSED, ENETUNREACH.
    assert not accepted


async def test_job_is_unprivileged_and_cannot_write_daemon_files(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    source = Path(__file__).parent
    code = (
        "import ctypes, json, os, sys\n"
        "out = {'uid': os.getuid(), 'gid': os.getgid(), 'groups': os.getgroups()}\n"
        "status = dict(l.split(':\\t') for l in open('/proc/self/status').read().splitlines())\n"
        "out['no_new_privs'] = status['NoNewPrivs']\n"
        "out['cap_eff'] = status['CapEff']\n"
        "for name in sys.argv[1:]:\n"
        "    try:\n"
        "        open(os.path.join(name, 'intruder'), 'w')\n"
        "        out[name] = 'written'\n"
        "    except OSError as e:\n"
        "        out[name] = e.errno\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "libc.mount(None, b'/', None, 1 << 5 | 1, None)\n"  # MS_REMOUNT | MS_RDONLY
        "out['remount'] = ctypes.get_errno()\n"
        "print(json.dumps(out))\n"
    )
    seen = await run_python(code, tmp_path / "log", str(data), str(source))
    assert seen == {
        "uid": NOBODY,
        "gid": NOBODY,
        "groups": [],
        "no_new_privs": "1",
        "cap_eff": "0000000000000000",
        str(data): 2,  # ENOENT: under /tmp, and the job's /tmp is its own.
        str(source): 13,  # EACCES: under /root, which nobody may not search.
        "remount": 1,  # EPERM
    }
    assert list(data.iterdir()) == []


async def test_only_stdio_fds_reach_the_job(tmp_path: Path) -> None:
    code = (
        "import json, os\n"
        "names = os.listdir('/proc/self/fd')\n"  # Includes the fd of this very listing...
        "print(json.dumps(sorted(int(n) for n in names if os.path.exists(f'/proc/self/fd/{n}'))))"
    )  # ...which is closed again by the time it is checked.
    assert await run_python(code, tmp_path / "log") == [0, 1, 2]
    async with await Spawner.start() as spawner:
        fd = open_log(tmp_path / "sleep")
        pid = await spawner.spawn(request("/bin/sleep", "1000"), fd)
        os.close(fd)
        (program,) = children_of(pid)  # jobinit's own fds: jobinit_test.py.

        def fds() -> list[int]:
            return sorted(int(n) for n in os.listdir(f"/proc/{program}/fd"))

        # Until sleep's own start-up has closed what it opened (ld.so opens libc).
        await until(lambda: fds() == [0, 1, 2], 10)
        seen_from_host = fds()
        stdin = os.readlink(f"/proc/{program}/fd/0")
        await spawner.kill(pid, signal.SIGKILL)
        await spawner.wait(pid)
    assert seen_from_host == [0, 1, 2]
    assert stdin == "/dev/null"


async def test_host_mount_table_unchanged_after_100_jobs(tmp_path: Path) -> None:
    before = small_text(Path("/proc/self/mountinfo"))
    async with await Spawner.start() as spawner:
        for batch in range(10):
            results = await asyncio.gather(
                *(
                    run(spawner, request("/bin/true"), tmp_path / f"log{batch}-{i}")
                    for i in range(10)
                )
            )
            assert all(status.exit_code == 0 for status, _ in results)
    assert small_text(Path("/proc/self/mountinfo")) == before


# A program may clear its own parent-death signal (prctl(2) allows any process to); jobinit
# holds the one that matters, and the spawner kills the jobs itself when the daemon dies.
_CLEARS_PDEATHSIG = (
    "import ctypes, os, time\n"
    "ctypes.CDLL(None).prctl(1, 0)  # PR_SET_PDEATHSIG, 0\n"
    "if os.fork() == 0:\n"
    "    time.sleep(1000)\n"
    "time.sleep(1000)\n"
)


@pytest.mark.parametrize(
    ("job", "processes"),
    [
        # Counted with jobinit, PID 1 of each job.
        (("/bin/sh", "-c", "sleep 1000 & sleep 1000 & echo started; exec sleep 1000"), 4),
        (("/usr/bin/python3", "-c", _CLEARS_PDEATHSIG), 3),
    ],
    ids=["plain", "job-clears-pdeathsig"],
)
async def test_sigkill_of_the_daemon_kills_every_job_process(
    tmp_path: Path, job: tuple[str, ...], processes: int
) -> None:
    daemon = await asyncio.create_subprocess_exec(
        *(sys.executable, "-c", "from worker.testing_spawner import daemon_main; daemon_main()"),
        *job,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        assert daemon.stdout is not None
        async with asyncio.timeout(30):
            pid = int(await daemon.stdout.readline())
            namespace = pid_namespace(pid)
            # The job is running, and its children as well.
            assert await until(lambda: len(processes_in(namespace)) == processes, 30)
    finally:
        daemon.kill()
        await daemon.wait()
    # The spawner sees its socket's EOF and SIGKILLs each job's init, which ends the whole
    # PID namespace; the init's own PDEATHSIG is the backstop if the spawner dies too.
    # 5-18 ms on the host; the bound allows for the TCG VM, ~17x slower.
    assert await until(lambda: not processes_in(namespace), 10)
    assert not is_alive(pid)


async def test_output_reaches_the_log_in_write_order(tmp_path: Path) -> None:
    job = request("/bin/sh", "-c", "echo out; echo err >&2; echo out2")
    async with await Spawner.start() as spawner:
        status, output = await run(spawner, job, tmp_path / "log")
    assert status.exit_code == 0
    assert output == "out\nerr\nout2\n"


async def test_job_waits_for_its_output_reader_not_the_daemon(tmp_path: Path) -> None:
    # The log is opened by the daemon and handed over: the job writes it as nobody even
    # though the file is root's and mode 0600.
    log = tmp_path / "log"
    log.touch(mode=0o600)
    async with await Spawner.start() as spawner:
        fd = open_log(log)
        pid = await spawner.spawn(request("/bin/sh", "-c", "echo hello; sleep 1000"), fd)
        os.close(fd)
        await wait_for_text(log, "hello")
        await spawner.kill(pid, signal.SIGKILL)
        assert (await spawner.wait(pid)).signal == signal.SIGKILL
