"""jobctl's commands in-process against the API's in-memory backend over real mTLS.

In-process runs let the shared leak check see jobctl's own tasks, threads and fds; the
end-to-end tests in tests/ cover the real daemon and the process boundary.
"""

from __future__ import annotations

from api import tls_policy

# The daemon under test runs in this process, and grpc reads its cipher list at import.
tls_policy.forbid_tls12()

import asyncio  # noqa: E402
import contextlib  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
from collections.abc import AsyncIterator, Callable, Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from api.testing_daemon import RunningDaemon, module_pki, running_daemon  # noqa: E402
from api.testing_fake_manager import FakeJobManager  # noqa: E402
from cli import dispatch, parser  # noqa: E402
from cli.commands import Streams  # noqa: E402
from cli.connection import Settings  # noqa: E402
from cli.errors import CliError  # noqa: E402
from worker.limits import Limits  # noqa: E402
from worker.spec import JobSpec  # noqa: E402
from worker.status import StopReason  # noqa: E402

# Bounds a wait for the command under test to reach a state; never a pass/fail timing.
_WAIT = 30.0


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with module_pki(tmp_path_factory.mktemp("pki")) as directory:
        yield directory


@contextlib.asynccontextmanager
async def serving(pki_dir: Path) -> AsyncIterator[tuple[RunningDaemon, FakeJobManager]]:
    manager = FakeJobManager(max_limits=Limits(cpu=2.0))
    async with running_daemon(manager, pki_dir) as daemon:
        try:
            yield daemon, manager
        finally:
            await manager.aclose()


def settings(pki_dir: Path, addr: str, user: str = "alice", timeout: float = 5.0) -> Settings:
    return Settings(
        addr=addr,
        ca=pki_dir / "ca.crt",
        cert=pki_dir / f"{user}.crt",
        key=pki_dir / f"{user}.key",
        connect_timeout=timeout,
        rpc_timeout=timeout,
    )


async def jobctl(
    pki_dir: Path, addr: str, *argv: str, user: str = "alice"
) -> tuple[int, bytes, str]:
    """Runs one command; returns (exit code, stdout, stderr) with CliError as exit 1."""
    out, err = io.BytesIO(), io.StringIO()
    args = parser.parse(["jobctl", *argv])
    try:
        code = await dispatch.execute(args, settings(pki_dir, addr, user), Streams(out, err))
    except CliError as error:
        return 1, out.getvalue(), f"jobctl: {error}\n"
    return code, out.getvalue(), err.getvalue()


async def until(condition: Callable[[], bool]) -> None:
    # The fake backend offers counters, not events, for "a reader is attached".
    async with asyncio.timeout(_WAIT):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


async def test_start_status_list_stop(pki_dir: Path) -> None:
    async with serving(pki_dir) as (daemon, manager):
        code, out, _ = await jobctl(
            pki_dir, daemon.address, "start", "--cpu", "0.5", "--", "/bin/echo", "hi"
        )
        assert code == 0
        job_id = out.decode().strip()
        assert [spec.argv for spec in manager.started] == [("/bin/echo", "hi")]
        assert manager.started[0].limits.cpu == 0.5

        code, out, _ = await jobctl(pki_dir, daemon.address, "status", "-o", "json", job_id)
        assert (code, json.loads(out)["state"]) == (0, "running")

        code, out, _ = await jobctl(pki_dir, daemon.address, "list")
        assert code == 0 and job_id in out.decode()

        code, out, _ = await jobctl(pki_dir, daemon.address, "stop", "-o", "json", job_id)
        stopped = json.loads(out)
        assert (code, stopped["state"], stopped["signal"]) == (0, "stopped", signal.SIGTERM)


async def test_logs_copies_bytes_and_exits_with_the_job_code(pki_dir: Path) -> None:
    payload = bytes(range(256)) * 1000
    async with serving(pki_dir) as (daemon, manager):
        job_id = (await manager.start(JobSpec(argv=("/bin/true",), owner="alice"))).job_id
        await manager.append(job_id, payload)
        follower = asyncio.create_task(jobctl(pki_dir, daemon.address, "logs", "-f", job_id))
        await until(lambda: manager.open_readers == 1)
        await manager.append(job_id, b"tail")
        await manager.finish(job_id, exit_code=3)
        code, out, err = await follower
    assert (code, out, err) == (3, payload + b"tail", "")


@pytest.mark.parametrize(("exit_code", "expected"), [(0, 0), (3, 3), (None, 128 + 15)])
async def test_run_exits_as_the_job_did(
    pki_dir: Path, exit_code: int | None, expected: int
) -> None:
    async with serving(pki_dir) as (daemon, manager):
        runner = asyncio.create_task(jobctl(pki_dir, daemon.address, "run", "--", "/bin/x"))
        await until(lambda: manager.open_readers == 1)
        (job,) = await manager.list()
        job_id = job.job_id
        await manager.append(job_id, b"live")
        await manager.finish(job_id, exit_code=exit_code)
        code, out, err = await runner
    assert (code, out) == (expected, b"live")
    assert ("killed by SIGTERM" in err) == (exit_code is None)


async def test_run_ctrl_c_stops_the_job(pki_dir: Path) -> None:
    async with serving(pki_dir) as (daemon, manager):
        runner = asyncio.create_task(jobctl(pki_dir, daemon.address, "run", "--", "/bin/x"))
        # The reader opens after run installed its SIGINT handler.
        await until(lambda: manager.open_readers == 1)
        os.kill(os.getpid(), signal.SIGINT)
        code, _, err = await runner
        (job,) = await manager.list()
    assert code == 128 + signal.SIGTERM
    assert job.stop_reason is StopReason.REQUESTED
    assert "stopping job" in err
    # run restored the default handler, so a later Ctrl-C is the runner's again.
    assert signal.getsignal(signal.SIGINT) is not signal.SIG_IGN


async def test_other_users_job_is_not_found(pki_dir: Path) -> None:
    async with serving(pki_dir) as (daemon, manager):
        job_id = (await manager.start(JobSpec(argv=("/bin/true",), owner="alice"))).job_id
        for command in ("status", "logs", "stop"):
            code, _, err = await jobctl(pki_dir, daemon.address, command, job_id, user="bob")
            assert (code, err) == (1, f"jobctl: job not found: {job_id}\n")


async def test_invalid_limit_names_the_field(pki_dir: Path) -> None:
    async with serving(pki_dir) as (daemon, _):
        code, _, err = await jobctl(pki_dir, daemon.address, "start", "--cpu", "64", "--", "x")
    assert code == 1
    assert err.startswith("jobctl: invalid argument: limits.cpu")


async def test_refused_connection_is_one_line(pki_dir: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        addr = f"127.0.0.1:{probe.getsockname()[1]}"
    code, _, err = await jobctl(pki_dir, addr, "list")
    assert (code, err) == (1, f"jobctl: cannot connect to {addr}: connection refused\n")


async def test_unreadable_certificate_is_reported(pki_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(CliError, match=r"cannot read the client certificate .*nope\.crt"):
        args = parser.parse(["jobctl", "list"])
        broken = Settings(
            "127.0.0.1:1",
            pki_dir / "ca.crt",
            tmp_path / "nope.crt",
            pki_dir / "alice.key",
            1.0,
            1.0,
        )
        await dispatch.execute(args, broken, Streams(io.BytesIO(), io.StringIO()))
