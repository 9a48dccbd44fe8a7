"""The framework's ceiling: a bare grpc.aio server streaming pre-built 64 KiB messages.

It uses the same mTLS credentials as jobworkerd, with no service logic and no file reads, so
the jobworker throughput rows can be read as a fraction of what grpc.aio can do at all here.
A bare unary echo gives the same baseline for the latency of one small call (GetJob).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import grpc

_METHOD = "/jobworker.bench.Ceiling/Stream"
_ECHO = "/jobworker.bench.Ceiling/Echo"
_CHUNK = b"\0" * (64 * 1024)


def _credentials(pki: Path) -> tuple[grpc.ServerCredentials, grpc.ChannelCredentials]:
    ca = (pki / "ca.crt").read_bytes()
    server = grpc.ssl_server_credentials(
        [((pki / "server.key").read_bytes(), (pki / "server.crt").read_bytes())],
        root_certificates=ca,
        require_client_auth=True,
    )
    client = grpc.ssl_channel_credentials(
        root_certificates=ca,
        private_key=(pki / "alice.key").read_bytes(),
        certificate_chain=(pki / "alice.crt").read_bytes(),
    )
    return server, client


async def _serve_chunks(
    request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]
) -> AsyncIterator[bytes]:
    for _ in range(int.from_bytes(request, "big")):
        yield _CHUNK


async def _echo(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
    return request


async def _drain(channel: grpc.aio.Channel, chunks: int) -> int:
    call = channel.unary_stream(_METHOD, None, None)(chunks.to_bytes(8, "big"))
    received = 0
    async for message in call:
        received += len(message)
    return received


@contextlib.asynccontextmanager
async def _bare_server(pki: Path) -> AsyncIterator[grpc.aio.Channel]:
    """Serves Stream and Echo with no service logic; yields a channel to them over mTLS."""
    server_creds, client_creds = _credentials(pki)
    server = grpc.aio.server()
    handlers = {
        "Stream": grpc.unary_stream_rpc_method_handler(_serve_chunks),
        "Echo": grpc.unary_unary_rpc_method_handler(_echo),
    }
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("jobworker.bench.Ceiling", handlers),)
    )
    port = server.add_secure_port("127.0.0.1:0", server_creds)
    await server.start()
    try:
        async with grpc.aio.secure_channel(f"localhost:{port}", client_creds) as channel:
            yield channel
    finally:
        await server.stop(None)


async def ceiling_bytes_per_second(pki: Path, total: int, clients: int = 1) -> float:
    """Streams ``total`` bytes to each of ``clients`` and returns the aggregate bytes/s."""
    async with _bare_server(pki) as channel:
        begin = time.perf_counter()
        sizes = await asyncio.gather(
            *(_drain(channel, total // len(_CHUNK)) for _ in range(clients))
        )
        return sum(sizes) / (time.perf_counter() - begin)


@contextlib.asynccontextmanager
async def unary_echo(pki: Path, size: int = 200) -> AsyncIterator[Callable[[], Awaitable[bytes]]]:
    """Serves a bare unary echo; yields a function that makes one call of ``size`` bytes.

    About the size of a GetJob response, so the two can be timed side by side.
    """
    async with _bare_server(pki) as channel:
        call = channel.unary_unary(_ECHO, None, None)
        payload = b"\0" * size

        async def once() -> bytes:
            reply: bytes = await call(payload, timeout=30)
            return reply

        await once()  # Connect: the handshake is not part of what is timed.
        yield once
