"""Freezing a job's cgroup while its processes are signalled: v1 freezer, v2 cgroup.freeze.

Signalling means reading cgroup.procs and then signalling each pid, and a process that forks
in between would escape. A frozen cgroup's tasks cannot fork, so while frozen the pid list
cannot be outrun; the signals stay pending and take effect when the cgroup thaws.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from worker.cgroup import files


@contextlib.contextmanager
def frozen_v1(freezer_dir: Path) -> Iterator[None]:
    """Keeps a v1 freezer cgroup frozen for the body, and thawed after it.

    The v1 freezer stops every task and, while FREEZING, freezes new children at fork
    (Documentation/admin-guide/cgroup-v1/freezer-subsystem.rst).

    Raises:
        CgroupError: freezer.state refused a write.
    """
    with _frozen(freezer_dir / "freezer.state", freeze="FROZEN", thaw="THAWED"):
        yield


@contextlib.contextmanager
def frozen_v2(path: Path) -> Iterator[None]:
    """Keeps a v2 cgroup frozen for the body, and thawed after it (cgroup-v2.rst, "cgroup.freeze").

    Raises:
        CgroupError: cgroup.freeze refused a write.
    """
    with _frozen(path / "cgroup.freeze", freeze="1", thaw="0"):
        yield


@contextlib.contextmanager
def _frozen(control: Path, *, freeze: str, thaw: str) -> Iterator[None]:
    files.write(control, freeze)
    try:
        yield
    finally:
        files.write(control, thaw)
