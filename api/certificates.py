"""The dev PKI's certificates: one CA, and the server and client leaves it issues.

Profile (all ECDSA P-256 with SHA-256 signatures):
- CA: basicConstraints CA:TRUE pathlen:0 (critical), keyUsage keyCertSign + cRLSign
  (critical), one year.
- Server: CN=localhost, SAN DNS:localhost + IP:127.0.0.1, EKU serverAuth, 7 days.
- Clients: CN=<user>, OU=<role> (see api/role.py), EKU clientAuth, 7 days.

api/pki.py keeps them in a directory and re-issues the leaves before they expire.
"""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from api.role import ROLE_OID, Role

CA_LIFETIME = datetime.timedelta(days=365)
LEAF_LIFETIME = datetime.timedelta(days=7)
# Backdating absorbs small clock differences between the machines involved.
_BACKDATE = datetime.timedelta(minutes=5)


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


def utc_now() -> datetime.datetime:
    """Returns the current time in UTC, the clock of every validity period here."""
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


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    # A CA signs only certificates and CRLs; a leaf signs only handshakes (digitalSignature).
    return x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
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
    now = utc_now()
    cert = (
        _builder(name, name, key.public_key(), now - _BACKDATE, now + CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
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
    now = utc_now()
    builder = (
        _builder(
            subject,
            ca.cert.subject,
            key.public_key(),
            now - _BACKDATE if not_before is None else not_before,
            now + LEAF_LIFETIME if not_after is None else not_after,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False), critical=True)
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
