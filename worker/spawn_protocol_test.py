"""Every spawn protocol message survives encode and decode; bad records are ProtocolErrors."""

from __future__ import annotations

import os
import select

import pytest

from worker.sandbox_protocol import (
    ExecFailed,
    ProgramExec,
    ProgramExit,
    ReportPid,
    StepError,
    write_report,
)
from worker.spawn_protocol import (
    Exited,
    ExitStatus,
    Failed,
    Fatal,
    Kill,
    Killed,
    Message,
    Prepare,
    ProtocolError,
    Ready,
    Spawn,
    SpawnRequest,
    Started,
    decode,
    encode,
)

_JOB = SpawnRequest(
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
        Ready(17),
        Prepare("key", ("/a/cgroup.procs", "/b/cgroup.procs")),
        Spawn(3, _JOB, None),
        Spawn(4, _JOB, "prepared-key"),
        Kill(5, 1234, 15),
        Started(3, 1234),
        Failed(3, "exec", 2, "nosuchbinary"),
        Failed(3, "setup", None, "the setup processes died before exec"),
        Killed(5, True, None),
        Killed(5, False, 3),
        Exited(1234, ExitStatus(None, 6, True, 0.5, 0.25, 2048)),
        Exited(1234, ExitStatus(0, None)),
        Fatal("RuntimeError('boom')"),
        ReportPid(1234),
        StepError("chdir", 13, "/root"),
        ProgramExec(),
        ExecFailed(2),
        ProgramExit(134),
    ],
    ids=lambda message: message.TYPE,
)
def test_every_message_round_trips(message: Message) -> None:
    record = encode(message)
    assert record.isascii()
    assert decode(record) == message


def test_a_spawn_decodes_to_tuples_and_a_plain_environment() -> None:
    decoded = decode(encode(Spawn(1, _JOB)))
    assert isinstance(decoded, Spawn)
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
    with pytest.raises(ProtocolError):
        decode(record)


def test_a_report_is_one_atomic_line_however_long_its_detail() -> None:
    read_end, write_end = os.pipe()
    try:
        write_report(write_end, StepError("exec", 2, "x" * 10_000))
        write_report(write_end, ReportPid(7))
        lines = os.read(read_end, 65536).split(b"\n")
    finally:
        os.close(read_end)
        os.close(write_end)
    assert len(lines[0]) < select.PIPE_BUF
    error = decode(lines[0])
    assert isinstance(error, StepError)
    assert error.detail == "x" * len(error.detail)
    assert decode(lines[1]) == ReportPid(7)
    assert lines[2] == b""
