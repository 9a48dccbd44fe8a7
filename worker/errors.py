"""Exceptions raised by the worker library.

Callers catch `WorkerError` for anything the library raises on purpose. The API layer maps
each subclass to a gRPC status code in exactly one place (api/errors.py).
"""

from __future__ import annotations


class WorkerError(Exception):
    """Base class of every error the worker library raises deliberately."""


class InvalidSpec(WorkerError):
    """A job spec or limit is malformed or exceeds a configured maximum.

    Attributes:
        field: The name of the offending field, for example ``"argv[0]"`` or ``"limits.cpu"``.
    """

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class JobNotFound(WorkerError):
    """No job with the given id exists."""

    def __init__(self, job_id: str) -> None:
        super().__init__("job not found")
        self.job_id = job_id


class JobNotRunning(WorkerError):
    """The job has ended, so it cannot take the request (a signal)."""

    def __init__(self, job_id: str) -> None:
        super().__init__("the job has ended")
        self.job_id = job_id


class StartFailed(WorkerError):
    """The job could not be started; nothing of it is left running.

    Attributes:
        step: The setup step that failed, for example ``"exec"``, ``"chdir"`` or ``"cgroup"``.
        errno: The OS error number when the cause was a failed syscall, else None.
    """

    def __init__(self, step: str, message: str, errno: int | None = None) -> None:
        super().__init__(f"start failed at {step}: {message}")
        self.step = step
        self.errno = errno


class CgroupError(WorkerError):
    """A cgroup operation failed: a missing controller, or a limit the kernel refused."""


class SpawnerLost(WorkerError):
    """The spawner process died or broke its protocol; the affected jobs are failed."""


class ManagerClosed(WorkerError):
    """The manager is shutting down or closed and accepts no new work."""
