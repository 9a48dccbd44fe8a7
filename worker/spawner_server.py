"""The spawner's loop: requests from the manager, report records, and the reaping of children.

worker/spawner_main.py runs it in the spawner process. It is one ``selectors`` loop over the
socket, the SIGCHLD wakeup pipe (``signal.set_wakeup_fd``) and the report pipe of each
sandbox, open until its jobinit exits. Nothing in it blocks for a job: a spawn request forks
A (or hands the job to a prepared sandbox) and returns to the loop; the job's progress
arrives as report records and child exits (worker/spawner_sandbox.py decides what they mean).
"""

from __future__ import annotations

import contextlib
import gc
import os
import selectors
import signal
import socket

from worker import linux, sandbox, seccomp
from worker.config import JobWorld
from worker.sandbox_protocol import JOBINIT_CONTROL_SIGNAL
from worker.spawn_protocol import (
    MAX_MESSAGE,
    SEND_BUFFER,
    Failed,
    Kill,
    Killed,
    Message,
    Prepare,
    ProtocolError,
    Ready,
    Spawn,
    decode,
    encode,
)
from worker.spawner_sandbox import Sandbox

_TAG_SOCKET = "socket"
_TAG_SIGCHLD = "sigchld"


class Server:
    """The spawner's state: jobs being started, jobs running, and the loop serving them."""

    def __init__(self, sock: socket.socket, init_fd: int, world: JobWorld) -> None:
        self._sock = sock
        self._init_fd = init_fd
        self._world = world
        # Built once: every sandbox installs the same filter.
        self._seccomp_filter = seccomp.build()
        self._selector = selectors.DefaultSelector()
        self._wakeup_r, self._wakeup_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        # A Python-level handler is what makes the C handler write to the wakeup fd.
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)
        signal.set_wakeup_fd(self._wakeup_w, warn_on_full_buffer=False)
        # Readable once this process has exited: jobs use it to check the spawner is alive
        # after arming PDEATHSIG (see sandbox.py). pidfds are always close-on-exec.
        self._self_pidfd = os.pidfd_open(os.getpid())
        self._open: dict[int, Sandbox] = {}  # By report fd, until its EOF.
        self._prepared: dict[str, Sandbox] = {}  # Sandboxes waiting for a job, by key.
        self._by_b: dict[int, Sandbox] = {}  # By B's pid, until B is reaped.
        self._jobs: set[int] = set()  # Started and not yet reaped: the only pids we signal.
        self._selector.register(self._sock, selectors.EVENT_READ, _TAG_SOCKET)
        self._selector.register(self._wakeup_r, selectors.EVENT_READ, _TAG_SIGCHLD)

    def _send(self, message: Message) -> None:
        # A seqpacket send is all or nothing; it blocks only while the manager's reader is
        # behind, and the manager always reads.
        self._sock.send(encode(message), socket.MSG_NOSIGNAL)

    def serve(self) -> None:
        """Serves requests until the manager closes its end of the socket."""
        # Everything imported so far lives as long as the process: freezing it keeps the
        # collector from writing to those objects' headers, which would copy their pages
        # in every forked child (gc.freeze docs). Children disable the collector too.
        gc.freeze()
        self._send(Ready(os.getpid()))
        while True:
            for key, _ in self._selector.select():
                if key.data == _TAG_SOCKET:
                    if not self._on_request():
                        return
                elif key.data == _TAG_SIGCHLD:
                    with contextlib.suppress(BlockingIOError):
                        while os.read(self._wakeup_r, 512):
                            continue
                    self._reap()
                elif not key.data.eof:
                    self._read_report(key.data)

    def _on_request(self) -> bool:
        try:
            data, fds, flags, _ = socket.recv_fds(
                self._sock, MAX_MESSAGE, 1, socket.MSG_CMSG_CLOEXEC
            )
        except ConnectionResetError:
            return False
        try:
            if not data:
                return False
            if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
                raise ProtocolError(f"truncated request (flags {flags:#x})")
            match decode(data), len(fds):
                case Spawn() as spawn, 1:
                    self._spawn(spawn, data, fds[0])
                case Prepare() as prepare, 0:
                    self._prepare(prepare)
                case Kill() as kill, 0:
                    self._kill(kill)
                case message, count:
                    raise ProtocolError(f"unexpected {message.TYPE!r} with {count} fds")
        finally:
            for fd in fds:
                os.close(fd)
        return True

    def _fork_sandbox(self, cgroup_procs: tuple[str, ...] = ()) -> Sandbox:
        """Forks A, which makes B: an isolated init that waits for a job on ``control``.

        Args:
            cgroup_procs: cgroup.procs files that B joins before it waits for the job.

        Raises:
            OSError: The fork failed.
        """
        report_r, report_w = os.pipe2(os.O_CLOEXEC)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        channels = sandbox.Channels(
            report_w,
            theirs.fileno(),
            self._self_pidfd,
            self._init_fd,
            self._world,
            self._seccomp_filter,
            cgroup_procs,
        )
        try:
            pid = os.fork()
            if pid == 0:
                sandbox.run_intermediate(channels)
        except OSError:
            os.close(report_r)
            ours.close()
            raise
        finally:
            # Only the children hold these now: EOF on the report pipe means A, B and the
            # jobinit that B becomes have exited; B sees EOF on ``theirs`` if we close ours.
            os.close(report_w)
            theirs.close()
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
        os.set_blocking(report_r, False)
        new = Sandbox(report_fd=report_r, control=ours)
        self._open[report_r] = new
        self._selector.register(report_r, selectors.EVENT_READ, new)
        return new

    def _prepare(self, message: Prepare) -> None:
        """Makes a sandbox in the given cgroups, ahead of the spawn that will name its key.

        Forking, unsharing, mounting and above all joining cgroups (each move waits for an
        RCU grace period in the kernel, ~10 ms on an idle host) need no job: done here, they
        are off the path of the next start.
        """
        if message.key in self._prepared:
            raise ProtocolError(f"prepare of key {message.key!r} twice")
        with contextlib.suppress(OSError):  # The spawn forks anew and reports the error.
            prepared = self._fork_sandbox(message.cgroup_procs)
            prepared.key = message.key
            self._prepared[message.key] = prepared

    def _spawn(self, spawn: Spawn, record: bytes, output_fd: int) -> None:
        """Hands the job to its prepared sandbox (or a new one) and returns at once.

        The sandbox gets the Spawn ``record`` as the manager sent it, and decodes it itself.
        """
        try:
            chosen = self._prepared.pop(spawn.prepared or "", None) or self._fork_sandbox()
        except OSError as err:
            self._send(Failed(spawn.request_id, "fork", err.errno, "the setup process"))
            return
        chosen.request_id = spawn.request_id
        chosen.program = spawn.job.argv[0]
        # Never blocks: B's receive queue is empty and SO_SNDBUF fits any message. If B is
        # gone, the send fails and the EOF of its report pipe reports why.
        with contextlib.suppress(OSError):
            socket.send_fds(chosen.control, [record], [output_fd], socket.MSG_NOSIGNAL)
        chosen.control.close()

    def _read_report(self, box: Sandbox) -> None:
        """Reads what the sandbox's processes wrote so far, without blocking."""
        while not box.eof:
            try:
                chunk = os.read(box.report_fd, 4096)
            except BlockingIOError:
                return
            if not chunk:
                self._on_eof(box)
                return
            started = box.feed(chunk)
            if box.b_pid is not None and box.b_exit is None:
                self._by_b[box.b_pid] = box
            if started is not None:
                self._jobs.add(started.pid)
                self._send(started)

    def _on_eof(self, box: Sandbox) -> None:
        """Every process of the sandbox has exited: reply Failed, or Exited once B is reaped."""
        box.eof = True
        self._selector.unregister(box.report_fd)
        os.close(box.report_fd)
        box.control.close()
        del self._open[box.report_fd]
        if box.key is not None and self._prepared.get(box.key) is box:
            del self._prepared[box.key]  # A prepared sandbox died before it had a job.
        if not box.started and box.b_pid is not None and box.b_exit is None:
            os.kill(box.b_pid, signal.SIGKILL)  # Unreaped child: the pid cannot be reused.
        if (reply := box.failure() or box.exited()) is not None:
            self._send(reply)

    def _reap(self) -> None:
        """Reaps every exited child; reports jobs, ignores setup processes (A)."""
        while True:
            try:
                pid, status, usage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid not in self._by_b:
                # B writes its pid before it can exit, but that record may still be
                # unread: read them all before deciding the pid is an A.
                for unread in list(self._open.values()):
                    self._read_report(unread)
            box = self._by_b.pop(pid, None)
            if box is None:
                continue
            box.b_exit = (status, usage)
            self._jobs.discard(pid)
            if not box.eof:
                self._read_report(box)  # B is gone: this drains to EOF, which replies.
            elif (exited := box.exited()) is not None:
                self._send(exited)

    def _kill(self, kill: Kill) -> None:
        errno = None
        # Only unreaped jobs: their pids cannot have been reused by another process.
        delivered = kill.pid in self._jobs
        if delivered:
            try:
                if kill.signal == signal.SIGKILL:
                    os.kill(kill.pid, signal.SIGKILL)  # jobinit, and its namespace with it.
                else:
                    linux.sigqueue(kill.pid, JOBINIT_CONTROL_SIGNAL, kill.signal)
            except OSError as err:
                delivered, errno = False, err.errno
        self._send(Killed(kill.request_id, delivered, errno))

    def shutdown(self) -> None:
        """SIGKILLs every child (jobs and setup processes) and reaps them all."""
        signal.set_wakeup_fd(-1)
        children = f"/proc/self/task/{os.getpid()}/children"
        while True:
            # Re-read after each reap: an abandoned B is adopted when its A dies.
            with open(children) as f:
                for pid in f.read().split():
                    try:
                        os.kill(int(pid), signal.SIGKILL)
                    except ProcessLookupError:
                        continue
            try:
                os.waitpid(-1, 0)
            except ChildProcessError:
                return
