"""Proves that the VM harness really runs tests on cgroup v2 with enforcing controllers.

Runs only inside the VM (//tools/vm:smoke_vm_test); on a v1/hybrid host it fails, as it should.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

_ROOT = Path("/sys/fs/cgroup")
_HOG = "b = b'x' * (256 << 20)"  # Touches 256 MiB, far past the 16 MiB limit.


def _fs_type(mount_point: str) -> str:
    # The last mount on a path is the one that is visible there.
    fs_type = ""
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        if left.split()[4] == mount_point:
            fs_type = right.split()[0]
    return fs_type


def _run_in(cgroup: Path, *argv: str) -> int:
    # The shell joins the cgroup ("0" means the writer, cgroup-v2.rst) before it execs argv,
    # so every page the program touches is charged to the cgroup.
    script = f'echo 0 > {cgroup}/cgroup.procs && exec "$@"'
    return subprocess.run(["/bin/sh", "-c", script, "sh", *argv], check=False).returncode


def _events(path: Path) -> dict[str, int]:
    return {k: int(v) for k, v in (line.split() for line in path.read_text().splitlines())}


@pytest.fixture
def child_cgroup() -> Iterator[Path]:
    # The root cgroup is exempt from the no-internal-process rule (cgroup-v2.rst), so enabling
    # memory for its children is allowed while this process still lives in it.
    (_ROOT / "cgroup.subtree_control").write_text("+memory")
    path = _ROOT / f"vm-smoke-{os.getpid()}"
    path.mkdir()
    try:
        yield path
    finally:
        # A killed task leaves the cgroup asynchronously; rmdir is EBUSY until it has.
        for _ in range(100):
            try:
                path.rmdir()
                break
            except OSError:
                time.sleep(0.05)
        assert not path.exists()


def test_sys_fs_cgroup_is_cgroup2() -> None:
    assert _fs_type("/sys/fs/cgroup") == "cgroup2"


def test_root_has_the_controllers_jobworker_needs() -> None:
    controllers = set((_ROOT / "cgroup.controllers").read_text().split())
    assert {"cpu", "io", "memory", "pids"} <= controllers


def test_memory_max_oom_kills_a_hog(child_cgroup: Path) -> None:
    (child_cgroup / "memory.max").write_text("16M")
    assert _run_in(child_cgroup, sys.executable, "-c", _HOG) == -9
    assert _events(child_cgroup / "memory.events")["oom_kill"] == 1


def test_memory_max_lets_a_small_process_finish(child_cgroup: Path) -> None:
    (child_cgroup / "memory.max").write_text("64M")
    assert _run_in(child_cgroup, sys.executable, "-c", "b = b'x' * (1 << 20)") == 0
    assert _events(child_cgroup / "memory.events")["oom_kill"] == 0
