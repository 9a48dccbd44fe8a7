"""The jobworker stub with jobctl's deadlines and error translation applied to every call."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence

import grpc
import grpc.aio

from cli.connection import Settings
from cli.errors import CliError, describe_rpc_error
from jobworker.v1 import jobworker_pb2, jobworker_pb2_grpc


class JobClient:
    """Calls the daemon; each failed call raises CliError with one readable line.

    Unary calls carry the ``rpc_timeout`` deadline; output streams carry none (keepalive on
    the channel detects a dead peer instead). No call waits for readiness: the channel
    was already connected or found unreachable by ``open_channel``, and failing fast keeps
    the cause of a failure in the error.
    """

    def __init__(self, channel: grpc.aio.Channel, settings: Settings) -> None:
        self._stub = jobworker_pb2_grpc.JobWorkerStub(channel)  # type: ignore[no-untyped-call]
        self._settings = settings

    def _error(self, error: grpc.RpcError, job_id: str | None, timeout: float | None) -> CliError:
        return CliError(describe_rpc_error(error, self._settings.addr, job_id, timeout))

    async def start(
        self,
        argv: Sequence[str],
        limits: jobworker_pb2.Limits,
        env: Mapping[str, str],
        cwd: str,
    ) -> jobworker_pb2.JobStatus:
        """Starts a job; returns its status once it runs."""
        request = jobworker_pb2.StartJobRequest(argv=argv, env=env, cwd=cwd, limits=limits)
        timeout = self._settings.rpc_timeout
        try:
            response = await self._stub.StartJob(request, timeout=timeout)
        except grpc.RpcError as err:
            raise self._error(err, None, timeout) from None
        return response.job  # type: ignore[no-any-return]

    async def stop(self, job_id: str, grace: float | None) -> jobworker_pb2.JobStatus:
        """Stops a job (SIGTERM, grace, SIGKILL); returns its final status."""
        request = jobworker_pb2.StopJobRequest(job_id=job_id, grace_seconds=grace)
        # The daemon answers only after the job ended, which may take the whole grace period
        # (its own default when none is given; one minute covers any sane default).
        timeout = self._settings.rpc_timeout + (60.0 if grace is None else grace)
        try:
            response = await self._stub.StopJob(request, timeout=timeout)
        except grpc.RpcError as err:
            raise self._error(err, job_id, timeout) from None
        return response.job  # type: ignore[no-any-return]

    async def get(self, job_id: str) -> jobworker_pb2.JobStatus:
        """Returns a job's status."""
        timeout = self._settings.rpc_timeout
        try:
            response = await self._stub.GetJob(
                jobworker_pb2.GetJobRequest(job_id=job_id), timeout=timeout
            )
        except grpc.RpcError as err:
            raise self._error(err, job_id, timeout) from None
        return response.job  # type: ignore[no-any-return]

    async def signal(self, job_id: str, name: str, *, everyone: bool) -> None:
        """Sends the signal ``name`` (``TERM``) to the job's program, or to all its processes."""
        request = jobworker_pb2.SignalJobRequest(job_id=job_id, signal=name, all=everyone)
        timeout = self._settings.rpc_timeout
        try:
            await self._stub.SignalJob(request, timeout=timeout)
        except grpc.RpcError as err:
            raise self._error(err, job_id, timeout) from None

    async def list(self) -> list[jobworker_pb2.JobStatus]:
        """Returns the jobs the caller may see."""
        timeout = self._settings.rpc_timeout
        try:
            response = await self._stub.ListJobs(jobworker_pb2.ListJobsRequest(), timeout=timeout)
        except grpc.RpcError as err:
            raise self._error(err, None, timeout) from None
        return list(response.jobs)

    async def output(self, job_id: str, *, follow: bool, offset: int = 0) -> AsyncIterator[bytes]:
        """Yields a job's output from ``offset``; with follow, until the job has ended.

        Closing the generator early cancels the stream on the daemon.
        """
        request = jobworker_pb2.StreamOutputRequest(job_id=job_id, offset=offset, follow=follow)
        call = self._stub.StreamOutput(request)
        try:
            async for response in call:
                yield response.data
        except grpc.RpcError as err:
            raise self._error(err, job_id, None) from None
        finally:
            call.cancel()
