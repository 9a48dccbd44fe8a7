"""Every spawn protocol message survives encode and decode; bad records are ProtocolErrors."""

from __future__ import annotations

import os
import select

import pytest

from worker import sandbox_protocol as report
from worker import spawn_protocol as wire

_JOB = wire.SpawnRequest(
    argv=("/bin/echo", "caf\udce9"),  # A lone surrogate: an undecodable file name.
    env={"PATH": "/bin", "EMPTY": ""},
    cwd="/tmp",
    uid=65534,
    gid=65534,
    cgroup_procs=("/sys/fs/cgroup/pids/x/cgroup.procs",),
)


@pytest.mark.parametrize(
    "message",
    [
        wire.Ready(17),
        wire.Prepare("key", ("/a/cgroup.procs", "/b/cgroup.procs")),
        wire.Spawn(3, _JOB, None),
        wire.Spawn(4, _JOB, "prepared-key"),
        wire.Kill(5, 1234, 15),
        wire.Started(3, 1234),
        wire.Failed(3, "exec", 2, "nosuchbinary"),
        wire.Failed(3, "setup", None, "the setup processes died before exec"),
        wire.Killed(5, True, None),
        wire.Killed(5, False, 3),
        wire.Exited(1234, wire.ExitStatus(None, 6, True, 0.5, 0.25, 2048)),
        wire.Exited(1234, wire.ExitStatus(0, None)),
        wire.Fatal("RuntimeError('boom')"),
        report.ReportPid(1234),
        report.StepError("chdir", 13, "/root"),
        report.ProgramExec(),
        report.ExecFailed(2),
        report.ProgramExit(134),
    ],
    ids=lambda message: message.TYPE,
)
def test_every_message_round_trips(message: wire.Message) -> None:
    record = wire.encode(message)
    assert record.isascii()
    assert wire.decode(record) == message


def test_a_spawn_decodes_to_tuples_and_a_plain_environment() -> None:
    decoded = wire.decode(wire.encode(wire.Spawn(1, _JOB)))
    assert isinstance(decoded, wire.Spawn)
    assert decoded.job.argv == _JOB.argv
    assert isinstance(decoded.job.cgroup_procs, tuple)
    assert dict(decoded.job.env) == dict(_JOB.env)


@pytest.mark.parametrize(
    "record",
    [
        b"",
        b"not json",
        b"[1, 2]",
        b'{"pid": 1}',  # No type.
        b'{"type": "nosuch"}',
        b'{"type": "ready"}',  # A missing field.
        b'{"type": "spawn", "request_id": 1}',
    ],
)
def test_bad_records_are_protocol_errors(record: bytes) -> None:
    with pytest.raises(wire.ProtocolError):
        wire.decode(record)


def test_a_report_is_one_atomic_line_however_long_its_detail() -> None:
    read_end, write_end = os.pipe()
    try:
        report.write_report(write_end, report.StepError("exec", 2, "x" * 10_000))
        report.write_report(write_end, report.ReportPid(7))
        lines = os.read(read_end, 65536).split(b"\n")
    finally:
        os.close(read_end)
        os.close(write_end)
    assert len(lines[0]) < select.PIPE_BUF
    error = wire.decode(lines[0])
    assert isinstance(error, report.StepError)
    assert error.detail == "x" * len(error.detail)
    assert wire.decode(lines[1]) == report.ReportPid(7)
    assert lines[2] == b""
