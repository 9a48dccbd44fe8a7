"""Request validation and conversion between protobuf messages and worker types.

Every check raises ``InvalidSpec(field, reason)``, which api/errors.py turns into
INVALID_ARGUMENT naming the field. Argv, env and cwd are checked by ``JobSpec`` itself and
limits by ``Limits``; this module adds the checks of fields the worker types do not have.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import signal

from google.protobuf import timestamp_pb2

from jobworker.v1 import jobworker_pb2 as pb
from worker.errors import InvalidSpec
from worker.ids import ID_LENGTH, is_job_id
from worker.limits import LIMIT_TABLE, Limits
from worker.spec import DEFAULT_PATH, JobSpec
from worker.status import JobState, JobStatus, StopReason

MAX_GRACE_SECONDS = 300.0
MAX_OUTPUT_OFFSET = 2**62
"""The largest StreamOutput offset accepted, far beyond any log and far from off_t's limit.

It is the cap of the int64 limits too. Above it a client can only be confused or probing,
and near 2**63 an offset plus a read size would overflow off_t (pread(2) fails EINVAL).
"""

_STATES = {
    JobState.RUNNING: pb.JOB_STATE_RUNNING,
    JobState.EXITED: pb.JOB_STATE_EXITED,
    JobState.STOPPED: pb.JOB_STATE_STOPPED,
    JobState.FAILED: pb.JOB_STATE_FAILED,
}
_STOP_REASONS = {
    None: pb.STOP_REASON_UNSPECIFIED,
    StopReason.REQUESTED: pb.STOP_REASON_REQUESTED,
    StopReason.DEADLINE: pb.STOP_REASON_DEADLINE,
    StopReason.SHUTDOWN: pb.STOP_REASON_SHUTDOWN,
    StopReason.WORKER_LOST: pb.STOP_REASON_WORKER_LOST,
}

SIGNALS = ("HUP", "INT", "QUIT", "USR1", "USR2", "TERM", "KILL", "CONT", "STOP", "WINCH", "ALRM")
"""The signals SignalJob sends, by name without "SIG": those a user stops, pauses, resumes
or pokes a program with. Faults (SEGV, BUS) and the like would only fake a crash."""


def job_id(value: str) -> str:
    """Returns ``value`` if it has the shape of a job id (worker/ids.py).

    A malformed id gets INVALID_ARGUMENT, not NOT_FOUND: no job can have such an id, so
    saying so reveals nothing about other users' jobs, and the client learns that its
    input, not the job table, is the problem.

    Raises:
        InvalidSpec: On field ``job_id``.
    """
    if not is_job_id(value):
        raise InvalidSpec("job_id", f"must be {ID_LENGTH} characters of A-Z, a-z, 0-9, '_' or '-'")
    return value


def grace(request: pb.StopJobRequest) -> float | None:
    """Returns the requested grace period in seconds, or None for the daemon default.

    Raises:
        InvalidSpec: On field ``grace_seconds`` when negative, not finite, or too long.
    """
    if not request.HasField("grace_seconds"):
        return None
    value = request.grace_seconds
    if not (math.isfinite(value) and 0 <= value <= MAX_GRACE_SECONDS):
        raise InvalidSpec("grace_seconds", f"must be between 0 and {MAX_GRACE_SECONDS:g}")
    return value


def signal_number(request: pb.SignalJobRequest) -> int:
    """Returns the number of the requested signal.

    Raises:
        InvalidSpec: On field ``signal`` when it is not one of SIGNALS.
    """
    if request.signal not in SIGNALS:
        raise InvalidSpec("signal", f"must be one of {', '.join(SIGNALS)}, got {request.signal!r}")
    return int(signal.Signals[f"SIG{request.signal}"])


def offset(request: pb.StreamOutputRequest) -> int:
    """Returns the requested output offset.

    Raises:
        InvalidSpec: On field ``offset`` when negative or above `MAX_OUTPUT_OFFSET`.
    """
    if not 0 <= request.offset <= MAX_OUTPUT_OFFSET:
        raise InvalidSpec("offset", f"must be between 0 and 2**62, got {request.offset}")
    return request.offset


def limits_from_pb(message: pb.Limits) -> Limits:
    """Converts protobuf limits; unset fields stay None (daemon default).

    Raises:
        InvalidSpec: On ``limits.<field>`` for negative, zero, absurd or non-finite values.
    """
    # Each limit's proto field has its name (worker/limits.py).
    values = {
        name: getattr(message, name) if message.HasField(name) else None for name in LIMIT_TABLE
    }
    return Limits(**values)


def spec_from_request(request: pb.StartJobRequest, owner: str) -> JobSpec:
    """Builds and validates the job spec of a StartJob request.

    Args:
        request: The request.
        owner: The caller's user name, from the client certificate.

    Raises:
        InvalidSpec: Naming the offending field.
    """
    env = dict(request.env) if request.env else {"PATH": DEFAULT_PATH}
    limits = limits_from_pb(request.limits) if request.HasField("limits") else Limits()
    return JobSpec(
        argv=tuple(request.argv),
        owner=owner,
        env=env,
        cwd=request.cwd or "/",
        limits=limits,
    )


def _timestamp(value: datetime.datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value)
    return stamp


def limits_to_pb(limits: Limits) -> pb.Limits:
    """Converts worker limits to protobuf; None fields stay unset."""
    message = pb.Limits()
    for name in LIMIT_TABLE:
        value = getattr(limits, name)
        if value is not None:
            setattr(message, name, value)
    return message


def status_to_pb(status: JobStatus) -> pb.JobStatus:
    """Converts a job status snapshot to protobuf."""
    message = pb.JobStatus(
        job_id=status.job_id,
        owner=status.owner,
        argv=list(status.argv),
        state=_STATES[status.state],
        core_dumped=status.core_dumped,
        oom_killed=status.oom_killed,
        stop_reason=_STOP_REASONS[status.stop_reason],
        started_at=_timestamp(status.started_at),
        limits=limits_to_pb(status.limits),
        # pb.Usage has a field of the same name for each field of Usage (convert_test).
        usage=pb.Usage(**dataclasses.asdict(status.usage)),
        error=status.error or "",
    )
    if status.exit_code is not None:
        message.exit_code = status.exit_code
    if status.signal is not None:
        message.signal = status.signal
    if status.ended_at is not None:
        message.ended_at.CopyFrom(_timestamp(status.ended_at))
    return message
