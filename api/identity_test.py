"""Identity from the verified client certificate, and nothing else."""

from __future__ import annotations

from api import tls_policy

# grpc reads its cipher list at import; in a single-process run of every api test another
# module may start an in-process daemon, so this module must not import grpc first.
tls_policy.forbid_tls12()

import asyncio  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from cryptography import x509  # noqa: E402
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID  # noqa: E402

from api import certificates, identity, pki  # noqa: E402
from api.identity import Identity, identity_from_auth_context, identity_from_pem  # noqa: E402
from api.role import ROLE_OID, Role  # noqa: E402


@pytest.fixture(scope="module")
def ca() -> Iterator[certificates.Credential]:
    yield certificates.new_ca()


@pytest.mark.parametrize(
    ("user", "role"), [("alice", Role.USER), ("bob", Role.USER), ("admin", Role.ADMIN)]
)
def test_dev_users(tmp_path: Path, user: str, role: Role) -> None:
    pki.create_dev_pki(tmp_path)
    assert identity_from_pem((tmp_path / f"{user}.crt").read_bytes()) == Identity(user, role)


def _leaf(ca: certificates.Credential, *attributes: tuple[x509.ObjectIdentifier, str]) -> bytes:
    name = x509.Name([x509.NameAttribute(oid, value) for oid, value in attributes])
    return certificates.issue_leaf(ca, name, [ExtendedKeyUsageOID.CLIENT_AUTH]).cert_pem()


@pytest.mark.parametrize(
    ("attributes", "expected"),
    [
        ([(NameOID.COMMON_NAME, "carol")], Identity("carol", None)),
        ([(NameOID.COMMON_NAME, "carol"), (ROLE_OID, "root")], Identity("carol", None)),
        ([(NameOID.COMMON_NAME, "carol"), (ROLE_OID, "Admin")], Identity("carol", None)),
        (
            [(NameOID.COMMON_NAME, "carol"), (ROLE_OID, "user"), (ROLE_OID, "admin")],
            Identity("carol", None),
        ),
        ([(NameOID.COMMON_NAME, "carol"), (ROLE_OID, "admin")], Identity("carol", Role.ADMIN)),
        ([(ROLE_OID, "admin")], None),
        ([(NameOID.COMMON_NAME, "a"), (NameOID.COMMON_NAME, "b"), (ROLE_OID, "user")], None),
        # Role-like text elsewhere in the Subject grants nothing.
        (
            [(NameOID.COMMON_NAME, "carol"), (NameOID.ORGANIZATION_NAME, "admin")],
            Identity("carol", None),
        ),
    ],
)
def test_subject_fields(
    ca: certificates.Credential,
    attributes: list[tuple[x509.ObjectIdentifier, str]],
    expected: Identity | None,
) -> None:
    assert identity_from_pem(_leaf(ca, *attributes)) == expected


def test_server_certificate_is_no_client_identity(ca: certificates.Credential) -> None:
    assert identity_from_pem(certificates.issue_server(ca).cert_pem()) is None


@pytest.mark.parametrize(
    "context",
    [
        {},
        {"x509_common_name": [b"admin"]},  # A name without the certificate is not enough.
        {"x509_pem_cert": [b"not a certificate"]},
        {"x509_pem_cert": []},
    ],
)
def test_auth_context_without_a_usable_certificate(context: dict[str, list[bytes]]) -> None:
    assert identity_from_auth_context(context) is None


def test_auth_context_with_two_certificates_is_refused(ca: certificates.Credential) -> None:
    pem = certificates.issue_client(ca, "alice", Role.USER).cert_pem()
    assert identity_from_auth_context({"x509_pem_cert": [pem]}) == Identity("alice", Role.USER)
    assert identity_from_auth_context({"x509_pem_cert": [pem, pem]}) is None


async def test_each_rpc_task_sees_only_its_own_authenticated_caller() -> None:
    both_set = asyncio.Barrier(2)

    async def serve(caller: Identity) -> Identity | None:
        identity.authenticated(caller)
        await both_set.wait()  # The other task has set its caller by now.
        return identity.current_caller()

    alice, bob = Identity("alice", Role.USER), Identity("bob", Role.ADMIN)
    assert list(await asyncio.gather(serve(alice), serve(bob))) == [alice, bob]
    assert identity.current_caller() is None  # Nothing leaked out of the tasks.
