"""Builds the grpc.aio server and runs it until SIGTERM/SIGINT, then shuts down in bounds."""

from __future__ import annotations

import asyncio
import dataclasses
import signal

import grpc
from absl import logging
from grpc_health.v1 import _async as health_aio  # health.aio; the stubs lack it.
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from api.backend import JobBackend
from api.guard import Guard
from api.service import JobWorkerService
from jobworker.v1 import jobworker_pb2, jobworker_pb2_grpc

_SERVICE_NAME = jobworker_pb2.DESCRIPTOR.services_by_name["JobWorker"].full_name

# Every value is set explicitly so the daemon's behaviour does not drift with grpc defaults.
# Semantics: https://github.com/grpc/grpc/blob/master/doc/keepalive.md
SERVER_OPTIONS: tuple[tuple[str, int], ...] = (
    # Ping a silent client after 30 s and drop it if no ack comes within 10 s, so a
    # vanished client's streams are cancelled and their readers closed.
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    # Enforcement: a client may ping at most every 10 s while no data flows, and only
    # while it has calls open; two violations and the connection is closed (GOAWAY
    # too_many_pings). Clients must use keepalive_time_ms >= 10000.
    ("grpc.http2.min_recv_ping_interval_without_data_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 0),
    ("grpc.http2.max_ping_strikes", 2),
    # Requests are small: argv plus env are capped at 128 KiB (worker/spec.py).
    ("grpc.max_receive_message_length", 1 << 20),
    # Responses: output chunks are 64 KiB, but ListJobs may carry many argvs.
    ("grpc.max_send_message_length", 64 << 20),
    ("grpc.max_concurrent_streams", 256),
    ("grpc.max_metadata_size", 16 << 10),
    # grpc enables SO_REUSEPORT by default, which would let a second daemon share the
    # port and silently receive half the connections.
    ("grpc.so_reuseport", 0),
)


@dataclasses.dataclass(frozen=True, slots=True)
class Daemon:
    """A built, not yet started, server.

    Attributes:
        server: The grpc.aio server with every service registered.
        health: The health servicer, flipped to NOT_SERVING on shutdown.
        port: The bound TCP port (useful when listening on port 0).
    """

    server: grpc.aio.Server
    health: health_aio.HealthServicer
    port: int


def build(backend: JobBackend, credentials: grpc.ServerCredentials, listen: str) -> Daemon:
    """Creates the server with the JobWorker, health and reflection services.

    Args:
        backend: The job backend; the caller owns it.
        credentials: From api/tls.py.
        listen: ``host:port`` to bind; port 0 picks a free port.

    Raises:
        RuntimeError: The address cannot be bound.
    """
    server = grpc.aio.server(interceptors=[Guard()], options=SERVER_OPTIONS)
    jobworker_pb2_grpc.add_JobWorkerServicer_to_server(  # type: ignore[no-untyped-call, unused-ignore]
        JobWorkerService(backend), server
    )
    health_servicer = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (_SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    port = server.add_secure_port(listen, credentials)
    if port == 0:  # Older grpcio reports a failed bind as port 0 instead of raising.
        raise RuntimeError(f"cannot listen on {listen}")
    return Daemon(server, health_servicer, port)


async def start(daemon: Daemon) -> None:
    """Starts serving and reports SERVING for the overall server and for JobWorker."""
    await daemon.server.start()
    for name in ("", _SERVICE_NAME):
        await daemon.health.set(name, health_pb2.HealthCheckResponse.SERVING)


async def shutdown(daemon: Daemon, backend: JobBackend, grace_seconds: float) -> None:
    """Stops accepting RPCs, stops the jobs and ends the streams, within ``grace_seconds``.

    New RPCs are refused at once. Stopping the backend ends every job, which completes
    their output, so following streams end OK by themselves. Whatever is still running
    when ``grace_seconds`` expire is cancelled by grpc (the hard stop).

    Args:
        daemon: The running daemon.
        backend: Its job backend.
        grace_seconds: Seconds for the whole graceful phase.
    """
    await daemon.health.enter_graceful_shutdown()
    async with asyncio.TaskGroup() as group:
        group.create_task(daemon.server.stop(grace=grace_seconds))
        try:
            async with asyncio.timeout(grace_seconds):
                await backend.aclose()
        except TimeoutError:
            logging.error("jobs did not stop within %.1f s; streams are cut off", grace_seconds)


async def serve(
    backend: JobBackend, credentials: grpc.ServerCredentials, listen: str, grace_seconds: float
) -> None:
    """Serves until SIGTERM or SIGINT, then shuts down gracefully.

    Args:
        backend: The job backend, already entered; closed here on shutdown.
        credentials: From api/tls.py.
        listen: ``host:port`` to bind.
        grace_seconds: Seconds allowed for the graceful shutdown.
    """
    daemon = build(backend, credentials, listen)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await start(daemon)
        logging.info("jobworkerd listening on %s (port %d)", listen, daemon.port)
        await stop.wait()
        logging.info("shutting down: stopping jobs and streams within %.1f s", grace_seconds)
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await shutdown(daemon, backend, grace_seconds)
    logging.info("jobworkerd stopped")
