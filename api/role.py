"""Caller roles and the certificate field that carries them.

The role travels in the client certificate's Subject organizationalUnitName (OU, OID
2.5.4.11): ``OU=user`` or ``OU=admin``. The CA signs the whole Subject, so the role is as
trustworthy as the user name (the CN) beside it. We chose OU over a private extension
because every tool shows it (``openssl x509 -subject``, ``grpcurl`` errors, browser
viewers) and it needs no private OID registry; the price is that the CA must be dedicated
to jobworker, since a general-purpose CA may put unrelated text into OU. A certificate
with no OU, several OUs, or an unknown value has no role and is denied everything.
"""

from __future__ import annotations

import enum

from cryptography.x509.oid import NameOID

ROLE_OID = NameOID.ORGANIZATIONAL_UNIT_NAME


class Role(enum.Enum):
    """What a caller may do, per the policy table in api/policy.py."""

    USER = "user"  # Starts jobs and acts on its own jobs only.
    ADMIN = "admin"  # Acts on every job.
