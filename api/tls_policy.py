"""TLS 1.3 only, by starving TLS 1.2 of usable cipher suites (grpcio has no minimum version).

grpcio's Python API cannot set a minimum TLS version (grpc/grpc#37305; the fixes #43045 and
#43080 were unmerged in 2026-07). Measured with grpcio 1.85.3: by default the server accepts
TLS 1.2 with ECDHE-ECDSA-AES256-GCM-SHA384. With ``GRPC_SSL_CIPHER_SUITES`` set to the
PSK-only suite ECDHE-PSK-CHACHA20-POLY1305 the only TLS 1.2 suite left needs a pre-shared
key that grpc never configures, so every TLS 1.2 handshake fails (NO_SHARED_CIPHER), while
TLS 1.3 suites are not governed by that list and still work (TLS_AES_256_GCM_SHA384).
Putting a TLS 1.3 suite name into the variable breaks the server instead.

grpc reads the variable once, when the library is imported; setting it after ``import grpc``
was measured to have no effect. So the daemon's main calls ``forbid_tls12`` before anything
imports grpc, and the server refuses to start when the variable is missing.

TODO: switch to a real ``minimum_tls_version`` on the server credentials once grpcio ships
it (grpc/grpc#37305), then delete this module; the TLS 1.2 rejection test stays.
"""

from __future__ import annotations

import os
import sys

CIPHER_SUITES_VARIABLE = "GRPC_SSL_CIPHER_SUITES"
TLS12_UNUSABLE_SUITES = "ECDHE-PSK-CHACHA20-POLY1305"


class TlsPolicyError(RuntimeError):
    """The TLS 1.2 restriction cannot be (or was not) put in place."""


def forbid_tls12() -> None:
    """Restricts grpc's TLS 1.2 cipher suites to one no certificate-based peer can use.

    Raises:
        TlsPolicyError: grpc was already imported without the restriction, so it is too
            late to apply it in this process.
    """
    if os.environ.get(CIPHER_SUITES_VARIABLE) == TLS12_UNUSABLE_SUITES:
        return
    if "grpc" in sys.modules:
        raise TlsPolicyError(
            f"{CIPHER_SUITES_VARIABLE} must be set before grpc is imported; "
            "TLS 1.2 would stay enabled"
        )
    os.environ[CIPHER_SUITES_VARIABLE] = TLS12_UNUSABLE_SUITES


def check_tls12_forbidden() -> None:
    """Fails closed when the restriction is missing, so a server never offers TLS 1.2.

    Raises:
        TlsPolicyError: ``GRPC_SSL_CIPHER_SUITES`` is not the PSK-only suite.
    """
    value = os.environ.get(CIPHER_SUITES_VARIABLE)
    if value != TLS12_UNUSABLE_SUITES:
        raise TlsPolicyError(
            f"{CIPHER_SUITES_VARIABLE} is {value!r}, not {TLS12_UNUSABLE_SUITES!r}: "
            "call api.tls_policy.forbid_tls12() before importing grpc"
        )
