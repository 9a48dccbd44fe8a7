"""jobctl's command line: the subcommands, their arguments and the help text.

Connection flags (--addr, --ca, --cert, --key, --connect_timeout, --rpc_timeout) are absl
flags defined in cli/connection.py; argparse_flags accepts them before or after the
subcommand. Everything after ``--`` is the job's command line, passed on untouched.
"""

from __future__ import annotations

import argparse
import signal
from collections.abc import Callable, Sequence
from typing import TypeVar

from absl.flags import argparse_flags

# connection defines the connection flags, which this parser must know to accept.
from cli import connection, units
from worker.limits import LIMIT_TABLE

_T = TypeVar("_T")

EPILOG = f"""\
connection (flags win over the environment):
  --addr  / JOBCTL_ADDR   daemon HOST:PORT (default {connection.DEFAULT_ADDR})
  --ca    / JOBCTL_CA     CA certificate that verifies the daemon
  --cert  / JOBCTL_CERT   your client certificate
  --key   / JOBCTL_KEY    its private key
  Relative paths are resolved against the directory `bazel run` was started from.

exit codes:
  0    success
  1    error (one line on stderr says what failed)
  2    invalid command line (usage on stderr)
  130  interrupted by Ctrl-C, or detached from `run` by a second Ctrl-C
  run and logs exit with the job's exit code instead, or 128+N when signal N killed
  the job (137 = SIGKILL, 143 = SIGTERM), as a shell does.

examples:
  id=$(jobctl start --memory 256MiB --cpu 0.5 -- /bin/sh -c 'echo hi; sleep 60')
  jobctl status $id
  jobctl logs -f $id
  jobctl stop --grace 2 $id
  jobctl kill -s STOP $id; jobctl kill -s CONT $id
  jobctl list -o json
  jobctl run --io-write 10MB/s -- /bin/dd if=/dev/zero of=/tmp/x bs=1M count=50
"""


def _typed(parse: Callable[[str], _T]) -> Callable[[str], _T]:
    """Adapts a units parser so argparse prints its message (it hides plain ValueErrors)."""

    def convert(text: str) -> _T:
        try:
            return parse(text)
        except units.QuantityError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    # What argparse calls the type in a message of its own: "size" for parse_size.
    convert.__name__ = parse.__name__.removeprefix("parse_")
    return convert


def _signal_name(text: str) -> str:
    """Returns the name the API takes, without "SIG": ``TERM`` for term, SIGTERM or 15.

    Which names are allowed is the daemon's to say (INVALID_ARGUMENT names them).

    Raises:
        units.QuantityError: A number that names no signal.
    """
    if text.isdigit():
        try:
            return signal.Signals(int(text)).name.removeprefix("SIG")
        except ValueError:
            raise units.QuantityError(
                f"invalid signal {text!r}: no signal has that number"
            ) from None
    return text.upper().removeprefix("SIG")


def _env_pair(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"invalid environment entry {text!r}: use NAME=VALUE")
    return name, value


def _add_limits(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("limits (unset: the daemon's defaults)")
    for name, info in LIMIT_TABLE.items():
        syntax = units.SYNTAX[info.unit]
        group.add_argument(
            info.flag, dest=name, type=_typed(syntax.parse), metavar=syntax.metavar, help=info.help
        )
    parser.add_argument(
        "-e",
        "--env",
        action="append",
        type=_env_pair,
        default=[],
        metavar="NAME=VALUE",
        help="the job's environment, repeatable (default: a minimal PATH only)",
    )
    parser.add_argument(
        "--cwd", default="", metavar="DIR", help="absolute working directory (default: /)"
    )
    parser.add_argument(
        "argv", nargs="+", metavar="CMD", help="after --: the program and its arguments"
    )


def _add_output(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-o",
        "--output",
        choices=("human", "json"),
        default="human",
        help="output format (default: human)",
    )


def _add_job_id(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("job_id", metavar="ID", help="the job id printed by start")


def build_parser(prog: str = "jobctl") -> argparse.ArgumentParser:
    """Returns the parser; the chosen subcommand's name is in the ``command`` attribute."""
    parser = argparse_flags.ArgumentParser(  # type: ignore[no-untyped-call]
        prog=prog,
        description="Run and watch Linux jobs on a jobworker daemon.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(name: str, summary: str, usage_tail: str = "") -> argparse.ArgumentParser:
        return commands.add_parser(
            name,
            help=summary,
            description=summary + usage_tail,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    start = add(
        "start",
        "Start a job and print only its id.",
        "\n\nexample: id=$(jobctl start --memory 256MiB -- /bin/sh -c 'echo hi')",
    )
    _add_limits(start)

    stop = add("stop", "Stop a job (SIGTERM, grace period, SIGKILL); print its final status.")
    stop.add_argument(
        "--grace",
        type=_typed(units.parse_seconds),
        metavar="SECONDS",
        help="seconds between SIGTERM and SIGKILL (default: the daemon's)",
    )
    _add_output(stop)
    _add_job_id(stop)

    status = add("status", "Show a job's state, exit status, usage and times.")
    _add_output(status)
    _add_job_id(status)

    logs = add(
        "logs",
        "Write a job's output (stdout and stderr) from its first byte, as raw bytes.",
        "\n\nexits with the job's exit code once the job has ended (128+N for signal N)",
    )
    logs.add_argument("-f", "--follow", action="store_true", help="follow until the job ends")
    _add_job_id(logs)

    kill = add(
        "kill",
        "Send a signal to a job's program, or with --all to every process of the job.",
        "\n\nthe daemon allows HUP, INT, QUIT, USR1, USR2, TERM, KILL, CONT, STOP, WINCH and ALRM",
    )
    kill.add_argument(
        "-s",
        "--signal",
        type=_typed(_signal_name),
        default="TERM",
        metavar="SIGNAL",
        help="a name (TERM, SIGTERM, term) or a number (15); default TERM",
    )
    kill.add_argument(
        "--all", action="store_true", help="signal every process of the job, not only its program"
    )
    _add_job_id(kill)

    listing = add("list", "List your jobs (all jobs for an admin).")
    _add_output(listing)

    run = add(
        "run",
        "Start a job, stream its output, and exit with its exit code.",
        "\n\nexits with the job's code, or 128+N when signal N killed it.\n"
        "Ctrl-C stops the job (SIGTERM, then SIGKILL after the grace period) and exits\n"
        "with the job's resulting code; a second Ctrl-C detaches at once (exit 130) and\n"
        "leaves the job to the daemon.",
    )
    _add_limits(run)
    run.add_argument(
        "--grace",
        type=_typed(units.parse_seconds),
        metavar="SECONDS",
        help="on Ctrl-C: seconds between SIGTERM and SIGKILL (default: the daemon's)",
    )
    return parser


def parse(argv: Sequence[str]) -> argparse.Namespace:
    """Parses ``argv`` (with the program name first); exits 2 with usage when invalid."""
    return build_parser().parse_args(list(argv[1:]))
