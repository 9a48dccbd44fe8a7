"""The daemon on the real JobManager: real jobs (as uid 65534) over loopback mTLS.

Needs root (cgroups, namespaces, another uid): Bazel tag "local".
"""

from __future__ import annotations

from api import tls_policy

# The daemon under test runs in this process, and grpc reads its cipher list at import.
tls_policy.forbid_tls12()

import asyncio  # noqa: E402
import contextlib  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
from collections.abc import AsyncIterator, Iterator  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import grpc  # noqa: E402
import pytest  # noqa: E402

from api import pki, server  # noqa: E402
from api.testing_daemon import (  # noqa: E402
    RPC_TIMEOUT,
    RunningDaemon,
    job_worker_stub,
    module_pki,
    running_daemon,
)
from api.tls import channel_credentials, server_credentials  # noqa: E402
from jobworker.v1 import jobworker_pb2 as pb  # noqa: E402
from worker.config import ManagerConfig  # noqa: E402
from worker.manager import JobManager  # noqa: E402
from worker.status import StopReason  # noqa: E402

pytestmark = pytest.mark.kernel

PYTHON = "/usr/bin/python3"  # World-executable; the pyenv python under /root is not.
# Writes `blocks` distinct 4 KiB blocks, flushing every block so followers see it grow.
WRITER = (
    "import sys\n"
    "out = sys.stdout.buffer\n"
    "for i in range(int(sys.argv[1])):\n"
    "    out.write(b'%08d' % i * 512)\n"
    "    out.flush()\n"
)


def expected_output(blocks: int) -> bytes:
    return b"".join(b"%08d" % i * 512 for i in range(blocks))


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with module_pki(tmp_path_factory.mktemp("pki")) as directory:
        yield directory


@contextlib.asynccontextmanager
async def real_daemon(pki_dir: Path, tmp_path: Path) -> AsyncIterator[RunningDaemon]:
    async with (
        JobManager(ManagerConfig(data_dir=tmp_path / "data")) as manager,
        running_daemon(manager, pki_dir) as daemon,
    ):
        yield daemon


async def _collect(stream: Any) -> bytes:
    return b"".join([message.data async for message in stream])


async def _start(stub: Any, *argv: str) -> str:
    response = await stub.StartJob(pb.StartJobRequest(argv=argv), timeout=RPC_TIMEOUT)
    return str(response.job.job_id)


async def test_every_rpc_on_real_jobs(pki_dir: Path, tmp_path: Path) -> None:
    async with real_daemon(pki_dir, tmp_path) as daemon, daemon.stub("alice") as stub:
        job_id = await _start(stub, "/bin/echo", "hello")
        output = await _collect(
            stub.StreamOutput(pb.StreamOutputRequest(job_id=job_id, follow=True))
        )
        assert output == b"hello\n"
        job = (await stub.GetJob(pb.GetJobRequest(job_id=job_id), timeout=RPC_TIMEOUT)).job
        assert (job.state, job.exit_code, job.owner) == (pb.JOB_STATE_EXITED, 0, "alice")

        failing = await _start(stub, "/bin/sh", "-c", "echo oops >&2; exit 3")
        await _collect(stub.StreamOutput(pb.StreamOutputRequest(job_id=failing, follow=True)))
        job = (await stub.GetJob(pb.GetJobRequest(job_id=failing), timeout=RPC_TIMEOUT)).job
        assert (job.state, job.exit_code) == (pb.JOB_STATE_EXITED, 3)

        sleeper = await _start(stub, "/bin/sleep", "1000")
        stopped = await stub.StopJob(
            pb.StopJobRequest(job_id=sleeper, grace_seconds=300), timeout=RPC_TIMEOUT
        )
        # jobinit forwards SIGTERM to sleep, which has no handler: it ends at once, and the
        # stop needs no SIGKILL (a grace beyond the test's timeout proves it).
        assert stopped.job.state == pb.JOB_STATE_STOPPED
        assert stopped.job.stop_reason == pb.STOP_REASON_REQUESTED
        assert stopped.job.signal == signal.SIGTERM
        listed = await stub.ListJobs(pb.ListJobsRequest(), timeout=RPC_TIMEOUT)
        assert {j.job_id for j in listed.jobs} == {job_id, failing, sleeper}


async def test_start_failure_is_failed_precondition(pki_dir: Path, tmp_path: Path) -> None:
    async with real_daemon(pki_dir, tmp_path) as daemon, daemon.stub("alice") as stub:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await _start(stub, "/nonexistent/program")
        assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "exec" in (raised.value.details() or "")
        await _start(stub, "/bin/true")  # Still serving.


async def test_100_concurrent_streaming_clients_receive_identical_bytes(
    pki_dir: Path, tmp_path: Path
) -> None:
    blocks = 512  # 2 MiB
    async with real_daemon(pki_dir, tmp_path) as daemon, daemon.stub("alice") as stub:
        job_id = await _start(stub, PYTHON, "-c", WRITER, str(blocks))
        channels = [daemon.channel("alice") for _ in range(100)]
        try:
            results = await asyncio.gather(
                *(
                    _collect(
                        job_worker_stub(c).StreamOutput(
                            pb.StreamOutputRequest(job_id=job_id, follow=True),
                            timeout=RPC_TIMEOUT * 6,
                        )
                    )
                    for c in channels
                )
            )
        finally:
            await asyncio.gather(*(c.close(None) for c in channels))
    expected = expected_output(blocks)
    assert all(r == expected for r in results)


async def test_a_stalled_client_blocks_neither_other_clients_nor_the_job(
    pki_dir: Path, tmp_path: Path
) -> None:
    blocks = 4096  # 16 MiB: far beyond every HTTP/2 and socket buffer on the way.
    async with real_daemon(pki_dir, tmp_path) as daemon, daemon.stub("alice") as stub:
        job_id = await _start(stub, PYTHON, "-c", WRITER, str(blocks))
        async with daemon.channel("alice") as stalled_channel:
            stalled = job_worker_stub(stalled_channel).StreamOutput(
                pb.StreamOutputRequest(job_id=job_id, follow=True)
            )
            first = await stalled.read()  # Then never read again.
            assert first.data
            fast = await _collect(
                stub.StreamOutput(
                    pb.StreamOutputRequest(job_id=job_id, follow=True), timeout=RPC_TIMEOUT * 6
                )
            )
            assert fast == expected_output(blocks)
            job = (await stub.GetJob(pb.GetJobRequest(job_id=job_id), timeout=RPC_TIMEOUT)).job
            assert (job.state, job.exit_code) == (pb.JOB_STATE_EXITED, 0)
            stalled.cancel()


async def test_disconnecting_clients_leave_no_task(pki_dir: Path, tmp_path: Path) -> None:
    async with real_daemon(pki_dir, tmp_path) as daemon, daemon.stub("alice") as stub:
        job_id = await _start(stub, "/bin/sh", "-c", "while :; do echo y; sleep 0.01; done")
        baseline = len(asyncio.all_tasks())
        await daemon.follow_and_hang_up(job_id, 10)
        async with asyncio.timeout(RPC_TIMEOUT):
            # Polling: "the server finished the cancelled call" has no event to wait on.
            while len(asyncio.all_tasks()) > baseline:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        await stub.StopJob(pb.StopJobRequest(job_id=job_id), timeout=RPC_TIMEOUT)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_sigterm_stops_jobs_ends_streams_and_returns(pki_dir: Path, tmp_path: Path) -> None:
    port = _free_port()
    address = f"127.0.0.1:{port}"
    credentials = server_credentials(pki.TlsFiles.in_pki_dir(pki_dir, "server"))
    files = pki.TlsFiles.in_pki_dir(pki_dir, "alice")
    async with JobManager(ManagerConfig(data_dir=tmp_path / "data", default_grace=1)) as manager:
        serving = asyncio.create_task(server.serve(manager, credentials, address, 10.0))
        async with grpc.aio.secure_channel(address, channel_credentials(files)) as channel:
            stub = job_worker_stub(channel)
            await channel.channel_ready()
            job_id = await _start(stub, "/bin/sh", "-c", "echo started; exec sleep 1000")
            stream = stub.StreamOutput(pb.StreamOutputRequest(job_id=job_id, follow=True))
            assert (await stream.read()).data == b"started\n"
            os.kill(os.getpid(), signal.SIGTERM)
            async with asyncio.timeout(30):
                await serving
            # The follower ended because the job ended, not by being cut off.
            assert await stream.code() == grpc.StatusCode.OK
        status = await manager.status(job_id)
    # jobinit forwarded the shutdown's SIGTERM to sleep, which has no handler: no escalation.
    assert status.stop_reason is StopReason.SHUTDOWN and status.signal == signal.SIGTERM
