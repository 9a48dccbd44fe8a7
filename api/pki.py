"""A development PKI: one CA, a server certificate and role-carrying client certificates.

Profile (all ECDSA P-256 with SHA-256 signatures):
- CA: basicConstraints CA:TRUE pathlen:0 (critical), keyUsage keyCertSign + cRLSign
  (critical), one year.
- Server: CN=localhost, SAN DNS:localhost + IP:127.0.0.1, EKU serverAuth, 7 days.
- Clients: CN=<user>, OU=<role> (see api/role.py), EKU clientAuth, 7 days.

Leaves are short-lived and re-issued from the kept CA key by ``ensure_dev_pki`` when they
are about to expire. Private keys are written with mode 0600 in a 0700 directory. Nothing
here is meant for production: there the CA lives elsewhere and only issues certificates.
"""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import os
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from api.role import ROLE_OID, Role

CA_LIFETIME = datetime.timedelta(days=365)
LEAF_LIFETIME = datetime.timedelta(days=7)
# Re-issue leaves this long before they expire, so a daemon started now keeps working.
RENEW_MARGIN = datetime.timedelta(days=1)
# Backdating absorbs small clock differences between the machines involved.
_BACKDATE = datetime.timedelta(minutes=5)

DEV_USERS: tuple[tuple[str, Role], ...] = (
    ("alice", Role.USER),
    ("bob", Role.USER),
    ("admin", Role.ADMIN),
)
CA_NAME = "ca"
SERVER_NAME = "server"


@dataclasses.dataclass(frozen=True, slots=True)
class Credential:
    """A certificate and its private key.

    Attributes:
        cert: The certificate.
        key: Its private key.
    """

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    def cert_pem(self) -> bytes:
        """Returns the certificate in PEM form."""
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def key_pem(self) -> bytes:
        """Returns the unencrypted PKCS#8 private key in PEM form."""
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


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


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    not_before: datetime.datetime,
    not_after: datetime.datetime,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def new_ca(common_name: str = "jobworker dev CA") -> Credential:
    """Creates a self-signed CA that may sign leaves only (path length 0).

    Args:
        common_name: The CA's Subject CN.

    Returns:
        The CA certificate and key.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = _now()
    cert = (
        _builder(name, name, key.public_key(), now - _BACKDATE, now + CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return Credential(cert, key)


def issue_leaf(
    ca: Credential,
    subject: x509.Name,
    usages: Sequence[x509.ObjectIdentifier],
    *,
    sans: Sequence[x509.GeneralName] = (),
    not_before: datetime.datetime | None = None,
    not_after: datetime.datetime | None = None,
) -> Credential:
    """Issues an end-entity certificate signed by ``ca``.

    Args:
        ca: The issuing CA.
        subject: The leaf's Subject.
        usages: ExtendedKeyUsage OIDs, for example ``[ExtendedKeyUsageOID.CLIENT_AUTH]``.
        sans: subjectAltName entries; none means no extension.
        not_before: Start of validity; default a few minutes ago. Tests pass odd values.
        not_after: End of validity; default ``LEAF_LIFETIME`` from now.

    Returns:
        The leaf certificate and its new key.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    builder = (
        _builder(
            subject,
            ca.cert.subject,
            key.public_key(),
            now - _BACKDATE if not_before is None else not_before,
            now + LEAF_LIFETIME if not_after is None else not_after,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage(list(usages)), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
            critical=False,
        )
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    return Credential(builder.sign(ca.key, hashes.SHA256()), key)


def issue_server(
    ca: Credential,
    *,
    not_before: datetime.datetime | None = None,
    not_after: datetime.datetime | None = None,
) -> Credential:
    """Issues the daemon's certificate for localhost and 127.0.0.1 (EKU serverAuth)."""
    return issue_leaf(
        ca,
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]),
        [ExtendedKeyUsageOID.SERVER_AUTH],
        sans=[
            x509.DNSName("localhost"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        ],
        not_before=not_before,
        not_after=not_after,
    )


def issue_client(
    ca: Credential,
    user: str,
    role: Role | None,
    *,
    not_before: datetime.datetime | None = None,
    not_after: datetime.datetime | None = None,
) -> Credential:
    """Issues a client certificate: CN=user, OU=role (omitted when None), EKU clientAuth."""
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, user)]
    if role is not None:
        attributes.append(x509.NameAttribute(ROLE_OID, role.value))
    return issue_leaf(
        ca,
        x509.Name(attributes),
        [ExtendedKeyUsageOID.CLIENT_AUTH],
        not_before=not_before,
        not_after=not_after,
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
    if ca.cert.not_valid_after_utc - _now() < RENEW_MARGIN:
        create_dev_pki(directory)
        return
    try:
        server = load_credential(directory, SERVER_NAME).cert
    except (OSError, ValueError):
        _issue_leaves(ca, directory)
        return
    if server.not_valid_after_utc - _now() < RENEW_MARGIN:
        _issue_leaves(ca, directory)
