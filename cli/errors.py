"""jobctl's exit codes, its one error type, and the one mapping from gRPC status to a phrase.

Every failure reaches the user as one line on stderr, ``jobctl: <what failed>``, with no
traceback and no status-code names where a plain phrase exists.
"""

from __future__ import annotations

import enum

import grpc


class ExitCode(enum.IntEnum):
    """Process exit codes of jobctl (``run`` and ``logs`` exit with the job's own code)."""

    OK = 0
    ERROR = 1  # The command failed; the reason is on stderr.
    USAGE = 2  # The command line was invalid; usage is on stderr (argparse's convention).
    # Interrupted by Ctrl-C, or detached from ``run`` by a second Ctrl-C: 128 + SIGINT, as a
    # shell reports a program that SIGINT ended (bash(1), "EXIT STATUS").
    INTERRUPTED = 130


class CliError(Exception):
    """A failure to report as one line on stderr, exiting with ``ExitCode.ERROR``."""


# Causes of a failed connection, from the gRPC core's and BoringSSL's own wording (matched
# lowercase, first match wins) to the phrase the user sees. Alerts come first: a TLS 1.3
# server checks the client certificate after the handshake, so a rejected certificate
# reaches the client as an alert on an otherwise healthy connection.
_CONNECT_CAUSES: tuple[tuple[str, str], ...] = (
    ("alert certificate required", "daemon rejected the client certificate (none was sent)"),
    ("alert certificate expired", "daemon rejected the client certificate: it has expired"),
    ("alert unknown ca", "daemon rejected the client certificate: unknown CA"),
    ("alert bad certificate", "daemon rejected the client certificate"),
    ("alert unsupported certificate", "daemon rejected the client certificate"),
    ("alert certificate unknown", "daemon rejected the client certificate"),
    ("alert handshake failure", "daemon refused the TLS handshake"),
    ("alert protocol version", "daemon refused the TLS version"),
    ("not in peer certificate", "the daemon's certificate does not name this address"),
    ("certificate_verify_failed", "the daemon's certificate is not signed by the CA in --ca"),
    ("certificate verify failed", "the daemon's certificate is not signed by the CA in --ca"),
    ("wrong_version_number", "the daemon does not speak TLS"),
    ("connection refused", "connection refused"),
    ("no route to host", "no route to host"),
    ("network is unreachable", "network is unreachable"),
    ("dns resolution failed", "cannot resolve the host name"),
    ("connection reset", "connection reset by the daemon"),
    # With TLS 1.3 the client's side of the handshake is done before the server has
    # checked the client certificate; a daemon that rejects it just closes the socket
    # before gRPC's first frame, so that is how a rejection looks from here (measured
    # with a certificate from another CA and with the server's certificate as a client's).
    ("socket closed", "daemon rejected the client certificate (it closed the connection)"),
    (
        "failed to create security handshaker",
        "unusable client certificate or key: not PEM, "
        "or the key does not belong to the certificate",
    ),
    ("handshake", "TLS handshake failed"),
)


def _connect_cause(details: str) -> str:
    lowered = details.lower()
    for needle, phrase in _CONNECT_CAUSES:
        if needle in lowered:
            return phrase
    # The core's message ends with the most specific error after the last "last error: ".
    return details.rpartition("last error: ")[2] or "unavailable"


def describe_rpc_error(
    error: grpc.RpcError, addr: str, job_id: str | None = None, timeout: float | None = None
) -> str:
    """Turns a failed RPC into one line for a human.

    Args:
        error: The failed call, as raised by a grpc or grpc.aio stub.
        addr: The daemon address, for connection failures.
        job_id: The job the call was about, if any.
        timeout: The call's deadline in seconds, if it had one.

    Returns:
        The line, without a trailing newline or a program-name prefix.
    """
    code = error.code()
    details = error.details() or ""
    if code == grpc.StatusCode.NOT_FOUND:
        return f"job not found: {job_id}" if job_id else "job not found"
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return f"invalid argument: {details}"
    if code == grpc.StatusCode.FAILED_PRECONDITION:
        return details or "the job is not in a state that allows this"
    if code == grpc.StatusCode.PERMISSION_DENIED:
        return f"permission denied: {details}" if details else "permission denied"
    if code == grpc.StatusCode.UNAUTHENTICATED:
        suffix = f": {details}" if details else ""
        return f"daemon rejected the client certificate{suffix}"
    if code == grpc.StatusCode.UNAVAILABLE:
        cause = _connect_cause(details)
        if cause.startswith("daemon "):
            return cause
        return f"cannot connect to {addr}: {cause}"
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        within = f" within {timeout:g}s" if timeout is not None else " in time"
        return f"the daemon at {addr} did not answer{within}"
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return f"daemon is out of resources: {details}"
    if code == grpc.StatusCode.CANCELLED:
        return "the request was cancelled"
    if code == grpc.StatusCode.UNIMPLEMENTED:
        return f"the daemon at {addr} does not support this command (is it a jobworkerd?)"
    return f"daemon error: {details}" if details else f"daemon error ({code.name})"
