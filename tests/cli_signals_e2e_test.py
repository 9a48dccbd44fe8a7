"""jobctl against a real jobworkerd: true exit statuses, kill and --timeout under jobinit."""

from __future__ import annotations

import json
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
)

pytestmark = E2E_MARKS


def test_an_abort_is_sigabrt_with_its_core(daemon: Daemon) -> None:
    # The core goes to the cwd (core_pattern "core"): the job's private /tmp.
    abort = "ulimit -c unlimited; exec /usr/bin/python3 -c 'import os; os.abort()'"
    result = ctl(daemon, "run", "--cwd", "/tmp", "--", "/bin/sh", "-c", abort)
    assert result.returncode == 128 + signal.SIGABRT
    assert "was killed by SIGABRT (core dumped)" in one_error_line(result)


@pytest.mark.parametrize(("sig", "code"), [("TERM", 143), ("SEGV", 139)])
def test_a_job_can_kill_itself(daemon: Daemon, sig: str, code: int) -> None:
    assert ctl(daemon, "run", "--", "/bin/sh", "-c", f"kill -{sig} $$").returncode == code


@pytest.mark.parametrize("code", [0, 1, 255])
def test_exit_codes_are_exact(daemon: Daemon, code: int) -> None:
    assert ctl(daemon, "run", "--", "/bin/sh", "-c", f"exit {code}").returncode == code


def test_kill_stops_and_continues_the_program_then_ends_it(daemon: Daemon) -> None:
    script = "trap 'echo got USR1' USR1; echo ready; while :; do sleep 0.1; done"
    runner = spawn_jobctl([*daemon.credentials("alice"), "run", "--", "/bin/sh", "-c", script])
    try:
        read_until(runner.stdout, b"ready\n")
        job_id = next(
            job["id"]
            for job in json.loads(ctl(daemon, "list", "-o", "json").stdout)
            if job["state"] == "running" and "got USR1" in " ".join(job["argv"])
        )
        for name in ("-s", "usr1"), ("--signal", "SIGSTOP"), ("-s", "18"):  # 18: SIGCONT.
            assert ctl(daemon, "kill", *name, job_id).returncode == 0
        read_until(runner.stdout, b"got USR1\n")
        assert ctl(daemon, "kill", "--all", "-s", "KILL", job_id).returncode == 0
        _, err = runner.communicate(timeout=COMMAND_TIMEOUT)
    finally:
        runner.kill()
        runner.wait()
    assert runner.returncode == 128 + signal.SIGKILL
    assert b"killed by SIGKILL" in err


def test_kill_refusals(daemon: Daemon) -> None:
    ended = start(daemon, "/bin/true")
    ctl(daemon, "logs", "-f", ended)  # Until it has ended.
    running = start(daemon, "/bin/sleep", "600")
    try:
        bad = ctl(daemon, "kill", "-s", "SEGV", running)
        foreign = ctl(daemon, "kill", running, user="bob")
        over = ctl(daemon, "kill", ended)
    finally:
        ctl(daemon, "stop", running)
    assert bad.returncode == 1
    assert "invalid argument: signal: must be one of HUP, INT" in one_error_line(bad)
    assert (foreign.returncode, one_error_line(foreign)) == (1, f"job not found: {running}")
    assert (over.returncode, one_error_line(over)) == (1, "the job has ended")


def test_run_with_a_timeout_is_stopped_at_its_deadline(daemon: Daemon) -> None:
    result = ctl(daemon, "run", "--timeout", "0.5s", "--", "/bin/sleep", "600")
    assert result.returncode == 128 + signal.SIGTERM
    assert "stopped at its deadline" in one_error_line(result)
    job = next(
        job
        for job in json.loads(ctl(daemon, "list", "-o", "json").stdout)
        if job["argv"] == ["/bin/sleep", "600"] and job["limits"]["timeout_seconds"] == 0.5
    )
    assert (job["state"], job["stop_reason"]) == ("stopped", "deadline")
    assert status_json(daemon, job["id"])["stop_reason"] == "deadline"
