"""jobctl's failures against a real jobworkerd: isolation, usage, refused connections.

Each failure must be one line on stderr (no traceback, no gRPC jargon) and exit 1, or
exit 2 with usage for a bad command line.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

from api import certificates, pki
from api.role import Role
from tests.testing_e2e import (
    E2E_MARKS,
    Daemon,
    ctl,
    jobctl,
    one_error_line,
    start,
)

pytestmark = E2E_MARKS


@pytest.mark.parametrize("command", ["status", "logs", "stop"])
def test_other_users_jobs_are_not_found(daemon: Daemon, command: str) -> None:
    job_id = start(daemon, "/bin/sleep", "600")
    try:
        result = ctl(daemon, command, job_id, user="bob")
        assert result.returncode == 1
        assert one_error_line(result) == f"job not found: {job_id}"
        assert job_id.encode() not in ctl(daemon, "list", user="bob").stdout
        assert job_id.encode() in ctl(daemon, "list", user="admin").stdout
    finally:
        ctl(daemon, "stop", "--grace", "0", job_id)


@pytest.mark.parametrize(
    "args",
    [
        ["start", "--memory", "10M", "--", "/bin/true"],
        ["start", "--cpu", "0", "--", "/bin/true"],
        ["start"],
        ["status"],
        ["list", "-o", "yaml"],
        ["frobnicate"],
        [],
    ],
)
def test_bad_command_lines_exit_2_with_usage(daemon: Daemon, args: list[str]) -> None:
    result = ctl(daemon, *args)
    assert result.returncode == 2
    assert b"usage: jobctl" in result.stderr
    assert result.stdout == b""


def test_invalid_limits_are_reported_by_field(daemon: Daemon) -> None:
    result = ctl(daemon, "start", "--cpu", "1000", "--", "/bin/true")
    assert result.returncode == 1
    assert one_error_line(result).startswith("invalid argument: limits.cpu")


def test_unknown_job_is_not_found(daemon: Daemon) -> None:
    result = ctl(daemon, "status", "AAAAAAAAAAAAAAAAAAAAAA")
    assert result.returncode == 1
    assert one_error_line(result) == "job not found: AAAAAAAAAAAAAAAAAAAAAA"


def test_daemon_down_is_a_clear_error_within_the_connect_timeout(daemon: Daemon) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        addr = f"127.0.0.1:{probe.getsockname()[1]}"
    # Nothing listens on addr now. Refusal must be reported without waiting out the
    # (deliberately long) connect timeout.
    began = time.monotonic()
    result = ctl(daemon, "list", f"--addr={addr}", "--connect_timeout=60")
    assert time.monotonic() - began < 60
    assert result.returncode == 1
    assert one_error_line(result) == f"cannot connect to {addr}: connection refused"


def test_silent_peer_times_out_at_the_connect_timeout(daemon: Daemon) -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # Completes TCP handshakes but never speaks TLS.
        addr = f"127.0.0.1:{silent.getsockname()[1]}"
        result = ctl(daemon, "list", f"--addr={addr}", "--connect_timeout=1")
    assert result.returncode == 1
    assert one_error_line(result) == f"cannot connect to {addr}: no answer within 1s"


def test_certificate_from_another_ca_is_rejected(daemon: Daemon, tmp_path: Path) -> None:
    other_ca = certificates.new_ca("impostor CA")
    pki.write_credential(certificates.issue_client(other_ca, "alice", Role.USER), tmp_path, "alice")
    result = ctl(
        daemon, "list", f"--cert={tmp_path / 'alice.crt'}", f"--key={tmp_path / 'alice.key'}"
    )
    assert result.returncode == 1
    assert one_error_line(result).startswith("daemon rejected the client certificate")


def test_untrusted_daemon_certificate_is_refused(daemon: Daemon, tmp_path: Path) -> None:
    pki.write_credential(certificates.new_ca("impostor CA"), tmp_path, "ca")
    result = ctl(daemon, "list", f"--ca={tmp_path / 'ca.crt'}")
    assert result.returncode == 1
    assert one_error_line(result) == (
        f"cannot connect to {daemon.addr}: the daemon's certificate is not signed by the CA in --ca"
    )


def test_environment_and_relative_paths(daemon: Daemon) -> None:
    env = {
        "JOBCTL_ADDR": "127.0.0.1:1",  # The flag below wins over it.
        "JOBCTL_CA": "ca.crt",
        "JOBCTL_CERT": "bob.crt",
        "JOBCTL_KEY": "bob.key",
        "BUILD_WORKING_DIRECTORY": str(daemon.pki_dir),  # As under `bazel run`.
    }
    result = jobctl([f"--addr={daemon.addr}", "list", "-o", "json"], env=env, cwd=Path("/"))
    assert result.returncode == 0, result.stderr
    assert all(job["owner"] == "bob" for job in json.loads(result.stdout))

    missing = jobctl(["list"], env={"JOBCTL_ADDR": daemon.addr})
    assert missing.returncode == 1
    assert one_error_line(missing) == "no --ca given and JOBCTL_CA is not set"
