"""Child-side setup of one job, run between fork and exec inside the spawner process only.

The spawner (worker/spawner_main.py) is single-threaded, so running Python in its forked
children is safe; the daemon never imports this module. Two processes are involved:

* **A, the intermediate process** (child of the spawner): unshares the PID, mount, network,
  IPC and UTS namespaces, forks B and exits. A must exist because unshare(CLONE_NEWPID)
  moves only the caller's *children* into the new namespace.
* **B, the job's init** (PID 1 of the new PID namespace): reports its pid, makes its mounts
  private, brings up loopback and waits until A has exited (``_isolate``); then it joins the
  job's cgroups, enters a cgroup namespace rooted there and builds the job's root
  (``_settle``, worker/job_root.py). None of that needs the job, so a prepared B does it
  before the start and waits. Given the job, B sets its hostname, drops privileges, arms its
  parent-death signal, sets up fds, installs the seccomp filter (``_enter_job``,
  worker/seccomp.py) and execs jobinit (worker/init/jobinit.c) with the report pipe as fd 3.
  jobinit stays PID 1: it runs the job's program as its child and reports how it ended.

Neither returns: each ends in ``os._exit`` or ``execve``. A failing step writes a StepError
to the close-on-exec report pipe and exits with 127, so the spawner can tell "setup failed"
from "the program ran and exited 127".
"""

from __future__ import annotations

import dataclasses
import gc
import os
import select
import signal
import socket
from typing import NoReturn

from worker import job_root, linux, seccomp
from worker.config import JobWorld
from worker.sandbox_protocol import JOBINIT_REPORT_FD, ReportPid, StepError, write_report
from worker.spawn_protocol import MAX_MESSAGE, Spawn, SpawnRequest, decode

NAMESPACES = (
    linux.CLONE_NEWPID
    | linux.CLONE_NEWNS
    | linux.CLONE_NEWNET
    | linux.CLONE_NEWIPC  # The host's SysV objects and POSIX message queues are not the job's.
    | linux.CLONE_NEWUTS  # Its own hostname.
)
_SETUP_FAILED = 127
_MAX_FD = 0x7FFFFFFF


@dataclasses.dataclass(frozen=True, slots=True)
class Channels:
    """What a sandbox is set up with, decided by the spawner before it forks A.

    Attributes:
        report_fd: Write end of the close-on-exec report pipe.
        control_fd: B's end of a seqpacket socketpair on which the spawner sends the job
            (a spawn message with the output fd attached); EOF means "never mind".
        spawner_pidfd: A pidfd of the spawner, readable once the spawner has exited.
        init_fd: jobinit, opened close-on-exec by the spawner; B execs it (fexecve(3)).
        world: The job's view of the host's files.
        seccomp_filter: The filter B installs last (worker/seccomp.py).
        cgroup_procs: cgroup.procs files that B joins before it waits for the job (empty:
            B joins the job's own ones once it has the job).
    """

    report_fd: int
    control_fd: int
    spawner_pidfd: int
    init_fd: int
    world: JobWorld
    seccomp_filter: bytes
    cgroup_procs: tuple[str, ...] = ()


class _StepFailed(Exception):
    def __init__(self, step: str, err: OSError | None, detail: str) -> None:
        super().__init__(step)
        self.step = step
        self.errno = None if err is None else err.errno
        self.detail = detail


def _fail(channels: Channels, step: str, errno: int | None, detail: str) -> NoReturn:
    try:
        write_report(channels.report_fd, StepError(step, errno, detail))
    finally:
        os._exit(_SETUP_FAILED)


def _keep_only(fds: set[int]) -> None:
    """Closes every fd from 3 up except ``fds`` (os.closerange uses close_range(2))."""
    low = 3
    for fd in sorted(f for f in fds if f >= low):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, _MAX_FD)


def _wait_readable(fd: int, timeout_ms: int) -> bool:
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(timeout_ms))


def run_intermediate(channels: Channels) -> NoReturn:
    """Runs process A: unshare, fork B, exit."""
    step, detail = "setup", ""
    gc.disable()  # A and B live for milliseconds; a collection would copy-on-write pages.
    try:
        # The spawner's SIGCHLD handler writes to its wakeup fd: A closes that fd below, and
        # the number may be reused by the time B's exit could signal A.
        signal.set_wakeup_fd(-1)
        _keep_only(
            {channels.report_fd, channels.control_fd, channels.spawner_pidfd, channels.init_fd}
        )
        step, detail = "unshare", "pid, mount, network, IPC and UTS namespaces"
        # B polls this pidfd to learn that A has fully exited (see _isolate).
        own_pidfd = os.pidfd_open(os.getpid())
        linux.unshare(NAMESPACES)
        step, detail = "fork", "the job's init process"
        if os.fork() == 0:
            run_init(channels, own_pidfd)
    except OSError as err:
        _fail(channels, step, err.errno, detail)
    except BaseException as err:  # Nothing may escape a forked child.
        _fail(channels, step, None, f"{detail}: {err!r}")
    os._exit(0)


def run_init(channels: Channels, parent_pidfd: int) -> NoReturn:
    """Runs process B, the namespace's PID 1: isolation, then the job, up to jobinit's exec."""
    try:
        _isolate(channels, parent_pidfd)
        prepared = bool(channels.cgroup_procs)
        if prepared:
            _settle(channels.cgroup_procs, channels.world)
        job, output_fd = _receive_job(channels.control_fd)
        if not prepared:
            _settle(job.cgroup_procs, channels.world)
        elif job.cgroup_procs != channels.cgroup_procs:
            raise _StepFailed("cgroup", None, "a prepared sandbox got another cgroup's job")
        _enter_job(channels, job, output_fd)
        init_fd = channels.init_fd
        if init_fd == JOBINIT_REPORT_FD:
            init_fd = os.dup(init_fd)  # Close-on-exec, like the original.
        os.dup2(channels.report_fd, JOBINIT_REPORT_FD)
        os.set_inheritable(JOBINIT_REPORT_FD, True)  # dup2 onto itself keeps close-on-exec.
        # Only 0, 1, 2, the report pipe (now fd 3) and jobinit's close-on-exec fd remain.
        _keep_only({JOBINIT_REPORT_FD, init_fd})
        channels = dataclasses.replace(channels, report_fd=JOBINIT_REPORT_FD)
    except _StepFailed as err:
        _fail(channels, err.step, err.errno, err.detail)
    except BaseException as err:  # Nothing may escape a forked child.
        _fail(channels, "setup", None, repr(err))
    try:
        os.execve(init_fd, ["jobinit", *job.argv], dict(job.env))
    except OSError as err:
        _fail(channels, "init", err.errno, "the job's init, worker/init/jobinit")
    except BaseException as err:  # Nothing may escape a forked child.
        _fail(channels, "init", None, f"the job's init: {err!r}")


def _isolate(channels: Channels, parent_pidfd: int) -> None:
    """B's steps that need no job: for a prepared B, all done before the start."""
    step, detail = "report", "pid"
    try:
        # The host's /proc is still mounted here: /proc/self names B's pid as the spawner
        # sees it. B reports itself, so a job is known even if A is killed after the fork.
        write_report(channels.report_fd, ReportPid(int(os.readlink("/proc/self"))))
        step, detail = "mount", "/"
        # Private first, recursively: otherwise the job's mounts would propagate to the
        # host's shared "/" (mount_namespaces(7), "Shared subtrees").
        linux.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)
        step, detail = "network", "lo"
        linux.set_interface_up("lo")
        step, detail = "setup", "waiting for the intermediate process to exit"
        # PDEATHSIG fires when the parent exits, so it may be armed only once B's parent is
        # the spawner (the subreaper), not A. A pidfd is readable once its process is a
        # zombie, and exit_notify() reparents the children before that. (EOF on a pipe of
        # A's is not enough: do_exit() closes files before it reparents children.)
        _wait_readable(parent_pidfd, -1)
        os.close(parent_pidfd)
        # If B is to wait for a job, copy the pages it shares with the spawner now rather
        # than take one fault per page as the job's setup writes them (~2 ms of a start).
        # If the job is already there, that would only add ~10 ms to its start. Before the
        # cgroup join: these pages are charged to the spawner's cgroup, not the job's.
        if not _wait_readable(channels.control_fd, 0):
            linux.populate_private_writable()
    except OSError as err:
        raise _StepFailed(step, err, detail) from err


def _settle(procs_files: tuple[str, ...], world: JobWorld) -> None:
    """Moves B into the job's cgroups and root; B is still its namespace's only process.

    So the whole job is in its cgroups before the program's first instruction. The cgroup
    namespace comes after the join: its root is the cgroup of whoever unshares it
    (cgroup_namespaces(7)), and the job then sees its own cgroup as "/".
    """
    step, detail = "cgroup", ""
    try:
        # "0" means the writer (cgroup-v2.rst "cgroup.procs"; the v1 cgroups.txt accepts it).
        for detail in procs_files:
            fd = os.open(detail, os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(fd, b"0")
            finally:
                os.close(fd)
        step, detail = "unshare", "cgroup namespace"
        linux.unshare(linux.CLONE_NEWCGROUP)
        step, detail = "root", f"the job's root from {world.root}"
        job_root.enter(world)
    except OSError as err:
        raise _StepFailed(step, err, detail) from err


def _receive_job(control_fd: int) -> tuple[SpawnRequest, int]:
    """Blocks until the spawner assigns a job; exits quietly if it never will (EOF)."""
    with socket.socket(fileno=control_fd) as control:
        record, fds, _, _ = socket.recv_fds(control, MAX_MESSAGE, 1)
    if not record or len(fds) != 1:
        os._exit(_SETUP_FAILED)
    spawn = decode(record)
    if not isinstance(spawn, Spawn):
        raise TypeError(f"expected a spawn record, got {spawn.TYPE!r}")
    return spawn.job, fds[0]


def _enter_job(channels: Channels, job: SpawnRequest, output_fd: int) -> None:
    """B's steps for one job, in order; each failure raises _StepFailed naming the step."""
    step, detail = "hostname", job.hostname
    try:
        socket.sethostname(job.hostname)  # In B's own UTS namespace.
        step, detail = "credentials", f"uid {job.uid} gid {job.gid}"
        # Own session and process group, so the job can be signalled as a group and has no
        # controlling terminal.
        os.setsid()
        os.setgroups([])
        os.setresgid(job.gid, job.gid, job.gid)
        os.setresuid(job.uid, job.uid, job.uid)
        linux.prctl(linux.PR_SET_NO_NEW_PRIVS, 1)
        step, detail = "chdir", job.cwd
        os.chdir(job.cwd)
        step, detail = "pdeathsig", "SIGKILL"
        # Armed only now: changing the effective uid or gid clears it (prctl(2)).
        linux.prctl(linux.PR_SET_PDEATHSIG, signal.SIGKILL)
        # If the spawner died before the line above, nothing will fire: check it is alive,
        # as prctl(2) advises. getppid() is 0 for a namespace's init, so ask the pidfd.
        if _wait_readable(channels.spawner_pidfd, 0):
            os._exit(_SETUP_FAILED)
        step, detail = "stdio", "/dev/null and the output"
        # The signal dispositions and mask are the spawner's, which reset them at start.
        null = os.open("/dev/null", os.O_RDWR)
        os.dup2(null, 0)
        os.dup2(output_fd, 1)
        os.dup2(output_fd, 2)
        step, detail = "seccomp", "the job's system call filter"
        # Last: it denies what the steps above needed, and no_new_privs lets a process
        # without capabilities install it (seccomp(2)). jobinit runs under it already.
        seccomp.install(channels.seccomp_filter)
    except OSError as err:
        raise _StepFailed(step, err, detail) from err
