"""The job's world, probed from inside a job as a hostile program would: files, /dev, names.

The seccomp filter and the namespaces are probed in job_confinement_test.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from worker.config import JobWorld, ManagerConfig
from worker.errors import StartFailed
from worker.job_root import DEVICES
from worker.manager import JobManager
from worker.spawner import Spawner
from worker.testing_manager import job, read_all
from worker.testing_spawner import (
    PYTHON,
    children_of,
    open_log,
    request,
    run,
    small_text,
    wait_for_text,
)

pytestmark = pytest.mark.kernel


async def _probe(code: str, log: Path, *args: str, world: JobWorld | None = None) -> object:
    """Runs Python ``code`` in a job and returns the JSON it printed."""
    async with await Spawner.start(world=world) as spawner:
        status, output = await run(spawner, request(PYTHON, "-c", code, *args), log)
    assert status.exit_code == 0, output
    return json.loads(output)


@contextlib.contextmanager
def _host_dir() -> Iterator[Path]:
    """A world-readable directory the job's root shows (the job's /tmp is its own)."""
    path = Path("/var/lib") / f"jobworker-world-test-{os.getpid()}"
    path.mkdir(mode=0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path)


_WRITES = """
import json, os, sys
result = {}
for directory in sys.argv[1:]:
    try:
        with open(os.path.join(directory, "intruder"), "w") as f:
            f.write("x")
        result[directory] = "written"
    except OSError as err:
        result[directory] = err.errno
print(json.dumps(result))
"""


async def test_only_the_private_tmpfs_is_writable(tmp_path: Path) -> None:
    denied = ["/", "/etc", "/usr", "/var", "/var/lib", "/home", "/root", "/run", "/opt", "/srv"]
    private = ["/tmp", "/var/tmp", "/dev/shm"]
    seen = await _probe(_WRITES, tmp_path / "log", *denied, *private)
    assert isinstance(seen, dict)
    # EROFS where the job may write by its mode bits; EACCES or ENOENT where not even that.
    assert {d: seen[d] for d in denied if seen[d] not in (30, 13, 2)} == {}
    assert {d: seen[d] for d in private} == dict.fromkeys(private, "written")


async def test_tmp_is_private_and_gone_with_the_job(tmp_path: Path) -> None:
    name = f"secret-{os.getpid()}"
    writer = f"echo kept > /tmp/{name}; echo kept > /dev/shm/{name}; echo ready; exec sleep 1000"
    async with await Spawner.start() as spawner:
        fd = open_log(tmp_path / "writer")
        init = await spawner.spawn(request("/bin/sh", "-c", writer), fd)
        os.close(fd)
        await wait_for_text(tmp_path / "writer", "ready")
        (program,) = children_of(init)
        inside, on_host = _seen_from_host(program, name)
        # Another job at the same time has its own.
        _, listing = await run(
            spawner, request("/bin/ls", "-A", "/tmp", "/dev/shm"), tmp_path / "l"
        )
        await spawner.kill(init, signal.SIGKILL)
        await spawner.wait(init)
    assert inside == "kept\n"
    assert on_host == [False, False]
    assert listing == "/dev/shm:\n\n/tmp:\n"
    # Its mount namespace ended with its last process: nothing holds the tmpfs any more.
    assert _seen_from_host(program, name) == ("", [False, False])


def _seen_from_host(program: int, name: str) -> tuple[str, list[bool]]:
    """The file as the job's root holds it, and whether the host's /tmp and /dev/shm do."""
    inside = small_text(Path(f"/proc/{program}/root/tmp/{name}"))
    return inside, [Path(f"/tmp/{name}").exists(), Path(f"/dev/shm/{name}").exists()]


_READS = """
import json, os, sys
result = {}
for path in sys.argv[1:]:
    result[path] = sorted(os.listdir(path)) if os.path.isdir(path) else open(path).read()
print(json.dumps(result))
"""


async def test_hidden_paths_read_as_empty_even_when_world_readable(tmp_path: Path) -> None:
    with _host_dir() as host:
        secret_dir, secret_file, plain = host / "keys", host / "token", host / "plain"
        secret_dir.mkdir(mode=0o755)
        (secret_dir / "server.key").write_text("secret")
        for path in (secret_file, plain, secret_dir / "server.key"):
            path.write_text("secret")
            path.chmod(0o644)
        world = JobWorld(hidden=(str(secret_dir), str(secret_file), "/no/such/path"))
        args = (str(secret_dir), str(secret_file), str(plain))
        seen = await _probe(_READS, tmp_path / "log", *args, world=world)
    # The control: a path not hidden is readable, so the job could have read the others.
    assert seen == {str(secret_dir): [], str(secret_file): "", str(plain): "secret"}


_DEVICES = """
import json, os
nodes = {}
for name in sorted(os.listdir("/dev")):
    st = os.lstat(f"/dev/{name}")
    nodes[name] = [os.major(st.st_rdev), os.minor(st.st_rdev)] if st.st_rdev else None
with open("/dev/null", "w") as null, open("/dev/zero", "rb") as zero:
    null.write("discarded")
    nodes["zeros"] = zero.read(4).hex()
print(json.dumps(nodes))
"""


async def test_dev_holds_only_the_listed_nodes(tmp_path: Path) -> None:
    seen = await _probe(_DEVICES, tmp_path / "log")
    expected: dict[str, object] = {name: [major, minor] for name, major, minor in DEVICES}
    expected |= dict.fromkeys(("fd", "shm", "stderr", "stdin", "stdout"), None)
    assert seen == {**expected, "zeros": "00000000"}


async def test_cwd_is_entered_in_the_jobs_root(tmp_path: Path) -> None:
    async with await Spawner.start() as spawner:
        inside, output = await run(spawner, request("/bin/pwd", cwd="/var/tmp"), tmp_path / "a")
        # tmp_path exists on the host, under /tmp: the job's /tmp is its own, without it.
        with pytest.raises(StartFailed, match=r"^start failed at chdir: no such file"):
            await run(spawner, request("/bin/true", cwd=str(tmp_path)), tmp_path / "b")
    assert (inside.exit_code, output) == (0, "/var/tmp\n")
    assert small_text(tmp_path / "b") == ""


async def test_the_managers_data_directory_is_hidden_from_its_jobs(tmp_path: Path) -> None:
    with _host_dir() as host:
        data = host / "data"
        async with JobManager(ManagerConfig(data_dir=data)) as manager:
            # Made world-readable, as by mistake: the logs of every job are in there.
            data.chmod(0o755)
            (data / "logs").chmod(0o755)
            started = await manager.start(job(PYTHON, "-c", _READS, str(data)))
            await manager.wait(started.job_id)
            output = await read_all(manager, started.job_id)
            on_host = os.listdir(data)
    assert "logs" in on_host  # The control: there is something to hide.
    assert json.loads(output) == {str(data): []}
