"""The JobWorker servicer: validates requests, applies ownership, calls the job backend.

Errors are raised, never turned into statuses here: api/guard.py maps every exception
through api/errors.py and writes the audit line. The RPC-level authorization has also run
in the guard before any method here is entered.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from api import convert, policy
from api.backend import JobBackend
from api.identity import Identity, current_caller
from jobworker.v1 import jobworker_pb2 as pb
from jobworker.v1 import jobworker_pb2_grpc
from worker.errors import JobNotFound
from worker.status import JobStatus

# The proto promises at most 64 KiB per message; the backend promises the same, and this
# re-split keeps the promise even if a backend ever yields bigger chunks.
MAX_CHUNK_BYTES = 64 * 1024

Context = Any  # grpc.aio.ServicerContext; the stubs' generics add nothing here.


def _caller() -> Identity:
    caller = current_caller()
    if caller is None:  # Only the guard sets it, after authentication; never serve without.
        raise PermissionError("unauthenticated caller reached the servicer")
    return caller


class JobWorkerService(jobworker_pb2_grpc.JobWorkerServicer):  # type: ignore[misc, unused-ignore]
    """Implements jobworker.v1.JobWorker over a ``JobBackend``."""

    def __init__(self, backend: JobBackend) -> None:
        """Serves ``backend``, which the caller owns and closes."""
        self._backend = backend

    async def _load(self, method: str, caller: Identity, raw_id: str) -> JobStatus:
        job_id = convert.job_id(raw_id)
        status = await self._backend.status(job_id)
        if not policy.may_act_on(method, caller, status.owner):
            # Same exception, hence same code and text, as a job that does not exist.
            raise JobNotFound(job_id)
        return status

    async def StartJob(  # noqa: N802
        self, request: pb.StartJobRequest, context: Context
    ) -> pb.StartJobResponse:
        """Starts a job owned by the caller."""
        caller = _caller()
        spec = convert.spec_from_request(request, owner=caller.user)
        status = await self._backend.start(spec)
        return pb.StartJobResponse(job=convert.status_to_pb(status))

    async def StopJob(  # noqa: N802
        self, request: pb.StopJobRequest, context: Context
    ) -> pb.StopJobResponse:
        """Stops a job the caller may act on and returns its final status."""
        grace = convert.grace(request)
        status = await self._load(policy.STOP_JOB, _caller(), request.job_id)
        final = await self._backend.stop(status.job_id, grace)
        return pb.StopJobResponse(job=convert.status_to_pb(final))

    async def GetJob(  # noqa: N802
        self, request: pb.GetJobRequest, context: Context
    ) -> pb.GetJobResponse:
        """Returns the status of a job the caller may act on."""
        status = await self._load(policy.GET_JOB, _caller(), request.job_id)
        return pb.GetJobResponse(job=convert.status_to_pb(status))

    async def ListJobs(  # noqa: N802
        self, request: pb.ListJobsRequest, context: Context
    ) -> pb.ListJobsResponse:
        """Lists the caller's jobs, or every job for an admin."""
        owner = policy.owner_filter(policy.LIST_JOBS, _caller())
        jobs = await self._backend.list(owner)
        return pb.ListJobsResponse(jobs=[convert.status_to_pb(job) for job in jobs])

    async def StreamOutput(  # noqa: N802 (the proto names the method)
        self, request: pb.StreamOutputRequest, context: Context
    ) -> AsyncIterator[pb.StreamOutputResponse]:
        """Streams a job's output from an offset; ends OK once the output is complete.

        A client that stops reading blocks only this generator: each ``yield`` waits for
        HTTP/2 flow control, while the job keeps writing to its file-backed log. When the
        client cancels, grpc cancels this task, and the ``finally`` closes the backend's
        reader at once instead of leaving it to the garbage collector.
        """
        start = convert.offset(request)
        status = await self._load(policy.STREAM_OUTPUT, _caller(), request.job_id)
        position = start
        chunks = self._backend.output(status.job_id, start, request.follow)
        try:
            async for chunk in chunks:
                for begin in range(0, len(chunk), MAX_CHUNK_BYTES):
                    piece = chunk[begin : begin + MAX_CHUNK_BYTES]
                    yield pb.StreamOutputResponse(data=piece, offset=position)
                    position += len(piece)
        finally:
            if isinstance(chunks, AsyncGenerator):
                await chunks.aclose()
