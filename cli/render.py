"""Job statuses as text for people (status block, list table) and as JSON for scripts.

The JSON is jobctl's own stable schema, not protobuf's JSON mapping: numbers stay numbers
(protobuf's mapping quotes int64), states are lowercase words, absent values are null, and
times are RFC 3339 in UTC.
"""

from __future__ import annotations

import datetime
import json
import shlex
from collections.abc import Sequence
from typing import Any

from google.protobuf import timestamp_pb2

from cli import outcome, units
from jobworker.v1 import jobworker_pb2
from worker.limits import LIMIT_TABLE

_COMMAND_WIDTH = 60
_STATE_PREFIX = "JOB_STATE_"


def state_name(state: int) -> str:
    """Returns ``running``, ``exited``, ``stopped``, ``failed`` or ``unspecified``."""
    return jobworker_pb2.JobState.Name(state).removeprefix(_STATE_PREFIX).lower()


def _time(stamp: timestamp_pb2.Timestamp) -> datetime.datetime | None:
    if stamp.seconds == 0 and stamp.nanos == 0:
        return None
    return stamp.ToDatetime(tzinfo=datetime.UTC)


def _human_time(stamp: timestamp_pb2.Timestamp) -> str:
    when = _time(stamp)
    return when.strftime("%Y-%m-%d %H:%M:%SZ") if when else "-"


def exit_text(job: jobworker_pb2.JobStatus) -> str:
    """Returns ``0``, ``3``, ``SIGKILL``, ``SIGABRT (core dumped)``, or ``-`` while it runs."""
    if job.HasField("exit_code"):
        return str(job.exit_code)
    if job.HasField("signal"):
        return outcome.signal_text(job)
    return "-"


def command_text(argv: Sequence[str], width: int | None = None) -> str:
    """Returns the command line as a shell would need it quoted, cut to ``width``."""
    text = shlex.join(argv)
    if width is not None and len(text) > width:
        return text[: width - 1] + "…"
    return text


def _limits_text(limits: jobworker_pb2.Limits) -> str:
    parts = [
        f"{info.label} {units.SYNTAX[info.unit].format(getattr(limits, name))}"
        for name, info in LIMIT_TABLE.items()
        if limits.HasField(name)
    ]
    return ", ".join(parts) or "none"


def _duration(job: jobworker_pb2.JobStatus) -> str:
    started, ended = _time(job.started_at), _time(job.ended_at)
    if started is None:
        return "-"
    end = ended or datetime.datetime.now(datetime.UTC)
    suffix = "" if ended else " so far"
    return units.format_seconds(max(0.0, (end - started).total_seconds())) + suffix


def _memory_text(job: jobworker_pb2.JobStatus) -> str:
    peak = f"{units.format_bytes(job.usage.memory_peak_bytes)} peak"
    if job.state != jobworker_pb2.JOB_STATE_RUNNING:
        # What an ended job's cgroup still charges (page cache) is not the job's use.
        return peak
    return f"{units.format_bytes(job.usage.memory_bytes)} now, {peak}"


def _reason_text(reason: int) -> str:
    name = outcome.stop_reason_name(reason)
    return f" ({name.replace('_', ' ')})" if name else ""


def status_text(job: jobworker_pb2.JobStatus) -> str:
    """Returns the multi-line status block of ``jobctl status`` and ``jobctl stop``."""
    usage = job.usage
    rows = [
        ("id", job.job_id),
        ("owner", job.owner),
        ("command", command_text(job.argv)),
        ("state", state_name(job.state) + _reason_text(job.stop_reason)),
        ("exit", exit_text(job)),
        ("oom killed", "yes" if job.oom_killed else "no"),
        ("started", _human_time(job.started_at)),
        ("ended", _human_time(job.ended_at)),
        ("duration", _duration(job)),
        ("limits", _limits_text(job.limits)),
        ("cpu time", units.format_seconds(usage.cpu_usec / 1e6)),
        ("memory", _memory_text(job)),
        (
            "io",
            f"{units.format_bytes(usage.io_read_bytes)} read, "
            f"{units.format_bytes(usage.io_write_bytes)} written",
        ),
    ]
    if (events := outcome.limit_events(usage)) is not None:
        rows.append(("limits hit", events))
    if job.error:
        rows.append(("error", job.error))
    width = max(len(name) for name, _ in rows) + 1
    return "\n".join(f"{name + ':':<{width}} {value}" for name, value in rows) + "\n"


def table_text(jobs: Sequence[jobworker_pb2.JobStatus]) -> str:
    """Returns the ``jobctl list`` table, oldest job first, with a header row."""
    ordered = sorted(jobs, key=lambda j: (j.started_at.seconds, j.started_at.nanos, j.job_id))
    rows = [("ID", "OWNER", "STATE", "EXIT", "STARTED", "COMMAND")]
    rows += [
        (
            job.job_id,
            job.owner,
            state_name(job.state),
            exit_text(job),
            _human_time(job.started_at),
            command_text(job.argv, _COMMAND_WIDTH),
        )
        for job in ordered
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row[:-1], widths, strict=True)) + "  " + row[-1]
        for row in rows
    ]
    return "\n".join(lines) + "\n"


def _rfc3339(stamp: timestamp_pb2.Timestamp) -> str | None:
    when = _time(stamp)
    return when.isoformat().replace("+00:00", "Z") if when else None


def _optional(message: Any, field: str) -> Any:
    return getattr(message, field) if message.HasField(field) else None


def status_dict(job: jobworker_pb2.JobStatus) -> dict[str, Any]:
    """Returns the JSON-ready form of one job (the schema of ``-o json``)."""
    limits = job.limits
    usage = job.usage
    return {
        "id": job.job_id,
        "owner": job.owner,
        "argv": list(job.argv),
        "state": state_name(job.state),
        "exit_code": _optional(job, "exit_code"),
        "signal": _optional(job, "signal"),
        "core_dumped": job.core_dumped,
        "oom_killed": job.oom_killed,
        "stop_reason": outcome.stop_reason_name(job.stop_reason),
        "started_at": _rfc3339(job.started_at),
        "ended_at": _rfc3339(job.ended_at),
        "limits": {name: _optional(limits, name) for name in LIMIT_TABLE},
        "usage": {field.name: getattr(usage, field.name) for field in usage.DESCRIPTOR.fields},
        "error": job.error or None,
    }


def status_json(job: jobworker_pb2.JobStatus) -> str:
    """Returns one job as an indented JSON object and a newline."""
    return json.dumps(status_dict(job), indent=2) + "\n"


def list_json(jobs: Sequence[jobworker_pb2.JobStatus]) -> str:
    """Returns the jobs as an indented JSON array (oldest first) and a newline."""
    ordered = sorted(jobs, key=lambda j: (j.started_at.seconds, j.started_at.nanos, j.job_id))
    return json.dumps([status_dict(job) for job in ordered], indent=2) + "\n"
