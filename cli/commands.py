"""The request-response commands: start, stop, status and list.

Each command takes the parsed arguments, a connected client and the output streams, and
returns jobctl's exit code; failures raise CliError.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
from typing import BinaryIO, TextIO

from cli import render
from cli.client import JobClient
from cli.errors import ExitCode
from jobworker.v1 import jobworker_pb2
from worker.limits import LIMIT_TABLE


@dataclasses.dataclass(frozen=True, slots=True)
class Streams:
    """Where a command writes.

    Attributes:
        out: Standard output as bytes: job output is binary, and one stream for text and
            bytes keeps their order.
        err: Standard error, for the error line and notes about a job's end.
    """

    out: BinaryIO
    err: TextIO


def _write_all(out: BinaryIO, data: bytes) -> None:
    out.write(data)
    out.flush()


async def write_out(streams: Streams, data: bytes) -> None:
    """Writes and flushes ``data`` on a worker thread.

    A slow reader on a pipe (a pager, ``head`` not reading yet) then stalls only the copy,
    not the event loop that must still see Ctrl-C and keepalive.
    """
    await asyncio.to_thread(_write_all, streams.out, data)


async def write_text(streams: Streams, text: str) -> None:
    """Writes UTF-8 text to standard output."""
    await write_out(streams, text.encode())


def note(streams: Streams, text: str) -> None:
    """Writes one ``jobctl:``-prefixed line to standard error."""
    streams.err.write(f"jobctl: {text}\n")
    streams.err.flush()


def limits_from_args(args: argparse.Namespace) -> jobworker_pb2.Limits:
    """Returns the Limits message for the limit flags given; unset flags stay unset."""
    # cli/parser.py stores each limit flag under the limit's name, the proto field's too.
    return jobworker_pb2.Limits(**{name: getattr(args, name) for name in LIMIT_TABLE})


async def start_job(args: argparse.Namespace, client: JobClient) -> jobworker_pb2.JobStatus:
    """Starts the job described by start's and run's arguments."""
    return await client.start(args.argv, limits_from_args(args), dict(args.env), args.cwd)


async def start(args: argparse.Namespace, client: JobClient, streams: Streams) -> int:
    """``jobctl start``: prints only the job id, for ``id=$(jobctl start -- ...)``."""
    job = await start_job(args, client)
    await write_text(streams, job.job_id + "\n")
    return ExitCode.OK


async def _print_status(
    args: argparse.Namespace, job: jobworker_pb2.JobStatus, streams: Streams
) -> None:
    if args.output == "json":
        await write_text(streams, render.status_json(job))
    else:
        await write_text(streams, render.status_text(job))


async def stop(args: argparse.Namespace, client: JobClient, streams: Streams) -> int:
    """``jobctl stop``: stops the job and prints its final status."""
    await _print_status(args, await client.stop(args.job_id, args.grace), streams)
    return ExitCode.OK


async def status(args: argparse.Namespace, client: JobClient, streams: Streams) -> int:
    """``jobctl status``: prints the job's status."""
    await _print_status(args, await client.get(args.job_id), streams)
    return ExitCode.OK


async def kill(args: argparse.Namespace, client: JobClient, streams: Streams) -> int:
    """``jobctl kill``: signals the job and, like the shell's kill, prints nothing on success."""
    await client.signal(args.job_id, args.signal, everyone=args.all)
    return ExitCode.OK


async def list_jobs(args: argparse.Namespace, client: JobClient, streams: Streams) -> int:
    """``jobctl list``: prints the caller's jobs as a table or JSON array."""
    jobs = await client.list()
    text = render.list_json(jobs) if args.output == "json" else render.table_text(jobs)
    await write_text(streams, text)
    return ExitCode.OK
