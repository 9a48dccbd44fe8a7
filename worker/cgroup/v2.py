"""The cgroup v2 driver (unified hosts): one directory per job in the single hierarchy.

Layout under the daemon's own cgroup ``<own>`` (from /proc/self/cgroup)::

    <own>/                  subtree_control: +cpu +io +memory +pids
      jobworker/            subtree_control: +cpu +io +memory +pids; no processes
        supervisor/         the daemon and its spawner (a leaf)
        job-<id>/           one job (a leaf)

v2 forbids processes in a cgroup that delegates controllers to children, except at the root
(Documentation/admin-guide/cgroup-v2.rst, "No Internal Process Constraint"), so the daemon
moves itself into the supervisor leaf before enabling controllers. This works in the root
cgroup and in a systemd unit with Delegate=yes, where the unit's cgroup is ours to divide.

This module holds what only v2 has: that layout, the supervisor leaf and the kill through
cgroup.kill. Each controller's files are written and read by its own module (cpu.py,
memory.py, io.py, pids.py), and directories are made, locked, removed and swept by
job_dirs.py.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

from worker.cgroup import cpu, files, freezer, io, job_dirs, job_usage, memory, pids
from worker.cgroup.base import PARENT_DIR_NAME, CgroupMode, job_dir_name
from worker.cgroup.blockdev import BlockDevice
from worker.cgroup.ownership import JobLock
from worker.errors import CgroupError
from worker.limits import Limits
from worker.status import Usage

REQUIRED_CONTROLLERS = ("cpu", "io", "memory", "pids")
SUPERVISOR_DIR_NAME = "supervisor"


class V2JobCgroup:
    """The cgroup of one job; implements base.JobCgroup."""

    def __init__(
        self, path: Path, lock: JobLock | None, devices: tuple[BlockDevice, ...] = ()
    ) -> None:
        """Wraps an existing job directory.

        Args:
            path: The job's cgroup directory.
            lock: The ownership lock on it, released by remove(); None for a leftover that
                a sweep found without one (job_dirs.sweep()).
            devices: Whole disks that apply() limits IO on.
        """
        self._path = path
        self._lock = lock
        self._devices = devices

    @property
    def path(self) -> Path:
        """The job's cgroup directory."""
        return self._path

    @property
    def procs_files(self) -> tuple[str, ...]:
        """The job's single cgroup.procs file."""
        return (str(self._path / "cgroup.procs"),)

    def apply(self, limits: Limits) -> None:
        """Writes every set limit: cpu.max, memory.max (and no swap), io.max, pids.max.

        Raises:
            CgroupError: A limit was refused or cannot be enforced on this host.
        """
        cpu.write_v2(limits, self._path)
        memory.write_v2(limits, self._path)
        io.write_v2(limits, self._path, self._devices)
        pids.write_v2(limits, self._path)

    def signal_all(self, sig: int, exclude: frozenset[int] = frozenset()) -> None:
        """Sends ``sig`` to every process listed in cgroup.procs but ``exclude``."""
        files.signal_procs([self._path / "cgroup.procs"], sig, exclude)

    def kill_all(self) -> None:
        """SIGKILLs every process: cgroup.kill (Linux 5.14+), else freeze, kill, thaw."""
        kill_file = self._path / "cgroup.kill"
        if kill_file.exists():
            # The kernel kills the whole subtree atomically, including tasks forking now.
            files.write(kill_file, "1")
            return
        freeze_and_kill(self._path)

    def is_empty(self) -> bool:
        """Returns True when cgroup.events says the cgroup is not populated."""
        return files.read_keyed(self._path / "cgroup.events").get("populated", 0) == 0

    def usage(self) -> Usage:
        """Reads cpu.stat, memory.current/peak, memory.events, io.stat and pids.events."""
        path = self._path
        return job_usage.combine(
            cpu.read_v2(path), memory.read_v2(path), io.read_v2(path), pids.read_v2(path)
        )

    async def remove(self) -> None:
        """Removes the job's directory, retrying EBUSY."""
        await job_dirs.remove([self._path], self._lock)


class V2Driver:
    """Creates job cgroups on a unified host; implements base.CgroupDriver."""

    def __init__(self, parent: Path, devices: tuple[BlockDevice, ...]) -> None:
        """Uses a prepared jobworker parent; see open_v2_driver().

        Args:
            parent: The jobworker directory, with controllers enabled for its children.
            devices: Whole disks to apply IO limits to.
        """
        self._parent = parent
        self._devices = devices

    @property
    def mode(self) -> CgroupMode:
        """Always UNIFIED."""
        return CgroupMode.UNIFIED

    @property
    def parent(self) -> Path:
        """The jobworker directory that holds the job cgroups."""
        return self._parent

    def create(self, job_id: str, limits: Limits) -> V2JobCgroup:
        """Makes the job's cgroup and applies ``limits``.

        Raises:
            CgroupError: The directory could not be made or a limit was refused; the
                directory is removed again.
        """
        path = self._parent / job_dir_name(job_id)
        with job_dirs.created(self._parent, [path]) as lock:
            cgroup = V2JobCgroup(path, lock, self._devices)
            cgroup.apply(limits)
        return cgroup

    async def sweep(self) -> int:
        """Kills and removes the job cgroups that no live driver owns; returns how many.

        A job directory another process holds locked belongs to a live driver and is left
        alone (see ownership.py).
        """
        return await job_dirs.sweep(
            self._parent, [self._parent], lambda name, lock: V2JobCgroup(self._parent / name, lock)
        )


def freeze_and_kill(path: Path) -> None:
    """SIGKILLs every process of a cgroup without cgroup.kill (before Linux 5.14).

    The cgroup is frozen meanwhile, so no process escapes by forking (freezer.py).
    """
    with freezer.frozen_v2(path):
        files.signal_procs([path / "cgroup.procs"], signal.SIGKILL)


def own_base(own_path: str) -> str:
    """Returns the cgroup the daemon was started in, even if it already moved into its leaf.

    A second driver in the same process (tests make many) must not nest another jobworker
    directory inside the supervisor leaf.
    """
    leaf = f"/{PARENT_DIR_NAME}/{SUPERVISOR_DIR_NAME}"
    if own_path == leaf:
        return "/"
    if own_path.endswith(leaf):
        return own_path[: -len(leaf)]
    return own_path


def open_v2_driver(root: Path, own_path: str, devices: tuple[BlockDevice, ...]) -> V2Driver:
    """Moves this process into its supervisor leaf and enables the controllers.

    Args:
        root: The cgroup2 mount point.
        own_path: This process's cgroup path, from the "0::" line of /proc/self/cgroup.
        devices: Whole disks to apply IO limits to.

    Raises:
        CgroupError: A required controller is not available to the daemon's cgroup (all
            missing ones are named), or a directory, the move or a controller was refused.
    """
    base = root / own_base(own_path).lstrip("/")
    available = set(files.read(base / "cgroup.controllers").split())
    missing = [c for c in REQUIRED_CONTROLLERS if c not in available]
    if missing:
        raise CgroupError(
            f"cgroup v2 controllers not available in {base}: {', '.join(missing)} "
            f"(jobworker needs {', '.join(REQUIRED_CONTROLLERS)}; under systemd use Delegate=yes)"
        )
    parent = base / PARENT_DIR_NAME
    supervisor = parent / SUPERVISOR_DIR_NAME
    files.ensure_dir(parent)
    files.ensure_dir(supervisor)
    # Moving a pid moves all its threads; the spawner started later inherits the leaf.
    files.write(supervisor / "cgroup.procs", str(os.getpid()))
    for cgroup in (base, parent):
        for controller in REQUIRED_CONTROLLERS:
            try:
                files.write(cgroup / "cgroup.subtree_control", f"+{controller}")
            except CgroupError as err:
                raise CgroupError(
                    f"{err} (is another process left in {cgroup}? jobworkerd must own its "
                    "cgroup, as under a systemd unit with Delegate=yes)"
                ) from err
    return V2Driver(parent, devices)
