"""The spawner's record of one sandbox, from the fork of its process A to the reaping of B.

B is the job's init process: worker/sandbox.py sets it up and execs jobinit (worker/init/)
in it, which runs the job's program as its child. Everything the spawner learns of a sandbox
arrives on its report pipe, written by A, B and jobinit in turn, and by wait4() of B. This
class is only state: worker/spawner_main.py feeds it and sends the replies it returns, so the
rules of what to reply, and when, live in one place:

* Started once jobinit reports that the program was exec'd, unless a step failed first;
* Failed at the pipe's EOF when the program never ran (B is killed if it still lives);
* Exited once B was reaped and the pipe drained, with the program's wait status as jobinit
  reported it, or B's own when jobinit could not report (SIGKILLed with its namespace).
"""

from __future__ import annotations

import dataclasses
import os
import resource
import socket

from worker.sandbox_protocol import ExecFailed, ProgramExec, ProgramExit, ReportPid, StepError
from worker.spawn_protocol import Exited, ExitStatus, Failed, ProtocolError, Started, decode


def exit_status(status: int, usage: resource.struct_rusage) -> ExitStatus:
    """Returns the ExitStatus of a wait(2) status and the rusage of the process that got it."""
    signaled = os.WIFSIGNALED(status)
    return ExitStatus(
        exit_code=None if signaled else os.WEXITSTATUS(status),
        signal=os.WTERMSIG(status) if signaled else None,
        core_dumped=signaled and os.WCOREDUMP(status),
        user_seconds=usage.ru_utime,
        system_seconds=usage.ru_stime,
        max_rss_kib=usage.ru_maxrss,
    )


@dataclasses.dataclass(slots=True)
class Sandbox:
    """One sandbox's progress.

    Attributes:
        report_fd: The spawner's end of the report pipe.
        control: The spawner's end of the socket that hands B its job.
        key: The prepare key while a prepared B waits for a job, else None.
        request_id: The Spawn it runs, once it has a job.
        program: The job's argv[0], which an exec failure names.
        b_pid: B's pid, once B reported it.
        error: The first failed step, if any.
        started: Whether Started was replied: the program runs.
        program_status: The program's wait status, once jobinit reported it.
        b_exit: B's wait status and rusage, once reaped.
        eof: Whether the report pipe reached EOF (it is closed then).
    """

    report_fd: int
    control: socket.socket
    key: str | None = None
    request_id: int | None = None
    program: str = ""
    b_pid: int | None = None
    error: StepError | None = None
    started: bool = False
    program_status: int | None = None
    b_exit: tuple[int, resource.struct_rusage] | None = None
    eof: bool = False
    _partial: bytearray = dataclasses.field(default_factory=bytearray)

    def feed(self, data: bytes) -> Started | None:
        """Takes bytes read from the report pipe; returns Started when the program runs.

        Raises:
            ProtocolError: A record is malformed or does not belong on a report pipe.
        """
        self._partial += data
        *lines, rest = self._partial.split(b"\n")
        self._partial = bytearray(rest)
        started = None
        for line in lines:
            match decode(bytes(line)):
                case ReportPid(pid=pid):
                    self.b_pid = pid
                case StepError() as error:
                    self.error = self.error or error
                case ExecFailed(errno=errno):
                    self.error = self.error or StepError("exec", errno, self.program)
                case ProgramExec() if self.error is None and self.request_id is not None:
                    self.started = True
                    assert self.b_pid is not None  # B reports itself before it can exec.
                    started = Started(self.request_id, self.b_pid)
                case ProgramExec():
                    continue  # After a failed step: the start failed all the same.
                case ProgramExit(status=status):
                    self.program_status = status
                case other:
                    raise ProtocolError(f"unexpected {other.TYPE!r} on a report pipe")
        return started

    def failure(self) -> Failed | None:
        """At EOF: returns the Failed reply of a job that never ran, else None."""
        if self.started or self.request_id is None:
            return None
        error = self.error or StepError("setup", None, "the setup processes died before exec")
        return Failed(self.request_id, error.step, error.errno, error.detail)

    def exited(self) -> Exited | None:
        """Returns Exited once the program ran, B was reaped and the report was read to EOF."""
        if not (self.started and self.eof and self.b_exit is not None):
            return None
        assert self.b_pid is not None
        status, usage = self.b_exit
        if self.program_status is not None:
            status = self.program_status
        return Exited(self.b_pid, exit_status(status, usage))
