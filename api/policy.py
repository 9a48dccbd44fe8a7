"""The authorization policy: one declarative, deny-by-default table.

Each RPC maps each role to a *reach*: which jobs a caller with that role may act on. An
RPC or role missing from the table is denied (PERMISSION_DENIED), as is a caller whose
certificate carries no role. The RPC-level check runs in api/guard.py for every RPC,
unary and streaming alike, before the servicer sees the request; the ownership check
runs where the servicer loads the job (``may_act_on``). A job the caller may not act on
is reported exactly like a missing one (NOT_FOUND, "job not found"), so ids of other
users' jobs cannot be probed.
"""

from __future__ import annotations

import enum
import types
from collections.abc import Mapping

from api.identity import Identity
from api.role import Role


class Reach(enum.Enum):
    """Which jobs an allowed call may touch."""

    OWN_JOBS = "own"  # Jobs whose owner is the caller's user name.
    ALL_JOBS = "all"  # Every job.
    NO_JOBS = "none"  # The RPC touches no job (health, reflection).


_SERVICE = "/jobworker.v1.JobWorker/"
START_JOB = _SERVICE + "StartJob"
STOP_JOB = _SERVICE + "StopJob"
GET_JOB = _SERVICE + "GetJob"
LIST_JOBS = _SERVICE + "ListJobs"
STREAM_OUTPUT = _SERVICE + "StreamOutput"
SIGNAL_JOB = _SERVICE + "SignalJob"
HEALTH_CHECK = "/grpc.health.v1.Health/Check"
HEALTH_WATCH = "/grpc.health.v1.Health/Watch"
REFLECTION_V1 = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
REFLECTION_V1ALPHA = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"

_USERS_OWN_ADMINS_ALL = types.MappingProxyType(
    {Role.USER: Reach.OWN_JOBS, Role.ADMIN: Reach.ALL_JOBS}
)
_EVERY_ROLE_NO_JOBS = types.MappingProxyType({Role.USER: Reach.NO_JOBS, Role.ADMIN: Reach.NO_JOBS})

# RPC x role -> reach. Anything not listed here is denied.
POLICY: Mapping[str, Mapping[Role, Reach]] = types.MappingProxyType(
    {
        START_JOB: _USERS_OWN_ADMINS_ALL,  # The new job is always owned by the caller.
        STOP_JOB: _USERS_OWN_ADMINS_ALL,
        GET_JOB: _USERS_OWN_ADMINS_ALL,
        LIST_JOBS: _USERS_OWN_ADMINS_ALL,
        STREAM_OUTPUT: _USERS_OWN_ADMINS_ALL,
        SIGNAL_JOB: _USERS_OWN_ADMINS_ALL,
        HEALTH_CHECK: _EVERY_ROLE_NO_JOBS,
        HEALTH_WATCH: _EVERY_ROLE_NO_JOBS,
        REFLECTION_V1: _EVERY_ROLE_NO_JOBS,
        REFLECTION_V1ALPHA: _EVERY_ROLE_NO_JOBS,
    }
)


def reach(method: str, caller: Identity) -> Reach | None:
    """Returns what ``caller`` may touch through ``method``, or None when denied.

    Args:
        method: The full gRPC method name, for example ``/jobworker.v1.JobWorker/GetJob``.
        caller: The authenticated caller.
    """
    if caller.role is None:
        return None
    return POLICY.get(method, {}).get(caller.role)


def may_act_on(method: str, caller: Identity, owner: str) -> bool:
    """The ownership rule: users act on their own jobs, admins on all jobs.

    Args:
        method: The full gRPC method name.
        caller: The authenticated caller.
        owner: The owner of the job being loaded.

    Returns:
        True when the caller may act on that job through ``method``.
    """
    allowed = reach(method, caller)
    return allowed is Reach.ALL_JOBS or (allowed is Reach.OWN_JOBS and owner == caller.user)


def owner_filter(method: str, caller: Identity) -> str | None:
    """Returns the owner to restrict a listing to, or None to list every job.

    Raises:
        PermissionError: The caller may not list at all (the guard normally stops such a
            call earlier; this keeps the function safe on its own).
    """
    allowed = reach(method, caller)
    if allowed is Reach.ALL_JOBS:
        return None
    if allowed is Reach.OWN_JOBS:
        return caller.user
    raise PermissionError(f"{caller.user} may not call {method}")
