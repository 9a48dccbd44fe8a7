"""The development PKI directory: the CA, server and dev users' credentials as PEM files.

The certificates are those of api/certificates.py. Leaves are short-lived and re-issued from
the kept CA key by ``ensure_dev_pki`` when they are about to expire. Private keys are
written with mode 0600 in a 0700 directory. Nothing here is meant for production: there the
CA lives elsewhere and only issues certificates.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from api.certificates import Credential, issue_client, issue_server, new_ca, utc_now
from api.role import Role

# Re-issue leaves this long before they expire, so a daemon started now keeps working.
RENEW_MARGIN = datetime.timedelta(days=1)

DEV_USERS: tuple[tuple[str, Role], ...] = (
    ("alice", Role.USER),
    ("bob", Role.USER),
    ("admin", Role.ADMIN),
)
CA_NAME = "ca"
SERVER_NAME = "server"


@dataclasses.dataclass(frozen=True, slots=True)
class TlsFiles:
    """PEM files of one TLS endpoint.

    Attributes:
        ca: The CA certificate(s) that peers' certificates must chain to.
        cert: This endpoint's certificate.
        key: This endpoint's private key.
    """

    ca: Path
    cert: Path
    key: Path

    @classmethod
    def in_pki_dir(cls, directory: Path, name: str) -> TlsFiles:
        """Returns the files of ``name`` (server, alice, ...) in a dev PKI directory."""
        return cls(
            directory / f"{CA_NAME}.crt", directory / f"{name}.crt", directory / f"{name}.key"
        )


def _write_atomically(path: Path, data: bytes, mode: int) -> None:
    # Create the temporary file with its final mode so a key is never world-readable,
    # not even for an instant, then rename it over the old file (rename(2) is atomic).
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        os.fchmod(fd, mode)  # The umask may have cleared bits of ``mode``.
        os.write(fd, data)
    finally:
        os.close(fd)
    tmp.replace(path)


def write_credential(credential: Credential, directory: Path, name: str) -> None:
    """Writes ``name.crt`` (0644) and ``name.key`` (0600) into ``directory``."""
    _write_atomically(directory / f"{name}.key", credential.key_pem(), 0o600)
    _write_atomically(directory / f"{name}.crt", credential.cert_pem(), 0o644)


def load_credential(directory: Path, name: str) -> Credential:
    """Reads ``name.crt`` and ``name.key`` back from ``directory``.

    Raises:
        ValueError: The files are not a PEM certificate and an EC private key.
        OSError: A file cannot be read.
    """
    cert = x509.load_pem_x509_certificate((directory / f"{name}.crt").read_bytes())
    key = serialization.load_pem_private_key((directory / f"{name}.key").read_bytes(), None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{directory / name}.key is not an EC private key")
    return Credential(cert, key)


def _issue_leaves(ca: Credential, directory: Path) -> None:
    write_credential(issue_server(ca), directory, SERVER_NAME)
    for user, role in DEV_USERS:
        write_credential(issue_client(ca, user, role), directory, user)


def create_dev_pki(directory: Path) -> None:
    """Creates a fresh CA, server and alice/bob/admin credentials in ``directory``.

    Files: ``ca.crt``/``ca.key``, ``server.crt``/``server.key`` and ``<user>.crt``/
    ``<user>.key`` for alice and bob (role user) and admin (role admin). Existing files
    are replaced.

    Args:
        directory: Created (mode 0700) if missing.
    """
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    ca = new_ca()
    write_credential(ca, directory, CA_NAME)
    _issue_leaves(ca, directory)


def ensure_dev_pki(directory: Path) -> None:
    """Creates the dev PKI if missing; re-issues the leaves when about to expire.

    Args:
        directory: The PKI directory, as written by ``create_dev_pki``.
    """
    if not (directory / f"{CA_NAME}.key").exists():
        create_dev_pki(directory)
        return
    ca = load_credential(directory, CA_NAME)
    if ca.cert.not_valid_after_utc - utc_now() < RENEW_MARGIN:
        create_dev_pki(directory)
        return
    try:
        server = load_credential(directory, SERVER_NAME).cert
    except (OSError, ValueError):
        _issue_leaves(ca, directory)
        return
    if server.not_valid_after_utc - utc_now() < RENEW_MARGIN:
        _issue_leaves(ca, directory)
