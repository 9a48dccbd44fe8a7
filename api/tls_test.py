"""Transport security: TLS 1.3 only, X25519MLKEM768, and the connections mTLS rejects."""

from __future__ import annotations

from api import tls_policy

# The daemon under test runs in this process, and grpc reads its cipher list at import.
tls_policy.forbid_tls12()

import asyncio  # noqa: E402
import ssl  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import grpc  # noqa: E402
import pytest  # noqa: E402

from api.testing_daemon import (  # noqa: E402
    RPC_TIMEOUT,
    job_worker_stub,
    module_pki,
    running_daemon,
    write_odd_client,
)
from api.testing_fake_manager import FakeJobManager  # noqa: E402
from api.testing_tls_relay import TLS13, X25519MLKEM768, TlsRelay  # noqa: E402
from api.tls import channel_credentials  # noqa: E402
from cli import connection  # noqa: E402
from jobworker.v1 import jobworker_pb2 as pb  # noqa: E402


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with module_pki(tmp_path_factory.mktemp("pki")) as directory:
        yield directory


def test_tls12_is_disabled_before_grpc_initialises() -> None:
    tls_policy.check_tls12_forbidden()  # Raises if this module's setup did not work.


async def test_jobctl_channel_negotiates_tls13_with_x25519mlkem768(pki_dir: Path) -> None:
    async with (
        running_daemon(FakeJobManager(), pki_dir) as daemon,
        TlsRelay(daemon.daemon.port) as relay,
    ):
        # The channel exactly as jobctl opens it (cli/connection.py), through the relay.
        settings = connection.Settings(
            addr=relay.address,
            ca=pki_dir / "ca.crt",
            cert=pki_dir / "alice.crt",
            key=pki_dir / "alice.key",
            connect_timeout=RPC_TIMEOUT,
            rpc_timeout=RPC_TIMEOUT,
        )
        async with connection.open_channel(settings) as channel:
            await job_worker_stub(channel).ListJobs(pb.ListJobsRequest(), timeout=RPC_TIMEOUT)
    assert relay.hellos, "no ServerHello passed through the relay"
    assert {(h.version, h.group) for h in relay.hellos} == {(TLS13, X25519MLKEM768)}


def _ssl_client(pki_dir: Path, maximum: ssl.TLSVersion) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=pki_dir / "ca.crt")
    context.load_cert_chain(pki_dir / "alice.crt", pki_dir / "alice.key")
    context.maximum_version = maximum
    context.set_alpn_protocols(["h2"])
    return context


async def _handshake(port: int, context: ssl.SSLContext) -> str | None:
    _, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=context, server_hostname="localhost"
    )
    try:
        ssl_object = writer.get_extra_info("ssl_object")
        return str(ssl_object.version())
    finally:
        # Abort rather than close: the server's HTTP/2 preface may already be in flight,
        # which makes a polite TLS shutdown fail with APPLICATION_DATA_AFTER_CLOSE_NOTIFY.
        writer.transport.abort()


async def test_tls12_only_client_is_rejected_and_tls13_accepted(pki_dir: Path) -> None:
    async with running_daemon(FakeJobManager(), pki_dir) as daemon:
        # An independent client (OpenSSL via Python's ssl) that stops at TLS 1.2. The
        # server answers NO_SHARED_CIPHER with an alert or a reset, depending on timing.
        with pytest.raises((ssl.SSLError, ConnectionResetError)):
            await _handshake(daemon.daemon.port, _ssl_client(pki_dir, ssl.TLSVersion.TLSv1_2))
        # The same client allowed TLS 1.3 gets in, so the rejection above is about the
        # version, not about the certificate or ALPN.
        version = await _handshake(daemon.daemon.port, _ssl_client(pki_dir, ssl.TLSVersion.TLSv1_3))
    assert version == "TLSv1.3"


@pytest.mark.parametrize(
    "kind", ["no_certificate", "expired", "not_yet_valid", "other_ca", "server_as_client"]
)
async def test_rejected_client_certificates(pki_dir: Path, tmp_path: Path, kind: str) -> None:
    backend = FakeJobManager()
    async with running_daemon(backend, pki_dir) as daemon:
        if kind == "no_certificate":
            credentials = grpc.ssl_channel_credentials((pki_dir / "ca.crt").read_bytes())
        else:
            credentials = channel_credentials(write_odd_client(pki_dir, tmp_path, kind))
        async with grpc.aio.secure_channel(daemon.address, credentials) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await job_worker_stub(channel).StartJob(
                    pb.StartJobRequest(argv=["/bin/true"]), timeout=RPC_TIMEOUT
                )
        code = raised.value.code()
        # The daemon is unharmed: a good client still gets served.
        async with daemon.stub("alice") as stub:
            await stub.ListJobs(pb.ListJobsRequest(), timeout=RPC_TIMEOUT)
    assert code == grpc.StatusCode.UNAVAILABLE, raised.value.details()
    assert backend.started == []
