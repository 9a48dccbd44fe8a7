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
