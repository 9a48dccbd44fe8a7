"""The guard closes a streaming servicer it wraps, and audits an abandoned stream."""

from __future__ import annotations

from api import tls_policy

# grpc reads its cipher list at import (see api/tls_policy.py).
tls_policy.forbid_tls12()

import asyncio  # noqa: E402
import logging  # noqa: E402
from collections.abc import AsyncGenerator, AsyncIterator  # noqa: E402

import pytest  # noqa: E402

from api import guard  # noqa: E402
from api.identity import Identity  # noqa: E402
from api.role import Role  # noqa: E402
from jobworker.v1 import jobworker_pb2 as pb  # noqa: E402

_METHOD = "/jobworker.v1.JobWorker/StreamOutput"


class _Context:
    """The little of grpc.aio.ServicerContext the guard touches on this path."""

    def peer(self) -> str:
        return "ipv4:127.0.0.1:1"


async def test_abandoned_stream_closes_the_servicer_and_audits_cancelled(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    monkeypatch.setattr(guard, "peer_identity", lambda context: Identity("alice", Role.USER))
    closed = asyncio.Event()

    async def servicer(request: object, context: object) -> AsyncIterator[bytes]:
        try:
            while True:
                yield b"chunk"
        finally:
            closed.set()  # Where the service closes its log reader and its fd.

    wrapped = guard._stream_response(_METHOD, servicer)
    stream = wrapped(pb.StreamOutputRequest(job_id="a" * 22), _Context())
    assert isinstance(stream, AsyncGenerator)
    assert await anext(stream) == b"chunk"
    await stream.aclose()  # What grpc does to a stream it abandons.
    assert closed.is_set()
    audit = [r.getMessage() for r in caplog.records if r.getMessage().startswith("audit ")]
    assert len(audit) == 1
    assert audit[0].endswith("code=CANCELLED")
