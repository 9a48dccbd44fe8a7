from __future__ import annotations

import pytest

from tools.vm import result
from tools.vm.vm_test_main import per_file_summary

_INFO = "JOBWORKER-VM-INFO kernel=6.1.0-56-amd64 cgroup=cgroup2fs controllers=cpu,io uptime=2.5\r\n"


def test_parses_a_passing_run_with_serial_line_endings() -> None:
    console = _INFO + "4 passed\r\nJOBWORKER-VM-RESULT rc=0 cgroup=cgroup2fs uptime=20.7\r\n"
    assert result.parse(console) == result.GuestResult(
        rc=0,
        cgroup_fs="cgroup2fs",
        reason="",
        kernel="6.1.0-56-amd64",
        controllers=("cpu", "io"),
    )


def test_parses_a_setup_failure_and_its_reason() -> None:
    console = "JOBWORKER-VM-RESULT rc=125 cgroup=unknown reason=mount 9p host root\n"
    parsed = result.parse(console)
    assert parsed is not None
    assert (parsed.rc, parsed.cgroup_fs, parsed.reason) == (125, "unknown", "mount 9p host root")
    assert (parsed.kernel, parsed.controllers) == ("", ())


def test_the_last_result_line_wins() -> None:
    console = "JOBWORKER-VM-RESULT rc=0 cgroup=x\nJOBWORKER-VM-RESULT rc=1 cgroup=cgroup2fs\n"
    parsed = result.parse(console)
    assert parsed is not None
    assert parsed.rc == 1


@pytest.mark.parametrize(
    "console",
    ["", "Kernel panic - not syncing\n", "JOBWORKER-VM-RESULT rc= cgroup=cgroup2fs\n"],
)
def test_no_result_line_is_none(console: str) -> None:
    assert result.parse(console) is None


def test_per_file_summary_counts_pytest_verbose_outcomes() -> None:
    console = (
        "worker/a_test.py::test_one PASSED  [ 33%]\r\n"
        "worker/a_test.py::test_two[x-1] FAILED  [ 66%]\n"
        "worker/cgroup/b_test.py::TestC::test_three SKIPPED (not root)  [100%]\n"
        "FAILED worker/a_test.py::test_two[x-1] - assert 1 == 2\n"
    )
    assert per_file_summary(console) == {
        "worker/a_test.py": {"PASSED": 1, "FAILED": 1},
        "worker/cgroup/b_test.py": {"SKIPPED": 1},
    }
