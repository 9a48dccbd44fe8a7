import signal

import pytest

from cli import outcome
from jobworker.v1 import jobworker_pb2 as pb


@pytest.mark.parametrize(
    ("job", "code"),
    [
        (pb.JobStatus(state=pb.JOB_STATE_EXITED, exit_code=0), 0),
        (pb.JobStatus(state=pb.JOB_STATE_EXITED, exit_code=3), 3),
        (pb.JobStatus(state=pb.JOB_STATE_EXITED, signal=signal.SIGKILL), 137),
        (pb.JobStatus(state=pb.JOB_STATE_STOPPED, signal=signal.SIGTERM), 143),
        (pb.JobStatus(state=pb.JOB_STATE_FAILED, error="spawner died"), 1),
        (pb.JobStatus(state=pb.JOB_STATE_RUNNING), 0),
    ],
)
def test_exit_code(job: pb.JobStatus, code: int) -> None:
    assert outcome.exit_code(job) == code


def test_plain_exit_needs_no_words() -> None:
    assert outcome.describe_end(pb.JobStatus(job_id="j", exit_code=3)) is None


def test_signal_oom_and_failure_are_described() -> None:
    killed = pb.JobStatus(job_id="j", signal=9, oom_killed=True)
    assert outcome.describe_end(killed) == (
        "job j was killed by SIGKILL; the kernel's OOM killer killed a process of the job "
        "(memory limit)"
    )
    lost = pb.JobStatus(job_id="j", state=pb.JOB_STATE_FAILED, error="spawner died")
    assert outcome.describe_end(lost) == "the worker lost job j: spawner died"


def test_unknown_signal_number_has_a_name() -> None:
    assert outcome.signal_name(99) == "signal 99"
    assert outcome.signal_name(15) == "SIGTERM"


def test_a_core_dump_a_deadline_and_the_limits_hit_are_described() -> None:
    job = pb.JobStatus(
        job_id="j",
        signal=signal.SIGABRT,
        core_dumped=True,
        stop_reason=pb.STOP_REASON_DEADLINE,
        usage=pb.Usage(pids_refused=1, memory_max_events=3, cpu_periods=8, cpu_throttled_periods=2),
    )
    assert outcome.describe_end(job) == (
        "job j was killed by SIGABRT (core dumped); it was stopped at its deadline (--timeout); "
        "hit the pids limit once; hit the memory limit 3 times; CPU throttled in 25% of periods"
    )
    # A job that exited but was throttled is worth one line too.
    throttled = pb.JobStatus(job_id="j", exit_code=0, usage=pb.Usage(cpu_throttled_periods=1))
    assert outcome.describe_end(throttled) == "CPU throttled in 100% of periods"


@pytest.mark.parametrize(
    ("reason", "name"),
    [
        (pb.STOP_REASON_UNSPECIFIED, None),
        (pb.STOP_REASON_REQUESTED, "requested"),
        (pb.STOP_REASON_DEADLINE, "deadline"),
        (pb.STOP_REASON_SHUTDOWN, "shutdown"),
        (pb.STOP_REASON_WORKER_LOST, "worker_lost"),
    ],
)
def test_stop_reason_names(reason: int, name: str | None) -> None:
    assert outcome.stop_reason_name(reason) == name
