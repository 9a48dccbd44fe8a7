"""Runs the real jobworkerd as a child process for the bench, and measures its RSS."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc

from api import pki
from api.tls import channel_credentials
from jobworker.v1 import jobworker_pb2_grpc

_READY_TIMEOUT = 60.0


def rss_bytes(pid: int) -> int:
    """Returns the resident set size of ``pid`` from /proc/PID/status."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Daemon:
    """A jobworkerd child process on a loopback port with its own dev PKI and data dir."""

    def __init__(self, workdir: Path) -> None:
        self.pki_dir = workdir / "pki"
        self.data_dir = workdir / "data"
        self.address = f"127.0.0.1:{_free_port()}"
        self.process: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int:
        """The daemon's pid."""
        assert self.process is not None
        return self.process.pid

    def channel(self, name: str = "alice") -> grpc.aio.Channel:
        """Returns a new mTLS channel presenting ``name``'s dev certificate."""
        files = pki.TlsFiles.in_pki_dir(self.pki_dir, name)
        return grpc.aio.secure_channel(self.address, channel_credentials(files))

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Daemon]:
        """Starts the daemon, waits until it serves, and stops it with SIGTERM afterwards."""
        pki.create_dev_pki(self.pki_dir)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "api.jobworkerd",
            f"--listen={self.address}",
            f"--pki_dir={self.pki_dir}",
            f"--data_dir={self.data_dir}",
            "--max_cpu=2",
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            async with self.channel() as channel:
                await asyncio.wait_for(channel.channel_ready(), _READY_TIMEOUT)
            yield self
        finally:
            if self.process.returncode is None:
                self.process.send_signal(signal.SIGTERM)
            await self.process.wait()


def stub(channel: grpc.aio.Channel) -> jobworker_pb2_grpc.JobWorkerStub:
    """Returns a JobWorker stub on ``channel``."""
    return jobworker_pb2_grpc.JobWorkerStub(channel)  # type: ignore[no-untyped-call,unused-ignore]
