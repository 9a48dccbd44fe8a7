"""The guard over the wire: the authorization matrix, bad input, error mapping, audit."""

from __future__ import annotations

from api import tls_policy

# The daemon under test runs in this process, and grpc reads its cipher list at import.
tls_policy.forbid_tls12()

import logging  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import grpc  # noqa: E402
import pytest  # noqa: E402
from cryptography import x509  # noqa: E402
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID  # noqa: E402
from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: E402

from api import certificates, pki  # noqa: E402
from api.role import ROLE_OID  # noqa: E402
from api.testing_daemon import (  # noqa: E402
    RPC_TIMEOUT,
    job_worker_stub,
    module_pki,
    running_daemon,
)
from api.testing_fake_manager import FakeJobManager  # noqa: E402
from jobworker.v1 import jobworker_pb2 as pb  # noqa: E402
from worker.limits import Limits  # noqa: E402
from worker.spec import JobSpec  # noqa: E402
from worker.status import JobStatus  # noqa: E402

OK, NOT_FOUND = grpc.StatusCode.OK, grpc.StatusCode.NOT_FOUND
INVALID = grpc.StatusCode.INVALID_ARGUMENT


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with module_pki(tmp_path_factory.mktemp("pki")) as directory:
        ca = pki.load_credential(directory, "ca")
        for name, role in (("norole", None), ("superuser", "superuser")):
            attributes = [x509.NameAttribute(NameOID.COMMON_NAME, name)]
            if role:
                attributes.append(x509.NameAttribute(ROLE_OID, role))
            leaf = certificates.issue_leaf(
                ca, x509.Name(attributes), [ExtendedKeyUsageOID.CLIENT_AUTH]
            )
            pki.write_credential(leaf, directory, name)
        yield directory


async def _code(call: Any) -> tuple[grpc.StatusCode, str]:
    """Runs a unary call or drains a stream; returns its status code and details."""
    try:
        result = call
        if hasattr(call, "__aiter__"):
            async for _ in call:
                pass
        else:
            await result
    except grpc.aio.AioRpcError as error:
        return error.code(), error.details() or ""
    return OK, ""


def _calls(stub: Any, job_id: str) -> dict[str, Any]:
    timeout = {"timeout": RPC_TIMEOUT}
    return {
        "GetJob": lambda: stub.GetJob(pb.GetJobRequest(job_id=job_id), **timeout),
        "StreamOutput": lambda: stub.StreamOutput(pb.StreamOutputRequest(job_id=job_id), **timeout),
        "StopJob": lambda: stub.StopJob(pb.StopJobRequest(job_id=job_id), **timeout),
    }


@pytest.mark.parametrize("rpc", ["GetJob", "StreamOutput", "StopJob"])
@pytest.mark.parametrize(("caller", "expected"), [("alice", OK), ("bob", NOT_FOUND), ("admin", OK)])
async def test_authorization_matrix_for_job_rpcs(
    pki_dir: Path, rpc: str, caller: str, expected: grpc.StatusCode
) -> None:
    async with running_daemon(FakeJobManager(), pki_dir) as daemon:
        async with daemon.stub("alice") as owner:
            started = await owner.StartJob(
                pb.StartJobRequest(argv=["/bin/true"]), timeout=RPC_TIMEOUT
            )
        async with daemon.stub(caller) as stub:
            code, details = await _code(_calls(stub, started.job.job_id)[rpc]())
    assert code == expected, details


@pytest.mark.parametrize(
    ("caller", "expected_owners"),
    [("alice", {"alice"}), ("bob", {"bob"}), ("admin", {"alice", "bob", "admin"})],
)
async def test_authorization_matrix_for_list_and_start(
    pki_dir: Path, caller: str, expected_owners: set[str]
) -> None:
    async with running_daemon(FakeJobManager(), pki_dir) as daemon:
        for user in ("alice", "bob", "admin"):
            async with daemon.stub(user) as stub:
                started = await stub.StartJob(
                    pb.StartJobRequest(argv=["/bin/true"]), timeout=RPC_TIMEOUT
                )
                assert started.job.owner == user  # Always the caller, whatever the role.
        async with daemon.stub(caller) as stub:
            listed = await stub.ListJobs(pb.ListJobsRequest(), timeout=RPC_TIMEOUT)
    assert {job.owner for job in listed.jobs} == expected_owners


@pytest.mark.parametrize("caller", ["norole", "superuser"])
async def test_a_certificate_without_a_valid_role_is_denied_everything(
    pki_dir: Path, caller: str
) -> None:
    backend = FakeJobManager()
    async with running_daemon(backend, pki_dir) as daemon:
        async with daemon.stub("alice") as alice:
            job_id = (
                await alice.StartJob(pb.StartJobRequest(argv=["x"]), timeout=RPC_TIMEOUT)
            ).job.job_id
        async with daemon.channel(caller) as channel:
            stub = job_worker_stub(channel)
            calls = [
                stub.StartJob(pb.StartJobRequest(argv=["x"]), timeout=RPC_TIMEOUT),
                stub.ListJobs(pb.ListJobsRequest(), timeout=RPC_TIMEOUT),
                health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=RPC_TIMEOUT
                ),
                *(make() for make in _calls(stub, job_id).values()),
            ]
            codes = [(await _code(call))[0] for call in calls]
    assert codes == [grpc.StatusCode.PERMISSION_DENIED] * len(calls)
    assert len(backend.started) == 1


HUGE = "x" * (200 * 1024)


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (pb.StartJobRequest(), "argv"),
        (pb.StartJobRequest(argv=[""]), "argv[0]"),
        (pb.StartJobRequest(argv=["/bin/echo", "a\x00b"]), "argv[1]"),
        (pb.StartJobRequest(argv=["/bin/echo", HUGE]), "argv"),
        (pb.StartJobRequest(argv=["/bin/true"], env={"A=B": "1"}), "env['A=B']"),
        (pb.StartJobRequest(argv=["/bin/true"], env={"A": "\x00"}), "env['A']"),
        (pb.StartJobRequest(argv=["/bin/true"], cwd="relative"), "cwd"),
        (pb.StartJobRequest(argv=["/bin/true"], limits=pb.Limits(cpu=-1)), "limits.cpu"),
        (pb.StartJobRequest(argv=["/bin/true"], limits=pb.Limits(cpu=float("nan"))), "limits.cpu"),
        (pb.StartJobRequest(argv=["/bin/true"], limits=pb.Limits(cpu=1e9)), "limits.cpu"),
        (
            pb.StartJobRequest(argv=["/bin/true"], limits=pb.Limits(memory_bytes=-5)),
            "limits.memory_bytes",
        ),
        (
            pb.StartJobRequest(argv=["/bin/true"], limits=pb.Limits(memory_bytes=2**63 - 1)),
            "limits.memory_bytes",
        ),
        (pb.StartJobRequest(argv=["/bin/true"], limits=pb.Limits(pids=0)), "limits.pids"),
        (
            pb.StartJobRequest(argv=["/bin/true"], limits=pb.Limits(io_read_bps=-1)),
            "limits.io_read_bps",
        ),
        # Within Limits' range but above this daemon's cap (max_limits below).
        (pb.StartJobRequest(argv=["/bin/true"], limits=pb.Limits(cpu=3)), "limits.cpu"),
        (pb.GetJobRequest(job_id=""), "job_id"),
        (pb.GetJobRequest(job_id="../../etc/passwd"), "job_id"),
        (pb.GetJobRequest(job_id="A" * 1000), "job_id"),
        (pb.StopJobRequest(job_id="A" * 22, grace_seconds=-1), "grace_seconds"),
        (pb.StreamOutputRequest(job_id="A" * 22, offset=-1), "offset"),
        (pb.StreamOutputRequest(job_id="A" * 22, offset=2**63 - 1), "offset"),
        (pb.StreamOutputRequest(job_id="é" * 22), "job_id"),
    ],
)
async def test_invalid_input_names_the_field_and_the_daemon_keeps_serving(
    pki_dir: Path, request_: Any, field: str
) -> None:
    backend = FakeJobManager(max_limits=Limits(cpu=2.0))
    async with running_daemon(backend, pki_dir) as daemon, daemon.stub("admin") as stub:
        method = {
            pb.StartJobRequest: stub.StartJob,
            pb.GetJobRequest: stub.GetJob,
            pb.StopJobRequest: stub.StopJob,
            pb.StreamOutputRequest: stub.StreamOutput,
        }[type(request_)]
        code, details = await _code(method(request_, timeout=RPC_TIMEOUT))
        assert (code, details.split(":")[0]) == (INVALID, field), details
        await stub.StartJob(pb.StartJobRequest(argv=["/bin/true"]), timeout=RPC_TIMEOUT)
    assert len(backend.started) == 1


async def test_oversized_and_undecodable_requests(pki_dir: Path) -> None:
    async with running_daemon(FakeJobManager(), pki_dir) as daemon, daemon.channel() as channel:
        raw = channel.unary_unary("/jobworker.v1.JobWorker/GetJob", None, None)
        code, details = await _code(raw(b"\x0a\x05\xff\xfe\xfd\xfc\xfb", timeout=RPC_TIMEOUT))
        assert code == INVALID and details.startswith("request: "), details
        # Above the 1 MiB receive limit grpc itself refuses the message.
        huge = pb.StartJobRequest(argv=["x" * (2 << 20)])
        code, _ = await _code(job_worker_stub(channel).StartJob(huge, timeout=RPC_TIMEOUT))
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
        code, _ = await _code(
            job_worker_stub(channel).StartJob(pb.StartJobRequest(argv=["ok"]), timeout=RPC_TIMEOUT)
        )
    assert code == OK


class _BuggyBackend(FakeJobManager):
    def owner(self, job_id: str) -> str:
        raise KeyError("internal detail the client must not see")

    async def status(self, job_id: str) -> JobStatus:
        raise KeyError("internal detail the client must not see")

    async def start(self, spec: JobSpec) -> JobStatus:
        raise AssertionError("internal detail the client must not see")


async def test_a_bug_is_internal_with_a_generic_message_and_a_logged_traceback(
    pki_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with running_daemon(_BuggyBackend(), pki_dir) as daemon, daemon.stub() as stub:
        for call in (
            stub.GetJob(pb.GetJobRequest(job_id="A" * 22), timeout=RPC_TIMEOUT),
            stub.StartJob(pb.StartJobRequest(argv=["x"]), timeout=RPC_TIMEOUT),
        ):
            code, details = await _code(call)
            assert code == grpc.StatusCode.INTERNAL
            assert "internal detail" not in details
    bugs = [r for r in caplog.records if r.levelno == logging.ERROR and r.exc_info]
    assert len(bugs) == 2


async def test_every_rpc_writes_one_audit_line(
    pki_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with running_daemon(FakeJobManager(), pki_dir) as daemon:
        async with daemon.stub("alice") as alice:
            started = await alice.StartJob(pb.StartJobRequest(argv=["x"]), timeout=RPC_TIMEOUT)
        job_id = started.job.job_id
        async with daemon.stub("bob") as bob:
            await _code(bob.GetJob(pb.GetJobRequest(job_id=job_id), timeout=RPC_TIMEOUT))
    audit = [r.getMessage() for r in caplog.records if r.getMessage().startswith("audit ")]
    assert len(audit) == 2
    assert "user=alice role=user rpc=/jobworker.v1.JobWorker/StartJob" in audit[0]
    assert f"job={job_id} code=OK" in audit[0]
    assert "user=bob role=user rpc=/jobworker.v1.JobWorker/GetJob" in audit[1]
    assert f"job={job_id} code=NOT_FOUND" in audit[1]


async def test_health_watch_is_guarded_like_any_stream(pki_dir: Path) -> None:
    async with (
        running_daemon(FakeJobManager(), pki_dir) as daemon,
        daemon.channel("bob") as channel,
    ):
        watch = health_pb2_grpc.HealthStub(channel).Watch(
            health_pb2.HealthCheckRequest(service="jobworker.v1.JobWorker"), timeout=RPC_TIMEOUT
        )
        first = await watch.read()
        watch.cancel()
    assert first.status == health_pb2.HealthCheckResponse.SERVING


async def test_a_crafted_job_id_cannot_forge_an_audit_line(
    pki_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    forged = "x\nI1129 audit peer=- user=admin role=admin rpc=StopJob job=y code=OK"
    async with running_daemon(FakeJobManager(), pki_dir) as daemon, daemon.stub("bob") as bob:
        code, _ = await _code(bob.GetJob(pb.GetJobRequest(job_id=forged), timeout=RPC_TIMEOUT))
    assert code == INVALID
    audit = [r.getMessage() for r in caplog.records if "audit " in r.getMessage()]
    assert len(audit) == 1
    # One line, and the forged fields stay inside the escaped job id.
    assert "\n" not in audit[0] and " user=bob " in audit[0] and " user=admin " not in audit[0]
