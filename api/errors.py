"""The one place that maps worker errors to gRPC status codes.

Decisions:
- InvalidSpec -> INVALID_ARGUMENT; the message starts with the field, e.g.
  ``limits.cpu: must be between 0.01 and 1024 cores, got -1``.
- JobNotFound -> NOT_FOUND, always the same text ("job not found"), also for jobs the
  caller may not see (api/policy.py).
- StartFailed -> FAILED_PRECONDITION: the request was well-formed, but the host's state
  (a missing program, a cwd the job user cannot enter) prevents it; retrying the same
  request will not help. The message says which step failed and why.
- JobNotRunning -> FAILED_PRECONDITION: a signal for a job that has ended; the job exists,
  but its state refuses the request.
- CgroupError -> FAILED_PRECONDITION, not RESOURCE_EXHAUSTED: it means a controller is
  missing or the kernel refused a limit, a host configuration problem that does not go
  away by waiting, and RESOURCE_EXHAUSTED would invite clients to retry.
- SpawnerLost and ManagerClosed -> UNAVAILABLE: transient from the client's view (the
  daemon is restarting its spawner or shutting down); retrying later may succeed.
- Anything else -> INTERNAL with a generic message; the caller logs the traceback, so no
  internals reach the client.
"""

from __future__ import annotations

import dataclasses

import grpc

from worker.errors import (
    CgroupError,
    InvalidSpec,
    JobNotFound,
    JobNotRunning,
    ManagerClosed,
    SpawnerLost,
    StartFailed,
)

NOT_FOUND_MESSAGE = "job not found"
INTERNAL_MESSAGE = "internal error; the daemon logged the details"


@dataclasses.dataclass(frozen=True, slots=True)
class Status:
    """A gRPC status code and the message the client sees.

    Attributes:
        code: The status code.
        message: Human-readable text: what failed and why.
        is_bug: True when the error was unexpected and its traceback must be logged.
    """

    code: grpc.StatusCode
    message: str
    is_bug: bool = False


def status_for(error: BaseException) -> Status:
    """Returns the status to send for an exception raised while serving an RPC.

    Args:
        error: What the servicer or the worker library raised.
    """
    match error:
        case InvalidSpec():
            return Status(grpc.StatusCode.INVALID_ARGUMENT, str(error))
        case JobNotFound():
            return Status(grpc.StatusCode.NOT_FOUND, NOT_FOUND_MESSAGE)
        case JobNotRunning():
            return Status(grpc.StatusCode.FAILED_PRECONDITION, "the job has ended")
        case StartFailed():
            return Status(grpc.StatusCode.FAILED_PRECONDITION, f"cannot start the job: {error}")
        case CgroupError():
            return Status(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"cannot apply the job's resource limits: {error}",
            )
        case SpawnerLost():
            return Status(grpc.StatusCode.UNAVAILABLE, f"the worker is recovering: {error}")
        case ManagerClosed():
            return Status(grpc.StatusCode.UNAVAILABLE, "the daemon is shutting down")
        case _:
            return Status(grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE, is_bug=True)
