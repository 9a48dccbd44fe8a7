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
from worker.output_log import CHUNK_SIZE

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

    def _authorize(self, method: str, raw_id: str) -> str:
        """Returns the id of a job the caller may act on through ``method``.

        Only the owner is looked up: no usage is read, so a job whose cgroup cannot be read
        can still be stopped and streamed.

        Raises:
            InvalidSpec: ``raw_id`` is not shaped like a job id.
            JobNotFound: No such job, or one the caller may not see.
        """
        job_id = convert.job_id(raw_id)
        if not policy.may_act_on(method, _caller(), self._backend.owner(job_id)):
            # Same exception, hence same code and text, as a job that does not exist.
            raise JobNotFound(job_id)
        return job_id

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
        job_id = self._authorize(policy.STOP_JOB, request.job_id)
        final = await self._backend.stop(job_id, grace)
        return pb.StopJobResponse(job=convert.status_to_pb(final))

    async def GetJob(  # noqa: N802
        self, request: pb.GetJobRequest, context: Context
    ) -> pb.GetJobResponse:
        """Returns the status of a job the caller may act on."""
        job_id = self._authorize(policy.GET_JOB, request.job_id)
        status = await self._backend.status(job_id)
        return pb.GetJobResponse(job=convert.status_to_pb(status))

    async def SignalJob(  # noqa: N802
        self, request: pb.SignalJobRequest, context: Context
    ) -> pb.SignalJobResponse:
        """Signals a job the caller may act on; once the signal has been sent, answers."""
        sig = convert.signal_number(request)
        job_id = self._authorize(policy.SIGNAL_JOB, request.job_id)
        await self._backend.signal(job_id, sig, everyone=request.all)
        return pb.SignalJobResponse()

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
        job_id = self._authorize(policy.STREAM_OUTPUT, request.job_id)
        position = start
        chunks = self._backend.output(job_id, start, request.follow)
        try:
            async for chunk in chunks:
                # The proto promises at most CHUNK_SIZE per message, as the backend does;
                # re-splitting keeps the promise even if a backend ever yields more.
                for begin in range(0, len(chunk), CHUNK_SIZE):
                    piece = chunk[begin : begin + CHUNK_SIZE]
                    yield pb.StreamOutputResponse(data=piece, offset=position)
                    position += len(piece)
        finally:
            if isinstance(chunks, AsyncGenerator):
                await chunks.aclose()
