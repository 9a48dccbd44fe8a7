"""Child-side setup of one job, run between fork and exec inside the spawner process only.

The spawner (worker/spawner_main.py) is single-threaded, so running Python in its forked
children is safe; the daemon never imports this module. Two processes are involved:

* **A, the intermediate process** (child of the spawner): joins the job's cgroups, unshares
  the PID, mount and network namespaces, forks B and exits. A must exist because
  unshare(CLONE_NEWPID) moves only the caller's *children* into the new namespace.
* **B, the job's init** (PID 1 of the new PID namespace): reports its pid, sets up mounts and
  loopback, waits until A has exited, drops privileges, arms its parent-death signal, sets
  up fds and execs the job's program, which therefore is PID 1 of its namespace.

Neither returns: each ends in ``os._exit`` or ``execve``. A failing step writes
``{"step", "errno", "detail"}`` to the close-on-exec report pipe and exits with 127, so the
spawner can tell "setup failed" from "the program ran and exited 127".
"""

from __future__ import annotations

import dataclasses
import gc
import os
import select
import signal
from collections.abc import Mapping
from typing import NoReturn

from worker import linux
from worker.spawn_protocol import write_report

NAMESPACES = linux.CLONE_NEWPID | linux.CLONE_NEWNS | linux.CLONE_NEWNET
_FRESH_MOUNT_FLAGS = linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC
_SETUP_FAILED = 127
_MAX_FD = 0x7FFFFFFF


@dataclasses.dataclass(frozen=True, slots=True)
class JobSetup:
    """Everything the forked processes need, decided by the spawner before fork.

    Attributes:
        argv: Program and arguments; argv[0] is looked up in env["PATH"] unless it has a "/".
        env: The job's complete environment.
        cwd: Working directory, entered after the privilege drop.
        uid: User id the program runs as.
        gid: Group id the program runs as; supplementary groups are cleared.
        cgroup_procs: cgroup.procs files that A joins before anything else.
        output_fd: Becomes the job's stdout and stderr.
        report_fd: Write end of the close-on-exec report pipe.
        spawner_pidfd: A pidfd of the spawner, readable once the spawner has exited.
    """

    argv: tuple[str, ...]
    env: Mapping[str, str]
    cwd: str
    uid: int
    gid: int
    cgroup_procs: tuple[str, ...]
    output_fd: int
    report_fd: int
    spawner_pidfd: int


class _StepFailed(Exception):
    def __init__(self, step: str, err: OSError, detail: str) -> None:
        super().__init__(step)
        self.step = step
        self.errno = err.errno
        self.detail = detail


def _fail(setup: JobSetup, step: str, errno: int | None, detail: str) -> NoReturn:
    try:
        write_report(
            setup.report_fd, {"type": "error", "step": step, "errno": errno, "detail": detail}
        )
    finally:
        os._exit(_SETUP_FAILED)


def _keep_only(fds: set[int]) -> None:
    """Closes every fd from 3 up except ``fds`` (os.closerange uses close_range(2))."""
    low = 3
    for fd in sorted(f for f in fds if f >= low):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, _MAX_FD)


def run_intermediate(setup: JobSetup) -> NoReturn:
    """Runs process A: cgroups, unshare, fork B, exit."""
    step, detail = "setup", ""
    gc.disable()  # A and B live for milliseconds; a collection would copy-on-write pages.
    try:
        # The spawner's SIGCHLD handler writes to its wakeup fd: A closes that fd below, and
        # the number may be reused by the time B's exit could signal A.
        signal.set_wakeup_fd(-1)
        _keep_only({setup.output_fd, setup.report_fd, setup.spawner_pidfd})
        step = "cgroup"
        # Joining first means B, and so every process of the job, is born inside the
        # cgroups: limits hold from the program's first instruction. "0" means the writer
        # (cgroup-v2.rst "cgroup.procs"; the v1 cgroups.txt accepts it too).
        for path in setup.cgroup_procs:
            detail = path
            fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(fd, b"0")
            finally:
                os.close(fd)
        step, detail = "unshare", "pid, mount and network namespaces"
        # B polls this pidfd to learn that A has fully exited (see _prepare_init).
        own_pidfd = os.pidfd_open(os.getpid())
        linux.unshare(NAMESPACES)
        step, detail = "fork", "the job's init process"
        if os.fork() == 0:
            run_init(setup, own_pidfd)
    except OSError as err:
        _fail(setup, step, err.errno, detail)
    except BaseException as err:  # Nothing may escape a forked child.
        _fail(setup, step, None, f"{detail}: {err!r}")
    os._exit(0)


def run_init(setup: JobSetup, parent_pidfd: int) -> NoReturn:
    """Runs process B, the namespace's PID 1, up to the exec of the job's program."""
    try:
        _prepare_init(setup, parent_pidfd)
    except _StepFailed as err:
        _fail(setup, err.step, err.errno, err.detail)
    except BaseException as err:  # Nothing may escape a forked child.
        _fail(setup, "setup", None, repr(err))
    try:
        os.execvpe(setup.argv[0], setup.argv, dict(setup.env))
    except OSError as err:
        _fail(setup, "exec", err.errno, setup.argv[0])
    except BaseException as err:  # Nothing may escape a forked child.
        _fail(setup, "exec", None, f"{setup.argv[0]}: {err!r}")


def _wait_readable(fd: int, timeout_ms: int) -> bool:
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(timeout_ms))


def _prepare_init(setup: JobSetup, parent_pidfd: int) -> None:
    """Performs B's steps in order; each failure raises _StepFailed naming the step."""
    step, detail = "report", "pid"
    try:
        # The host's /proc is still mounted here: /proc/self names B's pid as the spawner
        # sees it. B reports itself, so a job is known even if A is killed after the fork.
        # Formatted by hand: every module a forked child touches costs copy-on-write faults.
        os.write(setup.report_fd, b'{"type":"pid","pid":%d}\n' % int(os.readlink("/proc/self")))
        step, detail = "mount", "/"
        # Private first, recursively: otherwise the proc mount below would propagate to the
        # host's shared "/" (mount_namespaces(7), "Shared subtrees").
        linux.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)
        # A proc mount shows the PID namespace of the process that mounts it (proc(5)).
        detail = "/proc"
        linux.mount("proc", "/proc", "proc", _FRESH_MOUNT_FLAGS)
        # A sysfs mount shows the network devices of the mounter's network namespace, so
        # /sys/class/net lists only lo; read-only, and it hides the host's cgroup mounts.
        detail = "/sys"
        linux.mount("sysfs", "/sys", "sysfs", _FRESH_MOUNT_FLAGS | linux.MS_RDONLY)
        step, detail = "network", "lo"
        linux.set_interface_up("lo")
        step, detail = "setup", "waiting for the intermediate process to exit"
        # PDEATHSIG fires when the parent exits, so it may be armed only once B's parent is
        # the spawner (the subreaper), not A. A pidfd is readable once its process is a
        # zombie, and exit_notify() reparents the children before that. (EOF on a pipe of
        # A's is not enough: do_exit() closes files before it reparents children.)
        _wait_readable(parent_pidfd, -1)
        os.close(parent_pidfd)
        step, detail = "credentials", f"uid {setup.uid} gid {setup.gid}"
        # Own session and process group, so the job can be signalled as a group and has no
        # controlling terminal.
        os.setsid()
        os.setgroups([])
        os.setresgid(setup.gid, setup.gid, setup.gid)
        os.setresuid(setup.uid, setup.uid, setup.uid)
        linux.prctl(linux.PR_SET_NO_NEW_PRIVS, 1)
        step, detail = "chdir", setup.cwd
        os.chdir(setup.cwd)
        step, detail = "pdeathsig", "SIGKILL"
        # Armed only now: changing the effective uid or gid clears it (prctl(2)).
        linux.prctl(linux.PR_SET_PDEATHSIG, signal.SIGKILL)
        # If the spawner died before the line above, nothing will fire: check it is alive,
        # as prctl(2) advises. getppid() is 0 for a namespace's init, so ask the pidfd.
        if _wait_readable(setup.spawner_pidfd, 0):
            os._exit(_SETUP_FAILED)
        step, detail = "stdio", "/dev/null and the output"
        # The signal dispositions and mask are the spawner's, which reset them at start.
        null = os.open("/dev/null", os.O_RDWR)
        os.dup2(null, 0)
        os.dup2(setup.output_fd, 1)
        os.dup2(setup.output_fd, 2)
        # Only 0, 1, 2 and the close-on-exec report pipe remain, so only 0, 1, 2 reach the job.
        _keep_only({setup.report_fd})
    except OSError as err:
        raise _StepFailed(step, err, detail) from err
