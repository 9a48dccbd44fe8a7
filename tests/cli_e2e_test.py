"""jobctl against a real jobworkerd: every command, exit codes, streaming and Ctrl-C.

Jobs run as uid 65534, so they use world-readable programs (/bin/sh, /usr/bin/python3).
A job's program runs under jobinit, PID 1 of its namespace, so signals act on it as on any
process: it can kill itself, and a stop's SIGTERM ends a program without a handler.
"""

from __future__ import annotations

import json
import re
import signal

import pytest

from tests.testing_e2e import (
    COMMAND_TIMEOUT,
    E2E_MARKS,
    Daemon,
    ctl,
    one_error_line,
    read_until,
    spawn_jobctl,
    start,
    status_json,
    wait_for_output,
)

pytestmark = E2E_MARKS

_SEGFAULT = ["/usr/bin/python3", "-c", "import ctypes; ctypes.string_at(0)"]


def test_start_prints_only_the_id_and_status_describes_the_job(daemon: Daemon) -> None:
    job_id = start(daemon, "/bin/sh", "-c", "echo hello; exit 4")
    assert ctl(daemon, "logs", "-f", job_id).returncode == 4  # Waits for the end.

    job = status_json(daemon, job_id)
    assert job["id"] == job_id
    assert job["owner"] == "alice"
    assert job["argv"] == ["/bin/sh", "-c", "echo hello; exit 4"]
    assert job["state"] == "exited"
    assert job["exit_code"] == 4
    assert job["signal"] is None
    assert job["ended_at"] is not None

    human = ctl(daemon, "status", job_id)
    assert human.returncode == 0
    text = human.stdout.decode()
    assert re.search(r"^state:\s+exited$", text, re.MULTILINE), text
    assert re.search(r"^exit:\s+4$", text, re.MULTILINE), text
    assert f"id:         {job_id}" in text


def test_start_applies_limits(daemon: Daemon) -> None:
    result = ctl(
        daemon,
        "start",
        "--cpu",
        "0.5",
        "--memory",
        "64MiB",
        "--pids",
        "32",
        "--io-read",
        "10MB/s",
        "--io-write",
        "1MiB/s",
        "--timeout",
        "1h",
        "--",
        "/bin/true",
    )
    assert result.returncode == 0, result.stderr
    limits = status_json(daemon, result.stdout.decode().strip())["limits"]
    assert limits == {
        "cpu": 0.5,
        "memory_bytes": 64 * 1024**2,
        "io_read_bps": 10_000_000,
        "io_write_bps": 1024**2,
        "pids": 32,
        "timeout_seconds": 3600.0,
    }


def test_logs_writes_raw_bytes_from_the_first_byte(daemon: Daemon) -> None:
    payload = bytes(range(256)) * 4096  # 1 MiB: every byte value, many chunks.
    job_id = start(
        daemon,
        "/usr/bin/python3",
        "-c",
        "import sys; sys.stdout.buffer.write(bytes(range(256)) * 4096)",
    )
    followed = ctl(daemon, "logs", "-f", job_id)
    assert followed.returncode == 0, followed.stderr
    assert followed.stdout == payload
    again = ctl(daemon, "logs", job_id)
    assert again.stdout == payload


def test_logs_follow_streams_a_running_job_until_it_ends(daemon: Daemon) -> None:
    job_id = start(daemon, "/bin/sh", "-c", "echo one; exec /bin/sleep 600")
    follower = spawn_jobctl([*daemon.credentials("alice"), "logs", "-f", job_id])
    try:
        assert read_until(follower.stdout, b"one\n") == b"one\n"
        assert follower.poll() is None  # Still following the running job.
        # sleep has no SIGTERM handler: jobinit forwards the stop's SIGTERM, which ends it.
        stopped = ctl(daemon, "stop", "--grace", "300", "-o", "json", job_id)
        assert stopped.returncode == 0, stopped.stderr
        _, err = follower.communicate(timeout=COMMAND_TIMEOUT)
    finally:
        follower.kill()
        follower.wait()
    assert err == b""
    assert follower.returncode == 128 + signal.SIGTERM


def test_stop_prints_the_final_status(daemon: Daemon) -> None:
    job_id = start(daemon, "/bin/sh", "-c", "trap '' TERM; echo ready; exec /bin/sleep 600")
    wait_for_output(daemon, job_id, b"ready\n")  # SIGTERM must not come before the trap.
    result = ctl(daemon, "stop", "--grace", "0.2", "-o", "json", job_id)
    assert result.returncode == 0, result.stderr
    job = json.loads(result.stdout)
    assert job["state"] == "stopped", job
    assert job["stop_reason"] == "requested"
    assert job["signal"] == signal.SIGKILL  # It ignored SIGTERM: the grace ran out.
    human = ctl(daemon, "stop", job_id)  # Stopping an ended job reports it again.
    assert human.returncode == 0, human.stderr
    assert re.search(r"^exit:\s+SIGKILL$", human.stdout.decode(), re.MULTILINE)
    assert re.search(r"^state:\s+stopped \(requested\)$", human.stdout.decode(), re.MULTILINE)


def test_list_shows_a_table_and_json(daemon: Daemon) -> None:
    job_id = start(daemon, "/bin/echo", "listed")
    table = ctl(daemon, "list")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.decode().splitlines()
    assert lines[0].split() == ["ID", "OWNER", "STATE", "EXIT", "STARTED", "COMMAND"]
    row = next(line for line in lines if line.startswith(job_id))
    assert row.split()[1] == "alice"
    assert row.endswith("/bin/echo listed")

    as_json = ctl(daemon, "list", "-o", "json")
    jobs = json.loads(as_json.stdout)
    assert job_id in [job["id"] for job in jobs]
    assert {job["owner"] for job in jobs} == {"alice"}


@pytest.mark.parametrize(("script", "code"), [("exit 0", 0), ("exit 3", 3)])
def test_run_streams_output_and_exits_with_the_job_code(
    daemon: Daemon, script: str, code: int
) -> None:
    result = ctl(daemon, "run", "--", "/bin/sh", "-c", f"echo out; echo err >&2; {script}")
    assert result.stdout == b"out\nerr\n"
    assert result.stderr == b""
    assert result.returncode == code


def test_run_exits_128_plus_the_signal_that_killed_the_job(daemon: Daemon) -> None:
    result = ctl(daemon, "run", "--", *_SEGFAULT)
    assert result.returncode == 128 + signal.SIGSEGV
    assert "was killed by SIGSEGV" in one_error_line(result)


def test_run_exits_137_when_a_stop_kills_the_job(daemon: Daemon) -> None:
    runner = spawn_jobctl(
        [
            *daemon.credentials("alice"),
            *("run", "--", "/bin/sh", "-c", "trap '' TERM; echo up; exec /bin/sleep 600"),
        ]
    )
    try:
        read_until(runner.stdout, b"up\n")
        job_id = next(
            j["id"]
            for j in json.loads(ctl(daemon, "list", "-o", "json").stdout)
            if j["state"] == "running" and "echo up" in " ".join(j["argv"])
        )
        assert ctl(daemon, "stop", "--grace", "0.2", job_id).returncode == 0
        _, err = runner.communicate(timeout=COMMAND_TIMEOUT)
    finally:
        runner.kill()
        runner.wait()
    assert runner.returncode == 128 + signal.SIGKILL
    assert b"killed by SIGKILL" in err


def test_run_ctrl_c_stops_the_job_and_exits_with_its_code(daemon: Daemon) -> None:
    # One process with a SIGTERM handler: a shell would also report its children's deaths.
    script = (
        "import os, signal, time\n"
        "def bye(*_):\n"  # os.write: the signal may interrupt print() of 'ready'.
        "    os.write(1, b'got TERM\\n')\n"
        "    os._exit(7)\n"
        "signal.signal(signal.SIGTERM, bye)\n"
        "print('ready', flush=True)\n"
        "time.sleep(600)\n"
    )
    runner = spawn_jobctl(
        [*daemon.credentials("alice"), "run", "--", "/usr/bin/python3", "-c", script]
    )
    try:
        read_until(runner.stdout, b"ready\n")
        runner.send_signal(signal.SIGINT)
        out, err = runner.communicate(timeout=COMMAND_TIMEOUT)
    finally:
        runner.kill()
        runner.wait()
    assert out == b"got TERM\n", out.decode()
    assert b"stopping job" in err
    assert runner.returncode == 7


def test_run_second_ctrl_c_detaches_and_leaves_the_job(daemon: Daemon) -> None:
    # Ignores SIGTERM, so the stop waits out its long grace period.
    script = "trap '' TERM; echo ready; while :; do sleep 0.1; done"
    runner = spawn_jobctl(
        [*daemon.credentials("alice"), "run", "--grace", "600", "--", "/bin/sh", "-c", script]
    )
    try:
        read_until(runner.stdout, b"ready\n")
        runner.send_signal(signal.SIGINT)
        err = read_until(runner.stderr, b"Ctrl-C again to detach")
        runner.send_signal(signal.SIGINT)
        _, rest = runner.communicate(timeout=COMMAND_TIMEOUT)
    finally:
        runner.kill()
        runner.wait()
    assert runner.returncode == 130
    match = re.search(rb"detached; job (\S+) is left to the daemon", err + rest)
    assert match, err + rest
    job_id = match.group(1).decode()
    assert status_json(daemon, job_id)["state"] == "running"
    assert ctl(daemon, "stop", "--grace", "0", job_id).returncode == 0


def test_logs_exits_with_the_code_of_an_ended_job(daemon: Daemon) -> None:
    job_id = start(daemon, "/bin/sh", "-c", "echo bye; exit 5")
    result = ctl(daemon, "logs", "-f", job_id)
    assert (result.returncode, result.stdout) == (5, b"bye\n")


def test_ctrl_c_ends_logs_follow_quietly_with_130(daemon: Daemon) -> None:
    job_id = start(daemon, "/bin/sh", "-c", "echo a; exec /bin/sleep 600")
    follower = spawn_jobctl([*daemon.credentials("alice"), "logs", "-f", job_id])
    try:
        read_until(follower.stdout, b"a\n")
        follower.send_signal(signal.SIGINT)
        _, err = follower.communicate(timeout=COMMAND_TIMEOUT)
        # Leaving a stream never stops the job.
        assert status_json(daemon, job_id)["state"] == "running"
    finally:
        follower.kill()
        follower.wait()
        ctl(daemon, "stop", "--grace", "0", job_id)
    assert (follower.returncode, err) == (130, b"")
