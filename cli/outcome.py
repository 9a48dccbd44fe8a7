"""What a finished job means for jobctl's own exit code, and how to say it in words."""

from __future__ import annotations

import signal

from cli.errors import ExitCode
from jobworker.v1 import jobworker_pb2

# A shell reports a program killed by signal N as 128 + N (bash(1), "EXIT STATUS"), so
# `jobctl run` composes with scripts the same way the program itself would.
SIGNAL_EXIT_BASE = 128


def signal_name(number: int) -> str:
    """Returns ``SIGKILL`` for 9, or ``signal 64`` for numbers Python has no name for."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def exit_code(job: jobworker_pb2.JobStatus) -> int:
    """Returns the exit code jobctl passes on for an ended job.

    Args:
        job: A job status; a running job counts as success (there is nothing to pass on).

    Returns:
        The job's exit code; 128 + the signal number if a signal ended it; 1 if the worker
        lost the job.
    """
    if job.HasField("exit_code"):
        return job.exit_code
    if job.HasField("signal"):
        return SIGNAL_EXIT_BASE + job.signal
    if job.state == jobworker_pb2.JOB_STATE_FAILED:
        return int(ExitCode.ERROR)
    return int(ExitCode.OK)


def describe_end(job: jobworker_pb2.JobStatus) -> str | None:
    """Returns a line about how the job ended when that is worth telling, else None.

    A plain exit is not: its code says it. A signal, the OOM killer and a lost job are,
    since 137 alone does not say whether the kernel's OOM killer or a stop sent SIGKILL.
    """
    parts = []
    if job.state == jobworker_pb2.JOB_STATE_FAILED:
        parts.append(f"the worker lost job {job.job_id}: {job.error or 'unknown reason'}")
    elif job.HasField("signal"):
        parts.append(f"job {job.job_id} was killed by {signal_name(job.signal)}")
    if job.oom_killed:
        parts.append("the kernel's OOM killer killed a process of the job (memory limit)")
    return "; ".join(parts) or None
