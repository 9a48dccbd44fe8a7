"""Runs one parsed jobctl command: connects, dispatches, and turns failures into exit codes."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Awaitable, Callable

from cli import commands, connection, streaming
from cli.client import JobClient
from cli.commands import Streams
from cli.errors import CliError, ExitCode

_Command = Callable[[argparse.Namespace, JobClient, Streams], Awaitable[int]]

_COMMANDS: dict[str, _Command] = {
    "start": commands.start,
    "stop": commands.stop,
    "status": commands.status,
    "list": commands.list_jobs,
    "kill": commands.kill,
    "logs": streaming.logs,
    "run": streaming.run,
}


async def execute(args: argparse.Namespace, settings: connection.Settings, streams: Streams) -> int:
    """Connects and runs the chosen command.

    Args:
        args: The parsed command line.
        settings: Where the daemon is and which credentials to use.
        streams: Where output goes.

    Returns:
        The exit code.

    Raises:
        CliError: The command failed.
    """
    async with connection.open_channel(settings) as channel:
        return await _COMMANDS[args.command](args, JobClient(channel, settings), streams)


def _silence_stdout() -> None:
    # The reader of our stdout went away (`jobctl logs ID | head`). Point fd 1 at
    # /dev/null so the interpreter's final flush does not print a second BrokenPipeError;
    # see the "Note on SIGPIPE" in the Python docs of the signal module.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def main(args: argparse.Namespace) -> int:
    """Runs one command and returns the process exit code (see ``jobctl --help``)."""
    streams = Streams(out=sys.stdout.buffer, err=sys.stderr)
    try:
        return asyncio.run(execute(args, connection.settings_from_flags(), streams))
    except CliError as err:
        commands.note(streams, str(err))
        return ExitCode.ERROR
    except KeyboardInterrupt:
        return ExitCode.INTERRUPTED
    except BrokenPipeError:
        _silence_stdout()
        return ExitCode.ERROR
