"""The spawner process: a single-threaded fork server that starts, signals and reaps jobs.

worker/spawner.py launches it as a fresh interpreter (``python -I -S``) and talks to it over
a socketpair (protocol: worker/spawn_protocol.py). It imports only modules that start no
threads, so forking it is safe. The daemon itself never forks: grpcio runs C threads, and
Python between fork and exec in a threaded process can deadlock on a lock another thread held.
This module sets the process up and runs the loop of worker/spawner_server.py.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import stat

from worker import linux
from worker.config import JobWorld
from worker.spawn_protocol import Fatal, encode
from worker.spawner_server import Server


def _open_init(path: str) -> int:
    """Opens jobinit for fexecve(3): each B runs it from this fd, as the job's user.

    Opened here, as root, so that jobs need no path to it: the daemon's runfiles may sit
    where the job's user cannot search, and the job's mount namespace may not show them.

    Raises:
        OSError: It cannot be opened, or the job's user could not execute it.
    """
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode) or not mode & stat.S_IXOTH:
        os.close(fd)
        raise PermissionError(errno.EACCES, "not a file every user may execute", path)
    return fd


def main(sock_fd: int, daemon_pid: int, init_path: str, world: str) -> None:
    """Runs the spawner until the daemon closes the socket or dies.

    Args:
        sock_fd: This process's end of the socketpair.
        daemon_pid: The daemon's pid, to check that it did not die before we started.
        init_path: The jobinit binary (worker/init/).
        world: The jobs' view of the host's files, as JobWorld.to_json encodes it.
    """
    # Dying with the daemon is the socket's EOF: the kernel closes a dead process's files
    # in do_exit() before it notifies its parent, so EOF is as prompt as a PDEATHSIG would
    # be. Then `shutdown` SIGKILLs every job's init, which ends its whole PID namespace.
    # No PDEATHSIG here on purpose: SIGKILL would end this process before `shutdown`, and
    # the jobs' own PDEATHSIG is no guarantee, because a job may clear it (prctl(2)).
    if os.getppid() != daemon_pid:
        os._exit(1)
    # Orphaned descendants (each job's init once its intermediate process exits) are
    # reparented to us, so we reap them and learn their exit status.
    linux.prctl(linux.PR_SET_CHILD_SUBREAPER, 1)
    os.set_inheritable(sock_fd, False)
    # Jobs inherit dispositions and the mask across fork and execve: Python ignores SIGPIPE
    # and SIGXFSZ, and the daemon's thread may have blocked signals. Resetting them here
    # once keeps that work out of every forked child. Sends use MSG_NOSIGNAL instead.
    for signum in (signal.SIGPIPE, signal.SIGXFSZ):
        signal.signal(signum, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    sock = socket.socket(fileno=sock_fd)
    try:
        server = Server(sock, _open_init(init_path), JobWorld.from_json(world))
    except OSError as err:
        with contextlib.suppress(OSError):
            sock.send(encode(Fatal(f"cannot set up jobs: {err}")), socket.MSG_NOSIGNAL)
        raise
    try:
        server.serve()
    except BaseException as err:
        # Best effort: the manager reports it as the reason the spawner was lost.
        with contextlib.suppress(OSError):
            sock.send(encode(Fatal(repr(err)[:4000])), socket.MSG_NOSIGNAL)
        raise
    finally:
        server.shutdown()
