"""How jobctl reaches the daemon: flags and their environment variables, mTLS, deadlines.

Each connection flag has an environment variable; the flag wins when both are given, so a
shell can export the usual values once and override them per command. Relative paths are
resolved against BUILD_WORKING_DIRECTORY when Bazel set it (``bazel run`` changes into the
runfiles tree, so the user's relative path would otherwise point nowhere).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import grpc
import grpc.aio
from absl import flags

from cli.errors import CliError

DEFAULT_ADDR = "127.0.0.1:50051"

_ADDR = flags.DEFINE_string(
    "addr",
    DEFAULT_ADDR,
    "Daemon address HOST:PORT; env JOBCTL_ADDR. HOST must be a name "
    "or IP address in the daemon's certificate (localhost, 127.0.0.1 for the dev PKI).",
)
_CA = flags.DEFINE_string(
    "ca", None, "PEM file of the CA that signed the daemon's certificate; env JOBCTL_CA."
)
_CERT = flags.DEFINE_string("cert", None, "PEM file of your client certificate; env JOBCTL_CERT.")
_KEY = flags.DEFINE_string(
    "key", None, "PEM file of your client certificate's private key; env JOBCTL_KEY."
)
_CONNECT_TIMEOUT = flags.DEFINE_float(
    "connect_timeout", 5.0, "Seconds to wait for the connection to the daemon.", lower_bound=0.1
)
_RPC_TIMEOUT = flags.DEFINE_float(
    "rpc_timeout",
    30.0,
    "Seconds to wait for the daemon's answer to one request (stop "
    "adds the grace period; output streams have no deadline).",
    lower_bound=0.1,
)

# Keepalive lets a stream that has no deadline notice a dead daemon or a vanished network
# (a half-open TCP connection otherwise waits for hours): a PING every 30 s, and the
# connection is declared dead when its PONG has not come 10 s later. Pings are allowed on
# a silent stream (max_pings_without_data 0) because "logs -f" of a quiet job is exactly
# the case to protect. jobworkerd accepts pings every 10 s without data (api/server.py,
# grpc.http2.min_recv_ping_interval_without_data_ms); pinging faster than the server
# allows earns a GOAWAY "too_many_pings". See grpc/doc/keepalive.md.
_CHANNEL_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 0),
    ("grpc.http2.max_pings_without_data", 0),
    # Output chunks are at most 64 KiB; 4 MiB (the default) leaves room for a large list.
    ("grpc.max_receive_message_length", 16 * 1024 * 1024),
)


@dataclasses.dataclass(frozen=True, slots=True)
class Settings:
    """Where and how to connect.

    Attributes:
        addr: The daemon's HOST:PORT; HOST is also the name its certificate must carry.
        ca: The CA certificate that verifies the daemon.
        cert: The client certificate.
        key: The client certificate's private key.
        connect_timeout: Seconds allowed for connecting.
        rpc_timeout: Seconds allowed for one unary request.
    """

    addr: str
    ca: Path
    cert: Path
    key: Path
    connect_timeout: float
    rpc_timeout: float


def _resolve(path: str, environ: Mapping[str, str]) -> Path:
    base = environ.get("BUILD_WORKING_DIRECTORY")
    expanded = Path(path).expanduser()
    if base and not expanded.is_absolute():
        return Path(base) / expanded
    return expanded


def _pick(
    holder: flags.FlagHolder[str | None] | flags.FlagHolder[str],
    env: str,
    environ: Mapping[str, str],
) -> str | None:
    if holder.present:
        return holder.value
    return environ.get(env) or holder.value


def settings_from_flags(environ: Mapping[str, str] = os.environ) -> Settings:
    """Builds the settings from the parsed flags, then the environment, then defaults.

    Args:
        environ: The environment to read JOBCTL_* and BUILD_WORKING_DIRECTORY from.

    Returns:
        The settings.

    Raises:
        CliError: A certificate or key was given neither as a flag nor in the environment.
    """
    paths: dict[str, Path] = {}
    for holder, env in ((_CA, "JOBCTL_CA"), (_CERT, "JOBCTL_CERT"), (_KEY, "JOBCTL_KEY")):
        value = _pick(holder, env, environ)
        if not value:
            raise CliError(f"no --{holder.name} given and {env} is not set")
        paths[holder.name] = _resolve(value, environ)
    return Settings(
        addr=_pick(_ADDR, "JOBCTL_ADDR", environ) or DEFAULT_ADDR,
        ca=paths["ca"],
        cert=paths["cert"],
        key=paths["key"],
        connect_timeout=_CONNECT_TIMEOUT.value,
        rpc_timeout=_RPC_TIMEOUT.value,
    )


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as err:
        raise CliError(f"cannot read the {what} {path}: {err.strerror}") from None


def credentials(settings: Settings) -> grpc.ChannelCredentials:
    """Loads the mTLS channel credentials.

    The server's certificate is verified against ``settings.ca`` and against the host part
    of ``settings.addr`` (gRPC checks the subjectAltName); the client presents its own.

    Args:
        settings: Where the PEM files are.

    Returns:
        The credentials.

    Raises:
        CliError: A file cannot be read.
    """
    return grpc.ssl_channel_credentials(
        root_certificates=_read(settings.ca, "CA certificate"),
        private_key=_read(settings.key, "client key"),
        certificate_chain=_read(settings.cert, "client certificate"),
    )


async def _until_ready_or_failed(channel: grpc.aio.Channel) -> None:
    state = channel.get_state(try_to_connect=True)
    while state not in (
        grpc.ChannelConnectivity.READY,
        grpc.ChannelConnectivity.TRANSIENT_FAILURE,
        grpc.ChannelConnectivity.SHUTDOWN,
    ):
        await channel.wait_for_state_change(state)
        state = channel.get_state(try_to_connect=True)


@contextlib.asynccontextmanager
async def open_channel(settings: Settings) -> AsyncIterator[grpc.aio.Channel]:
    """Opens an mTLS channel and waits, at most the connect timeout, for the connection.

    A failed attempt ends the wait early: the first request then fails at once with the
    cause (connection refused, certificate rejected), which a plain wait_for_ready would
    hide behind the timeout.

    Args:
        settings: The connection settings.

    Yields:
        The channel; closed on exit, cancelling calls still in flight.

    Raises:
        CliError: The connection was neither made nor refused within the connect timeout,
            or a PEM file cannot be read.
    """
    channel = grpc.aio.secure_channel(
        settings.addr, credentials(settings), options=_CHANNEL_OPTIONS
    )
    try:
        try:
            async with asyncio.timeout(settings.connect_timeout):
                await _until_ready_or_failed(channel)
        except TimeoutError:
            raise CliError(
                f"cannot connect to {settings.addr}: no answer within {settings.connect_timeout:g}s"
            ) from None
        yield channel
    finally:
        await channel.close(None)
