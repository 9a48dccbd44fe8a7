"""Job states and the status snapshot the manager reports."""

from __future__ import annotations

import dataclasses
import datetime
import enum

from worker.limits import Limits


class JobState(enum.Enum):
    """Lifecycle state of a job. Every state but RUNNING is final."""

    RUNNING = "running"
    EXITED = "exited"  # The program ended on its own: by exit code or by a signal.
    STOPPED = "stopped"  # The program ended after stop() was requested.
    FAILED = "failed"  # The worker lost the job, for example because the spawner died.


class StopReason(enum.Enum):
    """Why a job was stopped or lost, when it did not simply end on its own."""

    REQUESTED = "requested"  # stop() was called: StopJob, or a client gave up on its start.
    DEADLINE = "deadline"  # Its limit timeout_seconds passed.
    SHUTDOWN = "shutdown"  # The manager closed, for example on a daemon shutdown.
    WORKER_LOST = "worker_lost"  # The spawner died, and the job with it.


@dataclasses.dataclass(frozen=True, slots=True)
class Usage:
    """Resource usage read from the job's cgroups.

    Attributes:
        cpu_usec: CPU time used, user plus system, in microseconds.
        memory_bytes: Current memory use (0 once the job has ended).
        memory_peak_bytes: Peak memory use, where the kernel reports it, else 0.
        io_read_bytes: Bytes read from block devices.
        io_write_bytes: Bytes written to block devices.
        oom_kills: Processes of the job killed by the kernel's OOM killer.
        pids_refused: Forks its pids limit refused.
        memory_high_events: Times it was throttled over memory.high (v2 only).
        memory_max_events: Times its memory use hit its limit.
        cpu_periods: CFS periods in which it was runnable under its CPU limit.
        cpu_throttled_periods: Those in which it used up its quota and was throttled.
        cpu_throttled_usec: Time it spent throttled, in microseconds.
    """

    cpu_usec: int = 0
    memory_bytes: int = 0
    memory_peak_bytes: int = 0
    io_read_bytes: int = 0
    io_write_bytes: int = 0
    oom_kills: int = 0
    pids_refused: int = 0
    memory_high_events: int = 0
    memory_max_events: int = 0
    cpu_periods: int = 0
    cpu_throttled_periods: int = 0
    cpu_throttled_usec: int = 0


@dataclasses.dataclass(frozen=True, slots=True)
class JobStatus:
    """A consistent snapshot of one job.

    Attributes:
        job_id: Random URL-safe id of at least 128 bits.
        owner: The owner given in the spec.
        argv: The command line as given.
        state: Lifecycle state.
        exit_code: Exit code when the program exited normally, else None.
        signal: Terminating signal number when a signal killed the program, else None.
        core_dumped: True when that signal also dumped a core (wait(2), WCOREDUMP).
        oom_killed: True when the kernel OOM killer killed a process of the job (from the
            cgroup's oom_kill counter, never guessed from the exit status).
        stop_reason: Why the job was stopped (state STOPPED) or lost (FAILED), else None.
        started_at: When the program started (UTC).
        ended_at: When the job ended and its output was complete (UTC), else None.
        limits: The effective limits, defaults applied.
        usage: Resource usage, last read at the end for ended jobs.
        error: Why the worker failed the job, for state FAILED.
    """

    job_id: str
    owner: str
    argv: tuple[str, ...]
    state: JobState
    exit_code: int | None
    signal: int | None
    core_dumped: bool
    oom_killed: bool
    stop_reason: StopReason | None
    started_at: datetime.datetime
    ended_at: datetime.datetime | None
    limits: Limits
    usage: Usage
    error: str | None = None
