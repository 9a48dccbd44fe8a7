"""What the spawner replies for a sandbox, from its report records, EOF and wait status."""

from __future__ import annotations

import os
import resource
import signal
import socket
from collections.abc import Iterator

import pytest

from worker import sandbox_protocol as report
from worker import spawn_protocol as wire
from worker.spawner_sandbox import Sandbox

_USAGE = resource.getrusage(resource.RUSAGE_SELF)


def _record(message: wire.Message) -> bytes:
    return wire.encode(message) + b"\n"


@pytest.fixture(name="box")
def _box() -> Iterator[Sandbox]:
    ours, theirs = socket.socketpair()
    theirs.close()
    yield Sandbox(report_fd=-1, control=ours, request_id=7, program="prog")
    ours.close()


def _wait_status(*, code: int = 0, sig: int = 0, core: bool = False) -> int:
    return sig | (0x80 if core else 0) if sig else code << 8


def test_started_on_exec_then_exited_with_the_programs_status(box: Sandbox) -> None:
    assert box.feed(_record(report.ReportPid(40))) is None
    # A record may arrive in pieces: only whole lines count.
    exec_record = _record(report.ProgramExec())
    assert box.feed(exec_record[:5]) is None
    assert box.feed(exec_record[5:]) == wire.Started(7, 40)
    assert box.exited() is None  # Neither reaped nor read to EOF.
    box.feed(_record(report.ProgramExit(_wait_status(sig=signal.SIGABRT, core=True))))
    box.b_exit = (_wait_status(code=134), _USAGE)  # jobinit exits 128 + 6.
    assert box.exited() is None  # Not read to EOF yet.
    box.eof = True
    exited = box.exited()
    assert exited is not None and exited.pid == 40
    status = exited.status
    assert (status.exit_code, status.signal, status.core_dumped) == (None, 6, True)
    assert box.failure() is None


def test_without_jobinits_report_its_own_death_is_the_jobs(box: Sandbox) -> None:
    box.feed(_record(report.ReportPid(40)) + _record(report.ProgramExec()))
    box.b_exit = (_wait_status(sig=signal.SIGKILL), _USAGE)
    box.eof = True
    exited = box.exited()
    assert exited is not None
    assert (exited.status.signal, exited.status.core_dumped) == (signal.SIGKILL, False)


@pytest.mark.parametrize(
    ("records", "expected"),
    [
        ([report.StepError("chdir", 13, "/root")], wire.Failed(7, "chdir", 13, "/root")),
        ([report.ExecFailed(2)], wire.Failed(7, "exec", 2, "prog")),
        # The first error is the cause; an exec record after it starts nothing.
        (
            [report.StepError("cgroup", 2, "x"), report.ProgramExec(), report.ExecFailed(13)],
            wire.Failed(7, "cgroup", 2, "x"),
        ),
        ([], wire.Failed(7, "setup", None, "the setup processes died before exec")),
    ],
)
def test_a_job_that_never_ran_fails_at_eof(
    box: Sandbox, records: list[wire.Message], expected: wire.Failed
) -> None:
    started = box.feed(_record(report.ReportPid(40)) + b"".join(map(_record, records)))
    assert started is None
    box.eof = True
    assert box.failure() == expected
    assert box.exited() is None


def test_a_prepared_sandbox_without_a_job_replies_nothing(box: Sandbox) -> None:
    box.request_id = None
    box.feed(_record(report.ReportPid(40)) + _record(report.StepError("cgroup", 2, "x")))
    box.eof = True
    assert (box.failure(), box.exited()) == (None, None)


@pytest.mark.parametrize("record", [_record(wire.Ready(1)), b"garbage\n"])
def test_anything_else_on_a_report_pipe_is_a_protocol_error(box: Sandbox, record: bytes) -> None:
    with pytest.raises(wire.ProtocolError):
        box.feed(record)


def test_the_exit_status_decodes_wait_statuses() -> None:
    from worker.spawner_sandbox import exit_status

    assert exit_status(_wait_status(code=255), _USAGE).exit_code == 255
    crash = exit_status(_wait_status(sig=signal.SIGSEGV, core=True), _USAGE)
    assert (crash.exit_code, crash.signal, crash.core_dumped) == (None, 11, True)
    assert os.WCOREDUMP(_wait_status(sig=6, core=True))
