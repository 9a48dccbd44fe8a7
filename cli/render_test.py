import json

from google.protobuf import timestamp_pb2

from cli import render
from jobworker.v1 import jobworker_pb2 as pb


def stamp(seconds: int) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=seconds, nanos=500_000_000)


T0 = 1_795_900_000  # 2026-11-28 21:06:40 UTC

ENDED = pb.JobStatus(
    job_id="job1",
    owner="alice",
    argv=["/bin/sh", "-c", "echo 'hi there'"],
    state=pb.JOB_STATE_EXITED,
    exit_code=3,
    started_at=stamp(T0),
    ended_at=stamp(T0 + 2),
    limits=pb.Limits(cpu=0.5, memory_bytes=256 * 1024**2, io_write_bps=10_000_000, pids=64),
    usage=pb.Usage(cpu_usec=1_250_000, memory_peak_bytes=3 * 1024**2, io_write_bytes=4096),
)
KILLED = pb.JobStatus(
    job_id="job2",
    owner="bob",
    argv=["/bin/sleep", "600"],
    state=pb.JOB_STATE_STOPPED,
    signal=9,
    stop_reason=pb.STOP_REASON_REQUESTED,
    started_at=stamp(T0 - 60),
    ended_at=stamp(T0),
)
RUNNING = pb.JobStatus(
    job_id="job3",
    owner="alice",
    argv=["x"] * 40,
    state=pb.JOB_STATE_RUNNING,
    started_at=stamp(T0 + 5),
)


def test_status_text() -> None:
    assert render.status_text(ENDED) == (
        "id:         job1\n"
        "owner:      alice\n"
        "command:    /bin/sh -c 'echo '\"'\"'hi there'\"'\"''\n"
        "state:      exited\n"
        "exit:       3\n"
        "oom killed: no\n"
        "started:    2026-11-28 21:06:40Z\n"
        "ended:      2026-11-28 21:06:42Z\n"
        "duration:   2.00s\n"
        "limits:     cpu 0.5, memory 256 MiB, io write 9.5 MiB/s, pids 64\n"
        "cpu time:   1.25s\n"
        "memory:     3 MiB peak\n"
        "io:         0 B read, 4 KiB written\n"
    )


def test_status_text_shows_the_limits_set() -> None:
    read_only = pb.JobStatus(job_id="j", limits=pb.Limits(io_read_bps=1024))
    assert "limits:     io read 1 KiB/s\n" in render.status_text(read_only)
    assert "limits:     none\n" in render.status_text(pb.JobStatus(job_id="j"))


def test_status_text_of_a_stopped_job_names_the_signal() -> None:
    text = render.status_text(KILLED)
    assert "state:      stopped (requested)\n" in text
    assert "exit:       SIGKILL\n" in text


def test_status_text_of_an_aborted_job_at_its_deadline_and_its_limits() -> None:
    aborted = pb.JobStatus(
        job_id="j",
        state=pb.JOB_STATE_STOPPED,
        signal=6,
        core_dumped=True,
        stop_reason=pb.STOP_REASON_DEADLINE,
        usage=pb.Usage(pids_refused=12, cpu_periods=100, cpu_throttled_periods=61),
    )
    text = render.status_text(aborted)
    assert "state:      stopped (deadline)\n" in text
    assert "exit:       SIGABRT (core dumped)\n" in text
    assert "limits hit: hit the pids limit 12 times; CPU throttled in 61% of periods\n" in text
    assert "limits hit" not in render.status_text(KILLED)


def test_status_text_of_a_failed_job_shows_the_error() -> None:
    failed = pb.JobStatus(job_id="j", state=pb.JOB_STATE_FAILED, error="spawner died")
    text = render.status_text(failed)
    assert text.endswith("error:      spawner died\n")
    assert "started:    -\n" in text


def test_table_is_sorted_by_start_and_aligned() -> None:
    lines = render.table_text([RUNNING, ENDED, KILLED]).splitlines()
    assert lines[0].split() == ["ID", "OWNER", "STATE", "EXIT", "STARTED", "COMMAND"]
    assert [line.split()[0] for line in lines[1:]] == ["job2", "job1", "job3"]
    assert lines[1].split()[:4] == ["job2", "bob", "stopped", "SIGKILL"]
    assert lines[3].split()[3] == "-"
    command_column = lines[0].index("COMMAND")
    assert all(line[command_column - 2 : command_column] == "  " for line in lines)
    assert lines[3].endswith("…") and len(lines[3]) - command_column == 60


def test_status_json_schema() -> None:
    assert json.loads(render.status_json(KILLED)) == {
        "id": "job2",
        "owner": "bob",
        "argv": ["/bin/sleep", "600"],
        "state": "stopped",
        "exit_code": None,
        "signal": 9,
        "core_dumped": False,
        "oom_killed": False,
        "stop_reason": "requested",
        "started_at": "2026-11-28T21:05:40.500000Z",
        "ended_at": "2026-11-28T21:06:40.500000Z",
        "limits": {
            "cpu": None,
            "memory_bytes": None,
            "io_read_bps": None,
            "io_write_bps": None,
            "pids": None,
            "timeout_seconds": None,
        },
        "usage": {
            "cpu_usec": 0,
            "memory_bytes": 0,
            "memory_peak_bytes": 0,
            "io_read_bytes": 0,
            "io_write_bytes": 0,
            "oom_kills": 0,
            "pids_refused": 0,
            "memory_high_events": 0,
            "memory_max_events": 0,
            "cpu_periods": 0,
            "cpu_throttled_periods": 0,
            "cpu_throttled_usec": 0,
        },
        "error": None,
    }


def test_list_json_is_an_array_oldest_first() -> None:
    assert [job["id"] for job in json.loads(render.list_json([ENDED, KILLED]))] == ["job2", "job1"]
    assert render.list_json([]) == "[]\n"


def test_running_job_has_no_end_and_an_open_duration() -> None:
    text = render.status_text(RUNNING)
    assert "ended:      -\n" in text
    assert "so far\n" in text
    assert "memory:     0 B now, 0 B peak\n" in text
