"""jobctl: the command-line client of the jobworker daemon.

Usage: jobctl [connection flags] COMMAND [args]; ``jobctl --help`` lists the commands, the
connection flags with their environment variables, and the exit codes.
"""

from __future__ import annotations

import os


def run() -> None:
    """Entry point: parses the command line with argparse_flags and runs the command."""
    # gRPC's core logs connection failures to stderr itself, which would put a second,
    # cryptic report beside jobctl's one line. It reads GRPC_VERBOSITY once, when grpc is
    # imported (measured with grpcio 1.85.3: setting it later has no effect), so grpc and
    # everything importing it load only after this line.
    os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    from absl import app, flags

    from cli import connection, dispatch, parser

    # Show the connection flags in --help as if this main module defined them.
    flags.adopt_module_key_flags(connection)
    app.run(dispatch.main, flags_parser=parser.parse)


if __name__ == "__main__":
    run()
