"""The policy table, table-driven: every RPC x role, the ownership rule, deny by default."""

from __future__ import annotations

from api import tls_policy

# grpc reads its cipher list at import; in a single-process run of every api test another
# module may start an in-process daemon, so this module must not import grpc first.
tls_policy.forbid_tls12()

import pytest  # noqa: E402

from api import policy  # noqa: E402
from api.identity import Identity  # noqa: E402
from api.policy import Reach  # noqa: E402
from api.role import Role  # noqa: E402

ALICE = Identity("alice", Role.USER)
ADMIN = Identity("admin", Role.ADMIN)
NO_ROLE = Identity("mallory", None)

JOB_RPCS = [
    policy.START_JOB,
    policy.STOP_JOB,
    policy.GET_JOB,
    policy.LIST_JOBS,
    policy.STREAM_OUTPUT,
    policy.SIGNAL_JOB,
]
SERVICE_RPCS = [
    policy.HEALTH_CHECK,
    policy.HEALTH_WATCH,
    policy.REFLECTION_V1,
    policy.REFLECTION_V1ALPHA,
]


@pytest.mark.parametrize(
    ("method", "caller", "expected"),
    [(m, ALICE, Reach.OWN_JOBS) for m in JOB_RPCS]
    + [(m, ADMIN, Reach.ALL_JOBS) for m in JOB_RPCS]
    + [(m, c, Reach.NO_JOBS) for m in SERVICE_RPCS for c in (ALICE, ADMIN)]
    + [(m, NO_ROLE, None) for m in JOB_RPCS + SERVICE_RPCS]
    + [
        ("/jobworker.v1.JobWorker/DeleteEverything", ADMIN, None),
        ("/grpc.channelz.v1.Channelz/GetServers", ADMIN, None),
        ("", ALICE, None),
        (policy.GET_JOB.lower(), ADMIN, None),
    ],
)
def test_reach(method: str, caller: Identity, expected: Reach | None) -> None:
    assert policy.reach(method, caller) is expected


def test_every_rpc_of_the_service_is_in_the_table() -> None:
    from jobworker.v1 import jobworker_pb2

    service = jobworker_pb2.DESCRIPTOR.services_by_name["JobWorker"]
    names = {f"/{service.full_name}/{m.name}" for m in service.methods}
    assert names == set(JOB_RPCS)
    assert names <= set(policy.POLICY)


@pytest.mark.parametrize(
    ("caller", "owner", "expected"),
    [
        (ALICE, "alice", True),
        (ALICE, "bob", False),
        (ALICE, "Alice", False),
        (ALICE, "", False),
        (ADMIN, "alice", True),
        (ADMIN, "admin", True),
        (NO_ROLE, "mallory", False),
    ],
)
@pytest.mark.parametrize(
    "method", [policy.STOP_JOB, policy.GET_JOB, policy.STREAM_OUTPUT, policy.SIGNAL_JOB]
)
def test_ownership_rule(method: str, caller: Identity, owner: str, expected: bool) -> None:
    assert policy.may_act_on(method, caller, owner) is expected


def test_no_job_rpc_grants_no_job() -> None:
    assert not policy.may_act_on(policy.HEALTH_CHECK, ADMIN, "alice")


@pytest.mark.parametrize(
    ("caller", "expected"), [(ALICE, "alice"), (ADMIN, None), (Identity("bob", Role.USER), "bob")]
)
def test_list_filter(caller: Identity, expected: str | None) -> None:
    assert policy.owner_filter(policy.LIST_JOBS, caller) == expected


@pytest.mark.parametrize("caller", [NO_ROLE])
def test_list_filter_denies_without_role(caller: Identity) -> None:
    with pytest.raises(PermissionError):
        policy.owner_filter(policy.LIST_JOBS, caller)
