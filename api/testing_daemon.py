"""Test harness: an in-process jobworkerd on a loopback port, clients for it, and its PKI.

Test modules that use it must set GRPC_SSL_CIPHER_SUITES before importing grpc (see
api/tls_policy.py), because the daemon under test runs in the test process.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import grpc

from api import certificates, pki, server
from api.backend import JobBackend
from api.role import Role
from api.tls import channel_credentials, server_credentials
from jobworker.v1 import jobworker_pb2, jobworker_pb2_grpc

# Every RPC of a test has a deadline so a bug fails the test instead of hanging it.
RPC_TIMEOUT = 20.0


def job_worker_stub(channel: grpc.aio.Channel) -> Any:
    """Returns a JobWorker stub; protoc's generated stub module carries no types."""
    return jobworker_pb2_grpc.JobWorkerStub(channel)  # type: ignore[no-untyped-call,unused-ignore]


@dataclasses.dataclass(frozen=True, slots=True)
class RunningDaemon:
    """A started in-process daemon.

    Attributes:
        daemon: The server and its health servicer.
        address: ``127.0.0.1:port`` to dial.
        pki_dir: The dev PKI the daemon and its clients use.
    """

    daemon: server.Daemon
    address: str
    pki_dir: Path

    def channel(self, name: str = "alice", **options: int | str) -> grpc.aio.Channel:
        """Returns a channel that presents ``name``'s certificate from the dev PKI."""
        return self.channel_with(pki.TlsFiles.in_pki_dir(self.pki_dir, name), **options)

    def channel_with(self, files: pki.TlsFiles, **options: int | str) -> grpc.aio.Channel:
        """Returns a channel presenting any certificate, as jobctl would build it."""
        return grpc.aio.secure_channel(
            self.address, channel_credentials(files), options=tuple(options.items())
        )

    @contextlib.asynccontextmanager
    async def stub(self, name: str = "alice") -> AsyncIterator[jobworker_pb2_grpc.JobWorkerStub]:
        """Yields a JobWorker stub for ``name`` and closes its channel afterwards."""
        async with self.channel(name) as channel:
            yield job_worker_stub(channel)

    async def follow_and_hang_up(
        self, job_id: str, times: int, while_open: Callable[[], None] = lambda: None
    ) -> None:
        """Opens and drops followers of the job's output, one after another.

        Each follows on its own channel, closed after the first message: the client vanishes
        mid-stream, and grpc cancels the call.

        Args:
            job_id: A job of alice's that writes output.
            times: How many followers come and go, one after another.
            while_open: Called while each follower's stream is open, to check the daemon.
        """
        for _ in range(times):
            async with self.channel("alice") as channel:
                stream = job_worker_stub(channel).StreamOutput(
                    jobworker_pb2.StreamOutputRequest(job_id=job_id, follow=True)
                )
                assert (await stream.read()).data
                while_open()


@contextlib.asynccontextmanager
async def running_daemon(backend: JobBackend, pki_dir: Path) -> AsyncIterator[RunningDaemon]:
    """Serves ``backend`` on a free loopback port until the block exits."""
    credentials = server_credentials(pki.TlsFiles.in_pki_dir(pki_dir, pki.SERVER_NAME))
    daemon = server.build(backend, credentials, "127.0.0.1:0")
    await server.start(daemon)
    try:
        yield RunningDaemon(daemon, f"127.0.0.1:{daemon.port}", pki_dir)
    finally:
        await daemon.server.stop(None)


def write_odd_client(pki_dir: Path, out_dir: Path, kind: str) -> pki.TlsFiles:
    """Writes a client credential the daemon must reject, and returns its files.

    Args:
        pki_dir: The daemon's dev PKI (its CA signs the odd certificates).
        out_dir: Where to write the credential.
        kind: ``expired``, ``not_yet_valid``, ``other_ca`` or ``server_as_client``.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    ca = pki.load_credential(pki_dir, pki.CA_NAME)
    now = datetime.datetime.now(datetime.UTC)
    day = datetime.timedelta(days=1)
    if kind == "expired":
        credential = certificates.issue_client(
            ca, "alice", Role.USER, not_before=now - 3 * day, not_after=now - day
        )
    elif kind == "not_yet_valid":
        credential = certificates.issue_client(
            ca, "alice", Role.USER, not_before=now + day, not_after=now + 3 * day
        )
    elif kind == "other_ca":
        credential = certificates.issue_client(
            certificates.new_ca("impostor CA"), "alice", Role.USER
        )
    elif kind == "server_as_client":
        return pki.TlsFiles.in_pki_dir(pki_dir, pki.SERVER_NAME)
    else:
        raise ValueError(f"unknown kind of odd certificate: {kind}")
    pki.write_credential(credential, out_dir, kind)
    return pki.TlsFiles(pki_dir / "ca.crt", out_dir / f"{kind}.crt", out_dir / f"{kind}.key")


def pin_grpc_runtime() -> grpc.aio.Channel:
    """Starts grpc.aio's process-wide runtime and keeps it up; returns the pinning channel.

    grpc.aio starts a poller thread and a few fds when its first channel or server is
    created, and stops them when the last one is destroyed, which for objects in reference
    cycles happens whenever the garbage collector runs. The per-test leak check
    (tools/testing) would then blame whichever test happened to start the runtime. A
    module fixture calls this once and keeps the returned (never connected) channel alive,
    so the runtime exists before the first test and until the module ends.
    """

    async def create() -> grpc.aio.Channel:
        return grpc.aio.insecure_channel("127.0.0.1:9")  # Never dialled: no call is made.

    return asyncio.run(create())


@contextlib.contextmanager
def module_pki(directory: Path) -> Iterator[Path]:
    """Creates a dev PKI in ``directory`` and pins grpc.aio's runtime while the block runs.

    The body of each test module's ``pki_dir`` fixture, so that the runtime is up before
    the module's first test and until its last (see ``pin_grpc_runtime``).

    Args:
        directory: Where to write it, typically ``tmp_path_factory.mktemp("pki")``.

    Yields:
        ``directory``, holding the CA and the server, alice, bob and admin credentials.
    """
    pki.create_dev_pki(directory)
    pin = pin_grpc_runtime()
    try:
        yield directory
    finally:
        del pin  # Only now may the runtime stop.
