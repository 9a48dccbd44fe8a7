"""The error -> status mapping, table-driven."""

from __future__ import annotations

from api import tls_policy

# grpc reads its cipher list at import; in a single-process run of every api test another
# module may start an in-process daemon, so this module must not import grpc first.
tls_policy.forbid_tls12()

import grpc  # noqa: E402
import pytest  # noqa: E402

from api.errors import INTERNAL_MESSAGE, NOT_FOUND_MESSAGE, status_for  # noqa: E402
from worker.errors import (  # noqa: E402
    CgroupError,
    InvalidSpec,
    JobNotFound,
    ManagerClosed,
    SpawnerLost,
    StartFailed,
    WorkerError,
)


@pytest.mark.parametrize(
    ("error", "code", "text", "is_bug"),
    [
        (
            InvalidSpec("limits.cpu", "must be positive"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "limits.cpu: must be positive",
            False,
        ),
        (JobNotFound("abc"), grpc.StatusCode.NOT_FOUND, NOT_FOUND_MESSAGE, False),
        (
            StartFailed("exec", "No such file or directory", 2),
            grpc.StatusCode.FAILED_PRECONDITION,
            "cannot start the job: start failed at exec: No such file or directory",
            False,
        ),
        (
            CgroupError("memory controller missing"),
            grpc.StatusCode.FAILED_PRECONDITION,
            "cannot apply the job's resource limits: memory controller missing",
            False,
        ),
        (SpawnerLost("died"), grpc.StatusCode.UNAVAILABLE, "the worker is recovering: died", False),
        (
            ManagerClosed("closing"),
            grpc.StatusCode.UNAVAILABLE,
            "the daemon is shutting down",
            False,
        ),
        (WorkerError("new kind"), grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE, True),
        (KeyError("secret internals"), grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE, True),
        (PermissionError("x"), grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE, True),
    ],
)
def test_status_for(error: Exception, code: grpc.StatusCode, text: str, is_bug: bool) -> None:
    status = status_for(error)
    assert (status.code, status.message, status.is_bug) == (code, text, is_bug)


def test_not_found_text_does_not_depend_on_the_id() -> None:
    assert status_for(JobNotFound("a")) == status_for(JobNotFound("someone-elses-job"))
