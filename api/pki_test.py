"""The dev PKI's certificate profile and file modes."""

from __future__ import annotations

import datetime
import ipaddress
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from api import certificates, pki
from api.role import ROLE_OID

NAMES = ["ca", "server", "alice", "bob", "admin"]


def _cert(directory: Path, name: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate((directory / f"{name}.crt").read_bytes())


def test_files_and_modes(tmp_path: Path) -> None:
    directory = tmp_path / "pki"
    pki.create_dev_pki(directory)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert sorted(p.name for p in directory.iterdir()) == sorted(
        f"{n}.{ext}" for n in NAMES for ext in ("crt", "key")
    )
    for name in NAMES:
        assert stat.S_IMODE((directory / f"{name}.key").stat().st_mode) == 0o600
        assert stat.S_IMODE((directory / f"{name}.crt").stat().st_mode) == 0o644


def test_key_mode_ignores_a_permissive_umask(tmp_path: Path) -> None:
    import os

    old = os.umask(0)
    try:
        pki.create_dev_pki(tmp_path)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "ca.key").stat().st_mode) == 0o600


def test_ca_profile(tmp_path: Path) -> None:
    pki.create_dev_pki(tmp_path)
    ca = _cert(tmp_path, "ca")
    constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca and constraints.value.path_length == 0
    usage = ca.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign and not usage.digital_signature
    public_key = ca.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    assert public_key.curve.name == "secp256r1"


@pytest.mark.parametrize(
    ("name", "usage", "role"),
    [
        ("server", ExtendedKeyUsageOID.SERVER_AUTH, None),
        ("alice", ExtendedKeyUsageOID.CLIENT_AUTH, "user"),
        ("bob", ExtendedKeyUsageOID.CLIENT_AUTH, "user"),
        ("admin", ExtendedKeyUsageOID.CLIENT_AUTH, "admin"),
    ],
)
def test_leaf_profile(tmp_path: Path, name: str, usage: x509.ObjectIdentifier, role: str) -> None:
    pki.create_dev_pki(tmp_path)
    ca, leaf = _cert(tmp_path, "ca"), _cert(tmp_path, name)
    leaf.verify_directly_issued_by(ca)
    assert list(leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [usage]
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    lifetime = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    assert lifetime <= datetime.timedelta(days=8)
    assert [a.value for a in leaf.subject.get_attributes_for_oid(ROLE_OID)] == (
        [role] if role else []
    )
    if name != "server":
        assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == name


def test_server_names(tmp_path: Path) -> None:
    pki.create_dev_pki(tmp_path)
    sans = _cert(tmp_path, "server").extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert sans.value.get_values_for_type(x509.DNSName) == ["localhost"]
    assert sans.value.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]


def test_ensure_keeps_a_valid_pki_and_renews_expiring_leaves(tmp_path: Path) -> None:
    pki.ensure_dev_pki(tmp_path)
    first = _cert(tmp_path, "server").serial_number
    pki.ensure_dev_pki(tmp_path)
    assert _cert(tmp_path, "server").serial_number == first

    ca = pki.load_credential(tmp_path, "ca")
    now = datetime.datetime.now(datetime.UTC)
    expiring = certificates.issue_server(ca, not_after=now + datetime.timedelta(hours=1))
    pki.write_credential(expiring, tmp_path, "server")
    pki.ensure_dev_pki(tmp_path)
    renewed = _cert(tmp_path, "server")
    assert renewed.serial_number != expiring.cert.serial_number
    assert renewed.not_valid_after_utc - now > pki.RENEW_MARGIN
    assert _cert(tmp_path, "ca").serial_number == ca.cert.serial_number


def test_load_rejects_a_non_ec_key(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    pki.create_dev_pki(tmp_path)
    key = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (tmp_path / "alice.key").write_bytes(key)
    with pytest.raises(ValueError, match="not an EC private key"):
        pki.load_credential(tmp_path, "alice")
