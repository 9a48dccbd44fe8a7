"""The cgroup v1 driver (legacy and hybrid hosts): one directory per job in each hierarchy.

Layout: ``<root>/<controller>/<daemon's own path in that hierarchy>/jobworker/job-<id>`` for
each of the controllers below. Hierarchies mounted together (for example "cpu,cpuacct" with
cpu and cpuacct as symlinks) resolve to one directory, which is made and removed once.
v1 has no no-internal-process rule, so the daemon stays where it is.

This module holds what only v1 has: that layout and the freezer kill. Each controller's files
are written and read by its own module (cpu.py, memory.py, io.py, pids.py), and directories
are made, locked, removed and swept by job_dirs.py.
"""

from __future__ import annotations

import signal
from collections.abc import Mapping
from pathlib import Path

from worker.cgroup import cpu, files, freezer, io, job_dirs, job_usage, memory, pids
from worker.cgroup.base import PARENT_DIR_NAME, CgroupMode, job_dir_name
from worker.cgroup.blockdev import BlockDevice
from worker.cgroup.ownership import JobLock
from worker.errors import CgroupError
from worker.limits import Limits
from worker.status import Usage

REQUIRED_CONTROLLERS = ("cpu", "cpuacct", "memory", "blkio", "pids", "freezer")
# The hierarchy whose job directory carries the job's ownership lock (job_dirs.py).
OWNER = "freezer"


def _distinct(dirs: Mapping[str, Path]) -> tuple[Path, ...]:
    """Returns ``dirs`` without the duplicates of co-mounted hierarchies, the owner's last."""
    seen: dict[Path, Path] = {}
    for controller in sorted(dirs, key=lambda c: c == OWNER):
        path = dirs[controller]
        seen.setdefault(path.parent.resolve() / path.name, path)
    return tuple(seen.values())


class V1JobCgroup:
    """The cgroups of one job, one per v1 hierarchy; implements base.JobCgroup."""

    def __init__(
        self,
        dirs: Mapping[str, Path],
        lock: JobLock | None,
        devices: tuple[BlockDevice, ...] = (),
    ) -> None:
        """Wraps existing job directories.

        Args:
            dirs: The job's directory in each hierarchy, keyed by controller name.
            lock: The ownership lock on the freezer directory, released by remove(); None
                for a leftover that a sweep found without one (job_dirs.sweep()).
            devices: Whole disks that apply() limits IO on.
        """
        self._dirs = dict(dirs)
        self._distinct = _distinct(self._dirs)
        self._lock = lock
        self._devices = devices

    @property
    def procs_files(self) -> tuple[str, ...]:
        """The cgroup.procs file of each distinct hierarchy."""
        return tuple(str(d / "cgroup.procs") for d in self._distinct)

    def apply(self, limits: Limits) -> None:
        """Writes every set limit: CFS quota, memory (and memsw), blkio throttle, pids.max.

        Raises:
            CgroupError: A limit was refused or cannot be enforced on this host.
        """
        cpu.write_v1(limits, self._dirs)
        memory.write_v1(limits, self._dirs)
        io.write_v1(limits, self._dirs, self._devices)
        pids.write_v1(limits, self._dirs)

    def _procs(self) -> list[Path]:
        return [d / "cgroup.procs" for d in self._distinct]

    def _frozen_signal(self, sig: int, exclude: frozenset[int] = frozenset()) -> None:
        # A leftover found by sweep() may have lost its freezer directory; signal anyway.
        if "freezer" not in self._dirs:
            files.signal_procs(self._procs(), sig, exclude)
            return
        with freezer.frozen_v1(self._dirs["freezer"]):
            files.signal_procs(self._procs(), sig, exclude)

    def signal_all(self, sig: int, exclude: frozenset[int] = frozenset()) -> None:
        """Sends ``sig`` to every process of the job but ``exclude``, frozen so none escapes."""
        self._frozen_signal(sig, exclude)

    def kill_all(self) -> None:
        """SIGKILLs every process of the job under the freezer."""
        self._frozen_signal(signal.SIGKILL)

    def is_empty(self) -> bool:
        """Returns True when no hierarchy lists a process of the job."""
        return not any(files.read_pids(p) for p in self._procs())

    def usage(self) -> Usage:
        """Reads the cpu, cpuacct, memory, blkio and pids counters."""
        dirs = self._dirs
        return job_usage.combine(
            cpu.read_v1(dirs), memory.read_v1(dirs), io.read_v1(dirs), pids.read_v1(dirs)
        )

    async def remove(self) -> None:
        """Removes the job's directory in every hierarchy, retrying EBUSY.

        The locked freezer directory goes last, so a concurrent sweep never mistakes a
        half-removed job for a leftover.
        """
        await job_dirs.remove(self._distinct, self._lock)


class V1Driver:
    """Creates job cgroups on a cgroup v1 host; implements base.CgroupDriver."""

    def __init__(
        self, mode: CgroupMode, parents: Mapping[str, Path], devices: tuple[BlockDevice, ...]
    ) -> None:
        """Uses existing parent directories; see open_v1_driver().

        Args:
            mode: LEGACY or HYBRID.
            parents: The jobworker parent directory in each hierarchy, keyed by controller.
            devices: Whole disks to apply IO limits to.
        """
        self._mode = mode
        self._parents = dict(parents)
        self._devices = devices

    @property
    def mode(self) -> CgroupMode:
        """The detected mount mode."""
        return self._mode

    @property
    def parents(self) -> Mapping[str, Path]:
        """The jobworker parent directory in each hierarchy."""
        return dict(self._parents)

    def create(self, job_id: str, limits: Limits) -> V1JobCgroup:
        """Makes the job's directory in every hierarchy and applies ``limits``.

        Raises:
            CgroupError: A directory could not be made or a limit was refused; what was made
                is removed again.
        """
        name = job_dir_name(job_id)
        dirs = {c: p / name for c, p in self._parents.items()}
        with job_dirs.created(self._parents[OWNER], _distinct(dirs)) as lock:
            cgroup = V1JobCgroup(dirs, lock, self._devices)
            cgroup.apply(limits)
        return cgroup

    async def sweep(self) -> int:
        """Kills and removes the job cgroups that no live driver owns; returns how many.

        A job whose freezer directory another process holds locked belongs to a live
        driver and is left alone (see ownership.py).
        """
        return await job_dirs.sweep(self._parents[OWNER], _distinct(self._parents), self._leftover)

    def _leftover(self, name: str, lock: JobLock | None) -> V1JobCgroup:
        present = {c: p / name for c, p in self._parents.items() if (p / name).is_dir()}
        return V1JobCgroup(present, lock)


def open_v1_driver(
    mode: CgroupMode, root: Path, own: Mapping[str, str], devices: tuple[BlockDevice, ...]
) -> V1Driver:
    """Checks the v1 controllers and makes the jobworker parent in each hierarchy.

    Args:
        mode: LEGACY or HYBRID.
        root: Where the hierarchies are mounted, one directory per controller.
        own: The daemon's path in each hierarchy, by controller, from /proc/self/cgroup.
        devices: Whole disks to apply IO limits to.

    Raises:
        CgroupError: A required controller is missing (all missing ones are named), or a
            parent directory could not be made.
    """
    missing = [
        c
        for c in REQUIRED_CONTROLLERS
        if c not in own or not (root / c / own[c].lstrip("/") / "cgroup.procs").exists()
    ]
    if missing:
        raise CgroupError(
            f"cgroup v1 controllers missing at {root}: {', '.join(missing)} "
            f"(jobworker needs {', '.join(REQUIRED_CONTROLLERS)})"
        )
    parents = {c: root / c / own[c].lstrip("/") / PARENT_DIR_NAME for c in REQUIRED_CONTROLLERS}
    for parent in parents.values():
        files.ensure_dir(parent)
    return V1Driver(mode, parents, devices)
