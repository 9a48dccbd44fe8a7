"""The commands that stream output: ``logs`` and ``run``, with run's Ctrl-C protocol.

``run`` owns SIGINT while the job runs (loop.add_signal_handler, removed on every exit):
the first Ctrl-C asks the daemon to stop the job and keeps streaming, so the output of the
program's SIGTERM handler still arrives and jobctl exits with the code the job really
ended with; the second cancels everything at once and leaves the job to the daemon.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

from cli import outcome
from cli.client import JobClient
from cli.commands import Streams, note, start_job, write_out
from cli.errors import CliError, ExitCode
from jobworker.v1 import jobworker_pb2

# The stream ends only once the job has ended, so its status should already be final;
# these bound a defensive re-read should the daemon publish the state a moment later.
_FINAL_STATUS_POLLS = 50
_FINAL_STATUS_INTERVAL = 0.1


async def _copy_output(client: JobClient, job_id: str, streams: Streams, follow: bool) -> None:
    async for chunk in client.output(job_id, follow=follow):
        await write_out(streams, chunk)


async def _final_status(client: JobClient, job_id: str) -> jobworker_pb2.JobStatus:
    job = await client.get(job_id)
    for _ in range(_FINAL_STATUS_POLLS):
        if job.state != jobworker_pb2.JOB_STATE_RUNNING:
            break
        await asyncio.sleep(_FINAL_STATUS_INTERVAL)
        job = await client.get(job_id)
    return job


async def logs(args: argparse.Namespace, client: JobClient, streams: Streams) -> int:
    """``jobctl logs [-f] ID``: copies the output from byte 0 to stdout, byte for byte.

    Returns:
        The job's exit code (128 + N for signal N) if the job has ended by the time the
        output is complete, otherwise 0.
    """
    await _copy_output(client, args.job_id, streams, args.follow)
    job = await client.get(args.job_id)
    if job.state == jobworker_pb2.JOB_STATE_RUNNING:
        return ExitCode.OK
    return outcome.exit_code(job)


class _Interrupts:
    """Counts Ctrl-C presses during ``run``: the first requests a stop, the second detaches."""

    def __init__(self, streams: Streams, job_id: str) -> None:
        self.stop_wanted = asyncio.Event()
        self.detached = False
        self._streams = streams
        self._job_id = job_id
        self._task = asyncio.current_task()

    def on_sigint(self) -> None:
        if not self.stop_wanted.is_set():
            self.stop_wanted.set()
            note(self._streams, f"stopping job {self._job_id} (Ctrl-C again to detach)")
            return
        if not self.detached and self._task is not None:
            self.detached = True
            self._task.cancel()


async def _stop_when_asked(
    interrupts: _Interrupts, client: JobClient, job_id: str, grace: float | None
) -> jobworker_pb2.JobStatus:
    await interrupts.stop_wanted.wait()
    return await client.stop(job_id, grace)


async def _cancel_and_wait(task: asyncio.Task[jobworker_pb2.JobStatus]) -> None:
    task.cancel()
    await asyncio.wait([task])
    if not task.cancelled():
        # Mark a failure that came first as seen: the caller reports its own error.
        task.exception()


async def _stream_until_end(
    client: JobClient, job_id: str, streams: Streams, interrupts: _Interrupts, grace: float | None
) -> jobworker_pb2.JobStatus:
    stopper = asyncio.create_task(_stop_when_asked(interrupts, client, job_id, grace))
    try:
        await _copy_output(client, job_id, streams, follow=True)
    except BaseException:
        await _cancel_and_wait(stopper)
        raise
    if not interrupts.stop_wanted.is_set():
        # The job ended on its own: there is nothing to stop.
        await _cancel_and_wait(stopper)
        return await _final_status(client, job_id)
    try:
        # StopJob answers with the final status once the job has ended.
        return await stopper
    except CliError:
        # Ctrl-C came as the job was ending by itself, and the daemon refused to stop an
        # ended job; its status says how it ended.
        return await _final_status(client, job_id)


async def run(args: argparse.Namespace, client: JobClient, streams: Streams) -> int:
    """``jobctl run``: starts the job, streams its output live, and ends as the job did.

    Returns:
        The job's exit code, 128 + N if signal N ended it, 1 if the worker lost it, or
        130 when a second Ctrl-C detached from it.
    """
    job_id = (await start_job(args, client)).job_id
    interrupts = _Interrupts(streams, job_id)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGINT, interrupts.on_sigint)
    try:
        job = await _stream_until_end(client, job_id, streams, interrupts, args.grace)
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if not interrupts.detached or current is None:
            raise
        current.uncancel()
        note(streams, f"detached; job {job_id} is left to the daemon (jobctl status {job_id})")
        return ExitCode.INTERRUPTED
    finally:
        loop.remove_signal_handler(signal.SIGINT)
    end = outcome.describe_end(job)
    if end:
        note(streams, end)
    return outcome.exit_code(job)
