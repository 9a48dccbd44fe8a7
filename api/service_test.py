"""The JobWorker service over real mTLS on loopback, against the in-memory backend."""

from __future__ import annotations

from api import tls_policy

# The daemon under test runs in this process, and grpc reads its cipher list at import.
tls_policy.forbid_tls12()

import asyncio  # noqa: E402
import signal  # noqa: E402
from collections.abc import AsyncIterator, Iterator  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import grpc  # noqa: E402
import pytest  # noqa: E402
from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: E402
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc  # noqa: E402

from api import pki, server  # noqa: E402
from api.service import JobWorkerService  # noqa: E402
from api.testing_daemon import (  # noqa: E402
    RPC_TIMEOUT,
    job_worker_stub,
    module_pki,
    running_daemon,
)
from api.testing_fake_manager import FakeJobManager  # noqa: E402
from api.tls import server_credentials  # noqa: E402
from jobworker.v1 import jobworker_pb2 as pb  # noqa: E402
from worker.errors import CgroupError  # noqa: E402
from worker.limits import Limits  # noqa: E402
from worker.status import JobStatus  # noqa: E402

MISSING_ID = "A" * 22  # Well-formed, never issued.


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with module_pki(tmp_path_factory.mktemp("pki")) as directory:
        yield directory


async def _collect(stream: AsyncIterator[pb.StreamOutputResponse]) -> bytes:
    return b"".join([message.data async for message in stream])


async def _start(stub: Any, *argv: str) -> str:
    response = await stub.StartJob(pb.StartJobRequest(argv=argv), timeout=RPC_TIMEOUT)
    return str(response.job.job_id)


async def test_happy_path_of_every_rpc(pki_dir: Path) -> None:
    backend = FakeJobManager(default_limits=Limits(pids=64), max_limits=Limits(cpu=2.0))
    async with running_daemon(backend, pki_dir) as daemon, daemon.stub("alice") as stub:
        started = await stub.StartJob(
            pb.StartJobRequest(
                argv=["/bin/echo", "hi"], env={"A": "1"}, cwd="/tmp", limits=pb.Limits(cpu=0.5)
            ),
            timeout=RPC_TIMEOUT,
        )
        job = started.job
        assert job.owner == "alice"
        assert job.state == pb.JOB_STATE_RUNNING
        assert list(job.argv) == ["/bin/echo", "hi"]
        assert job.limits.cpu == 0.5 and job.limits.pids == 64
        assert backend.started[0].env == {"A": "1"} and backend.started[0].cwd == "/tmp"

        got = await stub.GetJob(pb.GetJobRequest(job_id=job.job_id), timeout=RPC_TIMEOUT)
        assert got.job.job_id == job.job_id and got.job.state == pb.JOB_STATE_RUNNING

        listed = await stub.ListJobs(pb.ListJobsRequest(), timeout=RPC_TIMEOUT)
        assert [j.job_id for j in listed.jobs] == [job.job_id]

        await backend.append(job.job_id, b"hello\n")
        await backend.finish(job.job_id, exit_code=3)
        request = pb.StreamOutputRequest(job_id=job.job_id, follow=True)
        assert await _collect(stub.StreamOutput(request, timeout=RPC_TIMEOUT)) == b"hello\n"
        later = pb.StreamOutputRequest(job_id=job.job_id, offset=2)
        assert await _collect(stub.StreamOutput(later, timeout=RPC_TIMEOUT)) == b"llo\n"
        ended = await stub.GetJob(pb.GetJobRequest(job_id=job.job_id), timeout=RPC_TIMEOUT)
        assert ended.job.state == pb.JOB_STATE_EXITED and ended.job.exit_code == 3
        assert ended.job.HasField("ended_at") and not ended.job.HasField("signal")

        other = await _start(stub, "/bin/sleep", "100")
        stopped = await stub.StopJob(
            pb.StopJobRequest(job_id=other, grace_seconds=1), timeout=RPC_TIMEOUT
        )
        assert stopped.job.state == pb.JOB_STATE_STOPPED and stopped.job.signal == 15
        assert stopped.job.stop_reason == pb.STOP_REASON_REQUESTED


async def test_default_env_and_cwd(pki_dir: Path) -> None:
    backend = FakeJobManager()
    async with running_daemon(backend, pki_dir) as daemon, daemon.stub() as stub:
        await _start(stub, "true")
    assert backend.started[0].env == {"PATH": "/usr/local/bin:/usr/bin:/bin"}
    assert backend.started[0].cwd == "/"


async def test_streamed_chunks_are_at_most_64_kib_with_consecutive_offsets(
    pki_dir: Path,
) -> None:
    backend = FakeJobManager()
    payload = bytes(range(256)) * 4096 + b"tail"  # 1 MiB and a bit.
    async with running_daemon(backend, pki_dir) as daemon, daemon.stub() as stub:
        job_id = await _start(stub, "/bin/cat")
        await backend.append(job_id, payload)
        await backend.finish(job_id)
        request = pb.StreamOutputRequest(job_id=job_id, offset=5, follow=True)
        messages = [m async for m in stub.StreamOutput(request, timeout=RPC_TIMEOUT)]
    assert b"".join(m.data for m in messages) == payload[5:]
    assert max(len(m.data) for m in messages) <= 64 * 1024
    offsets = [m.offset for m in messages]
    assert offsets == [5 + sum(len(m.data) for m in messages[:i]) for i in range(len(messages))]


async def test_follow_receives_output_written_after_the_stream_began(pki_dir: Path) -> None:
    backend = FakeJobManager()
    async with running_daemon(backend, pki_dir) as daemon, daemon.stub() as stub:
        job_id = await _start(stub, "/bin/sh")
        await backend.append(job_id, b"one ")
        stream = stub.StreamOutput(
            pb.StreamOutputRequest(job_id=job_id, follow=True), timeout=RPC_TIMEOUT
        )
        received = b""
        async for message in stream:
            received += message.data
            if received == b"one ":  # Only now does the job write more, then end.
                await backend.append(job_id, b"two")
                await backend.finish(job_id)
        assert received == b"one two"
        assert await stream.code() == grpc.StatusCode.OK


async def test_100_concurrent_streaming_clients_receive_identical_bytes(pki_dir: Path) -> None:
    backend = FakeJobManager()
    payload = b"".join(b"line %d\n" % i for i in range(20000))
    async with running_daemon(backend, pki_dir) as daemon, daemon.stub() as stub:
        job_id = await _start(stub, "/bin/seq")
        await backend.append(job_id, payload[:1000])
        channels = [daemon.channel("alice") for _ in range(100)]
        try:
            streams = [
                asyncio.create_task(
                    _collect(
                        job_worker_stub(c).StreamOutput(
                            pb.StreamOutputRequest(job_id=job_id, follow=True),
                            timeout=RPC_TIMEOUT * 3,
                        )
                    )
                )
                for c in channels
            ]
            await asyncio.sleep(0)
            await backend.append(job_id, payload[1000:])
            await backend.finish(job_id)
            results = await asyncio.gather(*streams)
        finally:
            await asyncio.gather(*(c.close(None) for c in channels))
    assert all(r == payload for r in results)


async def test_client_disconnecting_mid_stream_leaves_no_task_or_reader(pki_dir: Path) -> None:
    backend = FakeJobManager()
    async with running_daemon(backend, pki_dir) as daemon, daemon.stub() as stub:
        job_id = await _start(stub, "/bin/yes")
        await backend.append(job_id, b"y\n" * 100_000)
        baseline = len(asyncio.all_tasks())

        def reading() -> None:
            assert backend.open_readers >= 1

        # Closing each channel cancels its call; the server must notice and clean up.
        await daemon.follow_and_hang_up(job_id, 10, while_open=reading)
        async with asyncio.timeout(RPC_TIMEOUT):
            # Polling: "the server cleaned up its call" has no event to wait on.
            while backend.open_readers or len(asyncio.all_tasks()) > baseline:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        assert backend.open_readers == 0
        # The daemon still serves after all those cancellations.
        await stub.GetJob(pb.GetJobRequest(job_id=job_id), timeout=RPC_TIMEOUT)


async def test_health_and_reflection_answer_an_authenticated_client(pki_dir: Path) -> None:
    backend = FakeJobManager()
    async with running_daemon(backend, pki_dir) as daemon, daemon.channel("bob") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        reply = await health.Check(
            health_pb2.HealthCheckRequest(service="jobworker.v1.JobWorker"),
            timeout=RPC_TIMEOUT,
        )
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        reflect = reflection_pb2_grpc.ServerReflectionStub(channel)
        call = reflect.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
            timeout=RPC_TIMEOUT,
        )
        names = {s.name async for r in call for s in r.list_services_response.service}
    assert "jobworker.v1.JobWorker" in names


async def test_closed_backend_answers_unavailable(pki_dir: Path) -> None:
    backend = FakeJobManager()
    async with running_daemon(backend, pki_dir) as daemon, daemon.stub() as stub:
        await backend.aclose()
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await _start(stub, "/bin/true")
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_a_job_of_another_user_is_indistinguishable_from_a_missing_one(
    pki_dir: Path,
) -> None:
    async with running_daemon(FakeJobManager(), pki_dir) as daemon:
        async with daemon.stub("alice") as alice:
            job_id = await _start(alice, "/bin/true")
        async with daemon.stub("bob") as bob:
            answers = []
            for target in (job_id, MISSING_ID):
                with pytest.raises(grpc.aio.AioRpcError) as raised:
                    await bob.GetJob(pb.GetJobRequest(job_id=target), timeout=RPC_TIMEOUT)
                answers.append((raised.value.code(), raised.value.details()))
    assert answers[0] == answers[1] == (grpc.StatusCode.NOT_FOUND, "job not found")


class _UnreadableUsage(FakeJobManager):
    async def status(self, job_id: str) -> JobStatus:
        raise CgroupError("cannot read cpu.stat: No such device")


async def test_stop_and_stream_do_not_read_usage_to_check_ownership(pki_dir: Path) -> None:
    backend = _UnreadableUsage()
    async with running_daemon(backend, pki_dir) as daemon, daemon.stub("alice") as stub:
        job_id = await _start(stub, "/bin/true")
        await backend.append(job_id, b"out")
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.GetJob(pb.GetJobRequest(job_id=job_id), timeout=RPC_TIMEOUT)
        assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        stream = stub.StreamOutput(pb.StreamOutputRequest(job_id=job_id, follow=False))
        assert await _collect(stream) == b"out"
        stopped = await stub.StopJob(pb.StopJobRequest(job_id=job_id), timeout=RPC_TIMEOUT)
    assert stopped.job.state == pb.JOB_STATE_STOPPED


async def test_a_second_daemon_cannot_share_the_port(pki_dir: Path) -> None:
    credentials = server_credentials(pki.TlsFiles.in_pki_dir(pki_dir, "server"))
    async with running_daemon(FakeJobManager(), pki_dir) as daemon:
        # grpc's default SO_REUSEPORT would let this bind succeed and split the traffic.
        with pytest.raises(RuntimeError):
            server.build(FakeJobManager(), credentials, daemon.address)


async def test_the_servicer_refuses_a_call_the_guard_did_not_authenticate() -> None:
    # Defense in depth: only the guard records an authenticated caller for an RPC's task.
    service = JobWorkerService(FakeJobManager())
    with pytest.raises(PermissionError, match="unauthenticated"):
        await service.ListJobs(pb.ListJobsRequest(), context=None)


async def test_signal_job_reaches_the_backend_for_the_owner_and_an_admin(pki_dir: Path) -> None:
    backend = FakeJobManager()
    async with running_daemon(backend, pki_dir) as daemon:
        async with daemon.stub("alice") as alice:
            job_id = await _start(alice, "/bin/sleep", "1000")
            await alice.SignalJob(
                pb.SignalJobRequest(job_id=job_id, signal="STOP"), timeout=RPC_TIMEOUT
            )
        async with daemon.stub("admin") as admin:
            request = pb.SignalJobRequest(job_id=job_id, signal="CONT", all=True)
            await admin.SignalJob(request, timeout=RPC_TIMEOUT)
    assert backend.signals == [(job_id, signal.SIGSTOP, False), (job_id, signal.SIGCONT, True)]


@pytest.mark.parametrize(
    ("who", "target", "name", "code"),
    [
        ("bob", "alice's", "TERM", grpc.StatusCode.NOT_FOUND),
        ("alice", "missing", "TERM", grpc.StatusCode.NOT_FOUND),
        ("alice", "ended", "TERM", grpc.StatusCode.FAILED_PRECONDITION),
        ("alice", "alice's", "SEGV", grpc.StatusCode.INVALID_ARGUMENT),
        ("alice", "alice's", "", grpc.StatusCode.INVALID_ARGUMENT),
        ("alice", "malformed", "TERM", grpc.StatusCode.INVALID_ARGUMENT),
    ],
)
async def test_signal_job_refusals(
    pki_dir: Path, who: str, target: str, name: str, code: grpc.StatusCode
) -> None:
    backend = FakeJobManager()
    async with running_daemon(backend, pki_dir) as daemon:
        async with daemon.stub("alice") as alice:
            running = await _start(alice, "/bin/sleep", "1000")
            ended = await _start(alice, "/bin/true")
        await backend.finish(ended)
        job_id = {"alice's": running, "ended": ended, "missing": MISSING_ID}.get(target, "x")
        async with daemon.stub(who) as stub:
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                request = pb.SignalJobRequest(job_id=job_id, signal=name)
                await stub.SignalJob(request, timeout=RPC_TIMEOUT)
    assert raised.value.code() == code
    assert backend.signals == []
