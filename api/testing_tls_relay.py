"""A TCP relay that reads the TLS ServerHello passing through it (test-only).

Placed between a grpc client channel and the daemon, it forwards bytes untouched and
parses the server's first handshake message, so a test can assert the negotiated TLS
version and key exchange group from the wire rather than from either endpoint's API.
Formats: RFC 8446 section 4.1.3 (ServerHello), 4.2.1 (supported_versions), 4.2.8
(key_share); group 0x11EC is X25519MLKEM768 (draft-ietf-tls-ecdhe-mlkem).
"""

from __future__ import annotations

import asyncio
import dataclasses
import struct

TLS13 = 0x0304
X25519MLKEM768 = 0x11EC
_HANDSHAKE_RECORD = 22
_SERVER_HELLO = 2
_SUPPORTED_VERSIONS = 0x002B
_KEY_SHARE = 0x0033


@dataclasses.dataclass(frozen=True, slots=True)
class ServerHello:
    """What the server chose.

    Attributes:
        version: The selected version (supported_versions, else legacy_version).
        cipher_suite: The selected cipher suite.
        group: The key_share group, or None without that extension (TLS 1.2).
    """

    version: int
    cipher_suite: int
    group: int | None


def parse_server_hello(stream: bytes) -> ServerHello | None:
    """Parses the ServerHello at the start of the server's byte stream.

    Returns:
        The ServerHello, or None while ``stream`` does not hold all of it yet.

    Raises:
        ValueError: The stream does not start with a ServerHello.
    """
    if len(stream) < 5:
        return None
    kind, _, length = struct.unpack("!BHH", stream[:5])
    if kind != _HANDSHAKE_RECORD:
        raise ValueError(f"first record has type {kind}, not handshake")
    if len(stream) < 5 + length:
        return None
    body = stream[5 : 5 + length]
    if body[0] != _SERVER_HELLO:
        raise ValueError(f"first handshake message has type {body[0]}, not ServerHello")
    legacy_version = struct.unpack("!H", body[4:6])[0]
    at = 6 + 32  # Past the random.
    at += 1 + body[at]  # Past the session id.
    cipher_suite = struct.unpack("!H", body[at : at + 2])[0]
    at += 3  # Past the cipher suite and the compression method.
    version, group = legacy_version, None
    if at < len(body):
        end = at + 2 + struct.unpack("!H", body[at : at + 2])[0]
        at += 2
        while at < end:
            ext_type, ext_len = struct.unpack("!HH", body[at : at + 4])
            data = body[at + 4 : at + 4 + ext_len]
            if ext_type == _SUPPORTED_VERSIONS:
                version = struct.unpack("!H", data[:2])[0]
            elif ext_type == _KEY_SHARE:
                group = struct.unpack("!H", data[:2])[0]
            at += 4 + ext_len
    return ServerHello(version, cipher_suite, group)


class TlsRelay:
    """Relays 127.0.0.1:<port> to the daemon and records every ServerHello it sees.

    Use as ``async with TlsRelay(upstream_port) as relay:`` and dial ``relay.address``.
    """

    def __init__(self, upstream_port: int) -> None:
        self._upstream_port = upstream_port
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self.hellos: list[ServerHello] = []

    @property
    def address(self) -> str:
        """``127.0.0.1:port`` of the relay."""
        assert self._server is not None
        return f"127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def __aenter__(self) -> TlsRelay:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._connections:
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._upstream_port)
            try:
                async with asyncio.TaskGroup() as group:
                    group.create_task(self._pump(reader, up_writer, inspect=False))
                    group.create_task(self._pump(up_reader, writer, inspect=True))
            finally:
                up_writer.close()
        finally:
            writer.close()
            self._connections.discard(task)

    async def _pump(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, *, inspect: bool
    ) -> None:
        seen = b""
        while data := await source.read(65536):
            if inspect:
                seen += data
                hello = parse_server_hello(seen)
                if hello is not None:
                    self.hellos.append(hello)
                    inspect, seen = False, b""
            sink.write(data)
            await sink.drain()
        if sink.can_write_eof():
            sink.write_eof()
