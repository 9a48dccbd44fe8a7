"""Launching the spawner process: a fresh interpreter, a socketpair, and its "ready" record.

The daemon never forks itself (grpcio runs C threads): asyncio's subprocess support execs the
interpreter from C with no Python between fork and exec. What runs in it: worker/spawner_main.py.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from worker.config import JobWorld
from worker.errors import SpawnerLost
from worker.spawn_protocol import MAX_MESSAGE, SEND_BUFFER, Fatal, ProtocolError, Ready, decode

# -I: ignore PYTHON* variables and the user site; -S: no site module. The daemon's sys.path
# (Bazel runfiles, a zipapp, a venv) is handed over explicitly instead.
_BOOTSTRAP = (
    "import sys; sys.path[:0] = sys.argv[5:]; from worker.spawner_main import main; "
    "main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4])"
)
# A fresh interpreter is ready in ~15 ms; this bounds a broken machine, not a slow one.
_READY_TIMEOUT_S = 30.0


def describe_returncode(returncode: int | None) -> str:
    """Returns how a process ended, for messages: "killed by SIGKILL", "exit status 1"."""
    if returncode is None:
        return "still running"
    if returncode < 0:
        return f"killed by {signal.Signals(-returncode).name}"
    return f"exit status {returncode}"


def _spawner_argv(sock_fd: int, init: Path, world: JobWorld) -> list[str]:
    paths = [os.path.abspath(p) for p in sys.path]
    return [
        *(sys.executable, "-I", "-S", "-c", _BOOTSTRAP),
        *(str(sock_fd), str(os.getpid()), os.path.abspath(init), world.to_json()),
        *paths,
    ]


async def launch(init: Path, world: JobWorld) -> tuple[asyncio.subprocess.Process, socket.socket]:
    """Starts the spawner and waits for its "ready" record.

    Args:
        init: The jobinit binary, which the spawner opens before it is ready.
        world: The jobs' view of the host's files.

    Returns:
        The process and the daemon's end of the socketpair (non-blocking).

    Raises:
        SpawnerLost: The spawner could not be started or did not get ready.
    """
    loop = asyncio.get_running_loop()
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
        ours.setblocking(False)
        # The C child of _posixsubprocess execs at once: no Python runs after fork.
        # start_new_session: a terminal's Ctrl-C must not reach the spawner (and its
        # jobs) before the daemon has stopped them in order.
        process = await asyncio.create_subprocess_exec(
            *_spawner_argv(theirs.fileno(), init, world),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=(theirs.fileno(),),
            start_new_session=True,
            env={},
            cwd="/",
        )
    except OSError as err:
        ours.close()
        raise SpawnerLost(f"cannot start the spawner: {err}") from err
    finally:
        theirs.close()
    try:
        async with asyncio.timeout(_READY_TIMEOUT_S):
            record = await loop.sock_recv(ours, MAX_MESSAGE)
            message = decode(record) if record else None
            if message != Ready(process.pid):
                await process.wait()
                match message:
                    case None:
                        said = "it closed its socket"
                    case Fatal():
                        said = message.message
                    case _:
                        said = f"its first message was {message.TYPE!r}"
                raise SpawnerLost(
                    f"the spawner (pid {process.pid}) failed to start: {said}, "
                    f"{describe_returncode(process.returncode)}"
                )
    except BaseException as err:
        ours.close()
        if process.returncode is None:
            process.kill()
            await process.wait()
        if isinstance(err, TimeoutError | ProtocolError):
            raise SpawnerLost(f"the spawner (pid {process.pid}) did not start: {err}") from err
        raise
    return process, ours
