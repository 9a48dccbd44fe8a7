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


def stop_reason_name(reason: int) -> str | None:
    """Returns ``requested``, ``deadline``, ``shutdown``, ``worker_lost``, or None."""
    if reason == jobworker_pb2.STOP_REASON_UNSPECIFIED:
        return None
    name: str = jobworker_pb2.StopReason.Name(reason)
    return name.removeprefix("STOP_REASON_").lower()


def signal_text(job: jobworker_pb2.JobStatus) -> str:
    """Returns ``SIGABRT (core dumped)`` or ``SIGKILL``: the signal that ended the job."""
    return signal_name(job.signal) + (" (core dumped)" if job.core_dumped else "")


def _times(count: int) -> str:
    return "once" if count == 1 else f"{count} times"


def limit_events(usage: jobworker_pb2.Usage) -> str | None:
    """Returns what the job's limits refused, or None when they refused nothing.

    For example ``hit the pids limit 12 times; CPU throttled in 61% of periods``.
    """
    parts = []
    if usage.pids_refused:
        parts.append(f"hit the pids limit {_times(usage.pids_refused)}")
    if usage.memory_max_events:
        parts.append(f"hit the memory limit {_times(usage.memory_max_events)}")
    if usage.memory_high_events:
        parts.append(f"went over its memory high mark {_times(usage.memory_high_events)}")
    if usage.cpu_throttled_periods:
        share = usage.cpu_throttled_periods / max(usage.cpu_periods, 1)
        parts.append(f"CPU throttled in {share:.0%} of periods")
    return "; ".join(parts) or None


def describe_end(job: jobworker_pb2.JobStatus) -> str | None:
    """Returns a line about how the job ended when that is worth telling, else None.

    A plain exit is not: its code says it. A signal, the OOM killer, a deadline and a lost
    job are, since 137 alone does not say whether the kernel's OOM killer or a stop sent
    SIGKILL; so are the limits the job ran into.
    """
    parts = []
    if job.state == jobworker_pb2.JOB_STATE_FAILED:
        parts.append(f"the worker lost job {job.job_id}: {job.error or 'unknown reason'}")
    elif job.HasField("signal"):
        parts.append(f"job {job.job_id} was killed by {signal_text(job)}")
    if job.stop_reason == jobworker_pb2.STOP_REASON_DEADLINE:
        parts.append("it was stopped at its deadline (--timeout)")
    if job.oom_killed:
        parts.append("the kernel's OOM killer killed a process of the job (memory limit)")
    if (events := limit_events(job.usage)) is not None:
        parts.append(events)
    return "; ".join(parts) or None
