"""Server TLS credentials: mutual TLS against the jobworker CA, TLS 1.3 only.

The client must present a certificate issued by our CA (``require_client_auth=True``);
BoringSSL then checks its chain, validity period and clientAuth key usage during the
handshake, before any RPC runs. TLS 1.2 is refused by api/tls_policy.py. The key exchange
is grpc's default: grpcio 1.85.3 clients offer X25519MLKEM768 first and the server picks
it (api/tls_test.py parses the ServerHello on the wire to assert it).
"""

from __future__ import annotations

import grpc

from api import tls_policy
from api.pki import TlsFiles


def server_credentials(files: TlsFiles) -> grpc.ServerCredentials:
    """Returns credentials that require a client certificate from ``files.ca``.

    Raises:
        tls_policy.TlsPolicyError: TLS 1.2 was not disabled before grpc was imported.
        OSError: A file cannot be read.
    """
    tls_policy.check_tls12_forbidden()
    return grpc.ssl_server_credentials(
        [(files.key.read_bytes(), files.cert.read_bytes())],
        root_certificates=files.ca.read_bytes(),
        require_client_auth=True,
    )


def channel_credentials(files: TlsFiles) -> grpc.ChannelCredentials:
    """Returns client credentials presenting ``files.cert`` and trusting ``files.ca``."""
    return grpc.ssl_channel_credentials(
        root_certificates=files.ca.read_bytes(),
        private_key=files.key.read_bytes(),
        certificate_chain=files.cert.read_bytes(),
    )
