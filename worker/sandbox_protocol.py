"""How the spawner and a sandbox talk: records on the report pipe, and jobinit's signal.

Each record is one line of JSON, written with one ``write`` of less than PIPE_BUF bytes, so
that writers sharing the pipe never interleave (pipe(7)). A and B write with
``write_report``; jobinit (worker/init/jobinit.c) formats the same records in C. See
worker/spawn_protocol.py for the channels, worker/spawner_sandbox.py for their reading.
"""

from __future__ import annotations

import dataclasses
import os
import select
import signal

from worker.spawn_protocol import Message, encode, register

# The longest detail a StepError carries, so that its record stays below PIPE_BUF.
_MAX_DETAIL = select.PIPE_BUF // 2

JOBINIT_REPORT_FD = 3
"""The fd on which jobinit finds the report pipe (REPORT_FD in jobinit.c)."""

JOBINIT_CONTROL_SIGNAL = signal.SIGRTMAX
"""Queued to jobinit with sigqueue(3), its value a signal that jobinit sends to the program.

That is how a signal reaches the program alone, SIGSTOP included (jobinit.c, "Signals"). It
is the kernel's last signal, 64, in jobinit.c as in Python.
"""


@register
@dataclasses.dataclass(frozen=True, slots=True)
class ReportPid(Message):
    """Report record: the job's init runs as ``pid`` (as the spawner sees it)."""

    TYPE = "pid"
    pid: int


@register
@dataclasses.dataclass(frozen=True, slots=True)
class StepError(Message):
    """Report record: a setup step failed in a sandbox process or in jobinit."""

    TYPE = "error"
    step: str
    errno: int | None
    detail: str


@register
@dataclasses.dataclass(frozen=True, slots=True)
class ProgramExec(Message):
    """Report record from jobinit: the job's program was exec'd."""

    TYPE = "exec"


@register
@dataclasses.dataclass(frozen=True, slots=True)
class ExecFailed(Message):
    """Report record from jobinit: execve of the program failed with ``errno``."""

    TYPE = "exec_failed"
    errno: int


@register
@dataclasses.dataclass(frozen=True, slots=True)
class ProgramExit(Message):
    """Report record from jobinit: the program's raw wait(2) status."""

    TYPE = "exit"
    status: int


def write_report(fd: int, record: ReportPid | StepError) -> None:
    """Writes one report record with a single atomic write; used in forked children only."""
    if isinstance(record, StepError):
        record = dataclasses.replace(record, detail=record.detail[:_MAX_DETAIL])
    os.write(fd, encode(record) + b"\n")
