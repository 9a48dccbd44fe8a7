"""Request validation and conversion, with a hypothesis property test."""

from __future__ import annotations

import dataclasses
import datetime
import math
import signal

import pytest
from google.protobuf.descriptor import FieldDescriptor
from hypothesis import given
from hypothesis import strategies as st

from api import convert
from jobworker.v1 import jobworker_pb2 as pb
from worker.errors import InvalidSpec
from worker.limits import LIMIT_TABLE, Limits
from worker.status import JobState, JobStatus, StopReason, Usage

LIMIT_FIELDS = ("cpu", "memory_bytes", "io_read_bps", "io_write_bps", "pids")
INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)


@st.composite
def start_requests(draw: st.DrawFn) -> pb.StartJobRequest:
    text = st.text(max_size=20)
    request = pb.StartJobRequest(
        argv=draw(st.lists(text, max_size=5)),
        env=draw(st.dictionaries(text, text, max_size=3)),
        cwd=draw(st.one_of(st.just(""), st.just("/tmp"), text)),
    )
    if draw(st.booleans()):
        limits = pb.Limits()
        if draw(st.booleans()):
            limits.cpu = draw(st.floats(allow_nan=True, allow_infinity=True))
        for name in LIMIT_FIELDS[1:]:
            if draw(st.booleans()):
                setattr(limits, name, draw(INT64))
        request.limits.CopyFrom(limits)
    return request


def _valid_text(value: str) -> bool:
    return "\x00" not in value


def _expected_valid(request: pb.StartJobRequest) -> bool:
    argv, env, limits = list(request.argv), dict(request.env), request.limits
    if not argv or not argv[0] or not all(map(_valid_text, argv)):
        return False
    if any(not k or "=" in k or not _valid_text(k) or not _valid_text(v) for k, v in env.items()):
        return False
    cwd = request.cwd or "/"
    if not cwd.startswith("/") or not _valid_text(cwd):
        return False
    if limits.HasField("cpu") and not (math.isfinite(limits.cpu) and 0.01 <= limits.cpu <= 1024):
        return False
    low = {"memory_bytes": 1 << 20, "io_read_bps": 1, "io_write_bps": 1, "pids": 1}
    return all(
        low[name] <= getattr(limits, name) <= 1 << 62
        for name in LIMIT_FIELDS[1:]
        if limits.HasField(name)
    )


@given(start_requests())
def test_start_request_is_accepted_exactly_when_valid(request: pb.StartJobRequest) -> None:
    try:
        spec = convert.spec_from_request(request, owner="alice")
    except InvalidSpec as error:
        assert not _expected_valid(request), error
        # The message names a field of the request.
        assert error.field.split("[")[0].split(".")[0] in {
            "argv",
            "env key",
            "env",
            "cwd",
            "limits",
        }
        assert str(error).startswith(error.field)
    else:
        assert _expected_valid(request)
        assert spec.argv == tuple(request.argv) and spec.owner == "alice"
        for name in LIMIT_FIELDS:
            expected = getattr(request.limits, name) if request.limits.HasField(name) else None
            assert getattr(spec.limits, name) == expected


def test_the_limit_table_and_the_proto_have_the_same_fields() -> None:
    # A limit added to worker/limits.py and not to jobworker.proto, or the reverse, fails here.
    fields = pb.Limits.DESCRIPTOR.fields_by_name
    assert set(fields) == set(LIMIT_TABLE)
    proto_type = {float: FieldDescriptor.TYPE_DOUBLE, int: FieldDescriptor.TYPE_INT64}
    for name, info in LIMIT_TABLE.items():
        assert fields[name].type == proto_type[info.unit.python_type], name
        assert fields[name].has_presence, f"{name} must be optional: unset is the default"


@pytest.mark.parametrize("name", list(LIMIT_TABLE))
def test_each_limit_converts_both_ways(name: str) -> None:
    info = LIMIT_TABLE[name]
    value = info.unit.python_type(info.high)
    message = pb.Limits()
    setattr(message, name, value)
    limits = convert.limits_from_pb(message)
    assert [n for n in LIMIT_TABLE if getattr(limits, n) is not None] == [name]
    assert getattr(limits, name) == value
    assert convert.limits_to_pb(limits) == message


@given(st.one_of(st.text(max_size=80), st.text(alphabet="ab_-Z9", min_size=20, max_size=24)))
def test_job_id_shape(value: str) -> None:
    well_formed = len(value) == 22 and all(
        c.isascii() and (c.isalnum() or c in "-_") for c in value
    )
    if well_formed:
        assert convert.job_id(value) == value
    else:
        with pytest.raises(InvalidSpec, match=r"^job_id: "):
            convert.job_id(value)


@pytest.mark.parametrize("grace", [-1.0, math.nan, math.inf, 301.0])
def test_bad_grace(grace: float) -> None:
    with pytest.raises(InvalidSpec, match=r"^grace_seconds: "):
        convert.grace(pb.StopJobRequest(job_id="x", grace_seconds=grace))


def test_grace() -> None:
    assert convert.grace(pb.StopJobRequest(job_id="x")) is None
    assert convert.grace(pb.StopJobRequest(job_id="x", grace_seconds=0)) == 0
    assert convert.grace(pb.StopJobRequest(job_id="x", grace_seconds=2.5)) == 2.5


@pytest.mark.parametrize("offset", [0, 7, convert.MAX_OUTPUT_OFFSET])
def test_offset(offset: int) -> None:
    assert convert.offset(pb.StreamOutputRequest(offset=offset)) == offset


# Near 2**63 an offset plus one 64 KiB read overflowed off_t: pread failed EINVAL (INTERNAL).
@pytest.mark.parametrize(
    "offset", [-1, -(2**63), convert.MAX_OUTPUT_OFFSET + 1, 2**63 - 65536, 2**63 - 1]
)
def test_bad_offset(offset: int) -> None:
    with pytest.raises(InvalidSpec, match=r"^offset: must be between 0 and 2\*\*62, got -?\d+$"):
        convert.offset(pb.StreamOutputRequest(offset=offset))


def test_status_round_trip_of_every_field() -> None:
    started = datetime.datetime(2026, 11, 29, 5, 0, tzinfo=datetime.UTC)
    status = JobStatus(
        job_id="abc",
        owner="alice",
        argv=("/bin/sh", "-c", "exit 3"),
        state=JobState.STOPPED,
        exit_code=None,
        signal=6,
        core_dumped=True,
        oom_killed=True,
        stop_reason=StopReason.DEADLINE,
        started_at=started,
        ended_at=started + datetime.timedelta(seconds=2),
        limits=Limits(cpu=0.5, pids=10),
        usage=Usage(**{f.name: i for i, f in enumerate(dataclasses.fields(Usage), 1)}),
        error=None,
    )
    message = convert.status_to_pb(status)
    assert message.state == pb.JOB_STATE_STOPPED
    assert not message.HasField("exit_code") and (message.signal, message.core_dumped) == (6, True)
    assert message.oom_killed and message.stop_reason == pb.STOP_REASON_DEADLINE
    # Every counter arrives under its own name: each was given a different value.
    assert {f.name: getattr(message.usage, f.name) for f in dataclasses.fields(Usage)} == (
        dataclasses.asdict(status.usage)
    )
    assert [f.name for f in pb.Usage.DESCRIPTOR.fields] == [
        f.name for f in dataclasses.fields(Usage)
    ]
    assert message.started_at.ToDatetime(datetime.UTC) == started
    assert message.ended_at.seconds - message.started_at.seconds == 2
    assert message.limits.cpu == 0.5 and not message.limits.HasField("memory_bytes")
    assert list(message.argv) == ["/bin/sh", "-c", "exit 3"] and message.error == ""


@pytest.mark.parametrize("name", convert.SIGNALS)
def test_every_listed_signal_converts_to_its_number(name: str) -> None:
    number = convert.signal_number(pb.SignalJobRequest(signal=name))
    assert signal.Signals(number).name == f"SIG{name}"


@pytest.mark.parametrize("name", ["", "SEGV", "SIGTERM", "term", "9", "RTMAX", "TERM "])
def test_a_signal_outside_the_list_is_invalid(name: str) -> None:
    with pytest.raises(InvalidSpec, match=r"^signal: must be one of HUP, INT"):
        convert.signal_number(pb.SignalJobRequest(signal=name))
