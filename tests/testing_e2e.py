"""End-to-end harness: a real jobworkerd subprocess and jobctl run as a subprocess.

Under Bazel both programs come from the test's runfiles (``data`` of the test target):
the py_binary launchers //api:jobworkerd and //cli:jobctl. Outside Bazel (development,
``PYTHONPATH=/tmp/gen:. pytest tests/...``) they run as ``python -m api.jobworkerd`` and
``python -m cli.jobctl`` from this source tree.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from api import pki
from tools.testing.leakcheck import Snapshot

# Generous bounds that only stop a broken build from hanging; no test passes or fails
# on how fast something is, except the connect-timeout test, with a wide band.
STARTUP_TIMEOUT = 60.0
COMMAND_TIMEOUT = 120.0
_SETTLE_SECONDS = 5.0
_JOB_ID = re.compile(rb"[A-Za-z0-9_-]{16,}\n")
_PORT_LINE = re.compile(r"listening on \S+ \(port (\d+)\)")
_REPO = Path(__file__).resolve().parents[1]


# For every e2e module. The daemon is shared by the module and keeps the cgroups of ended
# jobs until it shuts down, so the shared per-test leak check (which scans job cgroups) is
# replaced: no_leaks_except_job_cgroups checks the rest per test, module_daemon the
# cgroups at the end.
E2E_MARKS = [
    pytest.mark.kernel,
    pytest.mark.allow_leaks,
]


def _program(runfile: str, module: str) -> list[str]:
    srcdir = os.environ.get("TEST_SRCDIR")
    if srcdir:
        return [str(Path(srcdir) / os.environ.get("TEST_WORKSPACE", "jobworker") / runfile)]
    return [sys.executable, "-m", module]


def _environ(extra: Mapping[str, str] = {}) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBCTL_")}
    env.pop("BUILD_WORKING_DIRECTORY", None)
    if not os.environ.get("TEST_SRCDIR"):
        # Development: absolute entries, since the programs may run in another directory.
        paths = [str(_REPO)] + [
            str(Path(p).resolve()) for p in env.get("PYTHONPATH", "").split(":") if p
        ]
        env["PYTHONPATH"] = ":".join(paths)
    env.update(extra)
    return env


def jobctl_command() -> list[str]:
    """Returns the argv prefix that runs jobctl."""
    return _program("cli/jobctl", "cli.jobctl")


@dataclasses.dataclass(frozen=True, slots=True)
class Daemon:
    """A running jobworkerd and the dev PKI its clients use.

    Attributes:
        addr: ``127.0.0.1:PORT``.
        pki_dir: Directory with ca.crt and the alice, bob and admin credentials.
        process: The daemon process.
        log: The daemon's stderr (its audit log), for failure messages.
    """

    addr: str
    pki_dir: Path
    process: subprocess.Popen[bytes]
    log: Path

    def credentials(self, user: str) -> list[str]:
        """Returns jobctl's connection flags for ``user``."""
        return [
            f"--addr={self.addr}",
            f"--ca={self.pki_dir / 'ca.crt'}",
            f"--cert={self.pki_dir / f'{user}.crt'}",
            f"--key={self.pki_dir / f'{user}.key'}",
        ]


def _wait_for_port(process: subprocess.Popen[bytes], log: Path) -> int:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        match = _PORT_LINE.search(log.read_text(errors="replace"))
        if match:
            return int(match.group(1))
        if process.poll() is not None:
            raise RuntimeError(f"jobworkerd exited with {process.returncode}:\n{log.read_text()}")
        time.sleep(0.05)
    raise RuntimeError(f"jobworkerd did not report its port:\n{log.read_text()}")


@contextlib.contextmanager
def running_daemon(workdir: Path) -> Iterator[Daemon]:
    """Runs jobworkerd on a free loopback port with a fresh dev PKI in ``workdir``."""
    pki_dir = workdir / "pki"
    pki.create_dev_pki(pki_dir)
    log = workdir / "jobworkerd.log"
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            [
                *_program("api/jobworkerd", "api.jobworkerd"),
                "--listen=127.0.0.1:0",
                f"--pki_dir={pki_dir}",
                f"--data_dir={workdir / 'data'}",
                "--logtostderr",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=log_file,
            env=_environ(),
        )
    try:
        port = _wait_for_port(process, log)
        yield Daemon(f"127.0.0.1:{port}", pki_dir, process, log)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STARTUP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def jobctl(
    args: Sequence[str], env: Mapping[str, str] = {}, cwd: Path | None = None
) -> subprocess.CompletedProcess[bytes]:
    """Runs jobctl to completion and returns its exit code and output."""
    return subprocess.run(
        [*jobctl_command(), *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        env=_environ(env),
        cwd=cwd,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )


def spawn_jobctl(args: Sequence[str]) -> subprocess.Popen[bytes]:
    """Starts jobctl with piped stdout and stderr; the caller waits for it."""
    return subprocess.Popen(
        [*jobctl_command(), *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_environ(),
    )


def read_until(stream: object, needle: bytes, timeout: float = COMMAND_TIMEOUT) -> bytes:
    """Reads a pipe until ``needle`` appears; returns everything read so far.

    Raises:
        AssertionError: The pipe closed or the time ran out first.
    """
    fd = stream.fileno()  # type: ignore[attr-defined]
    seen = b""
    deadline = time.monotonic() + timeout
    while needle not in seen:
        remaining = deadline - time.monotonic()
        ready, _, _ = select.select([fd], [], [], max(0.0, remaining))
        if not ready:
            raise AssertionError(f"no {needle!r} within {timeout}s; got {seen!r}")
        chunk = os.read(fd, 65536)
        if not chunk:
            raise AssertionError(f"pipe closed before {needle!r}; got {seen!r}")
        seen += chunk
    return seen


def ctl(daemon: Daemon, *args: str, user: str = "alice") -> subprocess.CompletedProcess[bytes]:
    """Runs jobctl as ``user`` against ``daemon``."""
    return jobctl([*daemon.credentials(user), *args])


def start(daemon: Daemon, *argv: str, user: str = "alice") -> str:
    """Starts a job with jobctl and returns its id, asserting that only the id was printed."""
    result = ctl(daemon, "start", "--", *argv, user=user)
    assert result.returncode == 0, result.stderr
    assert _JOB_ID.fullmatch(result.stdout), result.stdout
    return result.stdout.decode().strip()


def wait_for_output(daemon: Daemon, job_id: str, needle: bytes) -> None:
    """Follows the job's output until ``needle`` appears (a job says it is ready)."""
    follower = spawn_jobctl([*daemon.credentials("alice"), "logs", "-f", job_id])
    try:
        read_until(follower.stdout, needle)
    finally:
        follower.kill()
        follower.wait()
        for pipe in (follower.stdout, follower.stderr):
            assert pipe is not None
            pipe.close()


def status_json(daemon: Daemon, job_id: str, user: str = "alice") -> dict[str, Any]:
    """Returns ``jobctl status -o json`` of a job."""
    result = ctl(daemon, "status", "-o", "json", job_id, user=user)
    assert result.returncode == 0, result.stderr
    parsed: dict[str, Any] = json.loads(result.stdout)
    return parsed


def one_error_line(result: subprocess.CompletedProcess[bytes]) -> str:
    """Returns jobctl's error line without its prefix, asserting it is the only line."""
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("jobctl: ")
    return lines[0].removeprefix("jobctl: ")


def module_daemon(workdir: Path) -> Iterator[Daemon]:
    """Body of a module fixture: a daemon, and at the end a check that it left no cgroup."""
    with running_daemon(workdir) as running:
        yield running
        every_job = ctl(running, "list", "-o", "json", user="admin")
        job_ids = {job["id"] for job in json.loads(every_job.stdout)}
    assert running.process.returncode == 0, running.log.read_text()
    left = [path for path in Snapshot.take().cgroups if path.rpartition("/job-")[2] in job_ids]
    assert left == [], "jobworkerd left job cgroups behind"


def no_leaks_except_job_cgroups() -> Iterator[None]:
    """Body of a per-test fixture: the shared leak check minus the daemon's job cgroups.

    The daemon is shared by a module and keeps the cgroups of ended jobs until it shuts
    down; module_daemon checks those at the end.
    """
    before = Snapshot.take()
    yield
    deadline = time.monotonic() + _SETTLE_SECONDS
    while True:
        leaks = Snapshot.take().leaked_since(before)
        leaks.pop("job cgroups", None)
        if not leaks or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert leaks == {}
