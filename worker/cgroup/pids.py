"""The pids controller: a cap on the job's processes and threads, on v1 and v2.

Both versions name the limit pids.max (Documentation/admin-guide/cgroup-v1/pids.rst and
cgroup-v2.rst, "PID Interface Files"); a fork past it fails with EAGAIN.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path

from worker.cgroup import files
from worker.limits import Limits


@dataclasses.dataclass(frozen=True, slots=True)
class PidsUsage:
    """What the pids controller counts for a job.

    Attributes:
        refused: Forks the pids limit refused (pids.events "max").
    """

    refused: int


def write_v1(limits: Limits, dirs: Mapping[str, Path]) -> None:
    """Writes the pids limit, if set, into ``dirs["pids"]``, the job's v1 pids directory.

    Raises:
        CgroupError: The kernel refused the value.
    """
    _write(limits, dirs["pids"])


def write_v2(limits: Limits, path: Path) -> None:
    """Writes the pids limit, if set, into the job's v2 directory.

    Raises:
        CgroupError: The kernel refused the value.
    """
    _write(limits, path)


def _write(limits: Limits, directory: Path) -> None:
    if limits.pids is not None:
        files.write(directory / "pids.max", str(limits.pids))


def read_v1(dirs: Mapping[str, Path]) -> PidsUsage:
    """Reads pids.events in the job's v1 pids directory (cgroup-v1/pids.rst).

    Raises:
        CgroupError: pids.events could not be read.
    """
    return _read(dirs["pids"])


def read_v2(path: Path) -> PidsUsage:
    """Reads pids.events in the job's v2 directory (cgroup-v2.rst, "PID Interface Files").

    Raises:
        CgroupError: pids.events could not be read.
    """
    return _read(path)


def _read(directory: Path) -> PidsUsage:
    return PidsUsage(refused=files.read_keyed(directory / "pids.events").get("max", 0))
