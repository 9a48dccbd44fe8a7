import grpc
import pytest

from cli.errors import describe_rpc_error

ADDR = "127.0.0.1:50051"


class FakeRpcError(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self._code = code
        self._details = details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


def refused(last_error: str) -> str:
    return f"failed to connect to all addresses; last error: {last_error}"


@pytest.mark.parametrize(
    ("code", "details", "expected"),
    [
        (grpc.StatusCode.NOT_FOUND, "job abc not found", "job not found: abc"),
        (
            grpc.StatusCode.INVALID_ARGUMENT,
            "limits.cpu: 100.0 exceeds the daemon maximum 2.0",
            "invalid argument: limits.cpu: 100.0 exceeds the daemon maximum 2.0",
        ),
        (grpc.StatusCode.FAILED_PRECONDITION, "job has ended", "job has ended"),
        (
            grpc.StatusCode.PERMISSION_DENIED,
            "role user may not",
            "permission denied: role user may not",
        ),
        (
            grpc.StatusCode.UNAUTHENTICATED,
            "no role in certificate",
            "daemon rejected the client certificate: no role in certificate",
        ),
        (
            grpc.StatusCode.UNAVAILABLE,
            refused(
                "UNKNOWN: ipv4:127.0.0.1:50051: Failed to connect to remote host: "
                "Connection refused"
            ),
            f"cannot connect to {ADDR}: connection refused",
        ),
        (
            grpc.StatusCode.UNAVAILABLE,
            refused("UNAVAILABLE: ipv4:127.0.0.1:50051: Socket closed"),
            "daemon rejected the client certificate (it closed the connection)",
        ),
        (
            grpc.StatusCode.UNAVAILABLE,
            refused(
                "UNKNOWN: ipv4:127.0.0.1:50051: Ssl handshake failed (TSI_PROTOCOL_FAILURE): "
                "SSL_ERROR_SSL: error:1000007d:SSL routines:OPENSSL_internal:"
                "CERTIFICATE_VERIFY_FAILED: unable to get local issuer certificate"
            ),
            f"cannot connect to {ADDR}: the daemon's certificate is not signed by the CA in --ca",
        ),
        (
            grpc.StatusCode.UNAVAILABLE,
            refused("UNKNOWN: ipv4:127.0.0.1:50051: Failed to create security handshaker."),
            f"cannot connect to {ADDR}: unusable client certificate or key: not PEM, or the key "
            "does not belong to the certificate",
        ),
        (
            grpc.StatusCode.UNAVAILABLE,
            refused("UNKNOWN: Peer name 127.0.0.2 is not in peer certificate"),
            f"cannot connect to {ADDR}: the daemon's certificate does not name this address",
        ),
        (
            grpc.StatusCode.UNAVAILABLE,
            refused("UNKNOWN: something new"),
            f"cannot connect to {ADDR}: UNKNOWN: something new",
        ),
        (
            grpc.StatusCode.DEADLINE_EXCEEDED,
            "Deadline Exceeded",
            f"the daemon at {ADDR} did not answer within 30s",
        ),
        (
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "too many jobs",
            "daemon is out of resources: too many jobs",
        ),
        (grpc.StatusCode.INTERNAL, "boom", "daemon error: boom"),
        (grpc.StatusCode.UNKNOWN, "", "daemon error (UNKNOWN)"),
        (grpc.StatusCode.CANCELLED, "Cancelled", "the request was cancelled"),
    ],
)
def test_describe_rpc_error(code: grpc.StatusCode, details: str, expected: str) -> None:
    assert describe_rpc_error(FakeRpcError(code, details), ADDR, "abc", 30.0) == expected


def test_not_found_without_a_job_id() -> None:
    assert describe_rpc_error(FakeRpcError(grpc.StatusCode.NOT_FOUND, ""), ADDR) == "job not found"


@pytest.mark.parametrize("code", list(grpc.StatusCode))
def test_every_status_gives_one_line_without_the_code_name_where_a_phrase_exists(
    code: grpc.StatusCode,
) -> None:
    line = describe_rpc_error(FakeRpcError(code, "detail"), ADDR, "abc", 1.0)
    assert line and "\n" not in line
    if code not in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL, grpc.StatusCode.OK):
        assert code.name not in line
