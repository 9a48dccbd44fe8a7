"""A daemon started in its own, non-root cgroup (a systemd unit with Delegate=yes) keeps its
jobs inside that cgroup, and on v2 moves itself into a leaf of it first.

The VM runs everything in the root cgroup and the host's daemon cgroups are mostly "/", so
this test makes the unit cgroup itself and starts a child "daemon" in it.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from worker.cgroup import detect, v1, v2
from worker.cgroup.base import PARENT_DIR_NAME, CgroupMode

pytestmark = pytest.mark.kernel

ROOT = Path("/sys/fs/cgroup")
# The child joins the unit cgroup(s) named in argv, opens a driver, makes one limited job and
# reports where everything went.
DAEMON = """
import asyncio, json, sys
from pathlib import Path
from worker.cgroup import detect
from worker.limits import Limits
for procs in sys.argv[2:]:
    Path(procs).write_text("0")
driver = detect.open_driver(io_paths=())
cg = driver.create(sys.argv[1], Limits(cpu=0.5, memory_bytes=64 << 20, pids=16))
print(json.dumps({"own": Path("/proc/self/cgroup").read_text(), "procs": cg.procs_files}))
asyncio.run(cg.remove())
"""


@pytest.fixture
def unit_dirs() -> Iterator[list[Path]]:
    """Makes a fresh cgroup beside this process's own, in every hierarchy the driver uses."""
    name = f"unit-{secrets.token_hex(4)}"
    # Like systemd for a Delegate=yes unit, the parent must hand the controllers down; this
    # process's own driver does that on v2 (and moves this process out of the way).
    detect.open_driver(io_paths=())
    own = detect.parse_proc_cgroup(Path("/proc/self/cgroup").read_text())
    if detect.detect_mode() is CgroupMode.UNIFIED:
        # Beside the cgroup the test process started in, not inside its supervisor leaf.
        candidates = [ROOT / v2.own_base(own[""]).lstrip("/") / name]
    else:
        candidates = [ROOT / c / own[c].lstrip("/") / name for c in v1.REQUIRED_CONTROLLERS]
    dirs = list({d.parent.resolve() / d.name: d for d in candidates}.values())
    made = []
    try:
        for path in dirs:
            path.mkdir()
            made.append(path)
        yield dirs
    finally:
        for path in made:
            for leftover in (
                path / PARENT_DIR_NAME / v2.SUPERVISOR_DIR_NAME,
                path / PARENT_DIR_NAME,
            ):
                if leftover.exists():
                    leftover.rmdir()
            path.rmdir()


async def test_jobs_stay_inside_the_daemons_cgroup(unit_dirs: list[Path]) -> None:
    job_id = secrets.token_urlsafe(6)
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        DAEMON,
        job_id,
        *(str(d / "cgroup.procs") for d in unit_dirs),
        stdout=asyncio.subprocess.PIPE,
        env={"PYTHONPATH": os.pathsep.join(sys.path)},
    )
    out, _ = await child.communicate()
    assert child.returncode == 0
    report = json.loads(out)
    job_dirs = {Path(p).parent for p in report["procs"]}
    assert job_dirs == {d / PARENT_DIR_NAME / f"job-{job_id}" for d in unit_dirs}
    assert not any(d.exists() for d in job_dirs)
    own = detect.parse_proc_cgroup(report["own"])
    unit = unit_dirs[0]
    if detect.detect_mode() is CgroupMode.UNIFIED:
        # No internal processes: the daemon left the unit cgroup for its supervisor leaf,
        # and the unit cgroup hands the controllers down to jobworker/.
        leaf = unit / PARENT_DIR_NAME / v2.SUPERVISOR_DIR_NAME
        assert ROOT / own[""].lstrip("/") == leaf
        enabled = set((unit / "cgroup.subtree_control").read_text().split())
        assert set(v2.REQUIRED_CONTROLLERS) <= enabled
    else:
        # v1 has no such rule: the daemon stays in the unit cgroup of every hierarchy.
        for controller in v1.REQUIRED_CONTROLLERS:
            assert own[controller].endswith("/" + unit.name)
