"""Who is calling: derived only from the client certificate that TLS verified.

grpc puts the verified peer certificate into the call's auth context (``x509_pem_cert``,
``x509_common_name``); with ``require_client_auth=True`` the handshake has already checked
it against our CA, its validity period and its key usage. We read the user (Subject CN) and
the role (Subject OU, see api/role.py) from that certificate and from nothing else: no
metadata, no request field, no other authentication.
"""

from __future__ import annotations

import contextvars
import dataclasses
from collections.abc import Iterable, Mapping

import grpc
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from api.role import ROLE_OID, Role

_PEM_KEY = "x509_pem_cert"


@dataclasses.dataclass(frozen=True, slots=True)
class Identity:
    """An authenticated caller.

    Attributes:
        user: The client certificate's Subject CN; jobs are owned by this name.
        role: The role from the Subject OU, or None when the certificate carries no valid
            role (such a caller is denied everything by the policy).
    """

    user: str
    role: Role | None


def _single(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> str | None:
    values = cert.subject.get_attributes_for_oid(oid)
    if len(values) != 1 or not isinstance(values[0].value, str):
        return None  # Ambiguous or absent: never guess which one the CA meant.
    return values[0].value


def _allows_client_auth(cert: x509.Certificate) -> bool:
    # BoringSSL already rejects a serverAuth-only certificate presented by a client; this
    # repeats the check so identity never rests on a TLS library default alone.
    try:
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return False
    return ExtendedKeyUsageOID.CLIENT_AUTH in usages


def identity_from_pem(pem: bytes) -> Identity | None:
    """Returns the identity in a verified client certificate, or None if it has none.

    Args:
        pem: The PEM certificate from the auth context.

    Returns:
        The identity; None when the certificate cannot be parsed, has no single CN, or
        is not meant for client authentication.
    """
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError:
        return None
    user = _single(cert, NameOID.COMMON_NAME)
    if not user or not _allows_client_auth(cert):
        return None
    role_text = _single(cert, ROLE_OID)
    role = next((r for r in Role if r.value == role_text), None)
    return Identity(user=user, role=role)


def identity_from_auth_context(auth_context: Mapping[str, Iterable[bytes]]) -> Identity | None:
    """Returns the caller's identity from a grpc auth context, or None if unauthenticated."""
    pems = list(auth_context.get(_PEM_KEY, ()))
    if len(pems) != 1:
        return None
    return identity_from_pem(pems[0])


def peer_identity(context: grpc.aio.ServicerContext[object, object]) -> Identity | None:
    """Returns the identity of the peer of a server call, or None if unauthenticated."""
    return identity_from_auth_context(context.auth_context())


# Set by the guard (api/guard.py) in the task that serves one RPC, once the caller passed
# authentication and the policy; the servicer reads it instead of parsing the certificate
# again. grpc.aio serves each RPC in a task of its own, and a task runs in its own copy of
# the context, so the value is that RPC's alone and goes away with its task.
_CALLER: contextvars.ContextVar[Identity | None] = contextvars.ContextVar(
    "jobworker_caller", default=None
)


def authenticated(caller: Identity) -> None:
    """Records ``caller`` as the authenticated caller of the RPC the current task serves."""
    _CALLER.set(caller)


def current_caller() -> Identity | None:
    """Returns the caller the guard authenticated for this task's RPC, or None."""
    return _CALLER.get()
