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
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

from worker.cgroup import files, teardown
from worker.cgroup.base import JOB_DIR_PREFIX, PARENT_DIR_NAME, CgroupMode, job_dir_name
from worker.cgroup.blockdev import BlockDevice
from worker.cgroup.ownership import JobLock, parent_locked
from worker.cgroup.swap import host_has_swap
from worker.errors import CgroupError
from worker.limits import Limits
from worker.status import Usage

REQUIRED_CONTROLLERS = ("cpu", "io", "memory", "pids")
SUPERVISOR_DIR_NAME = "supervisor"
# cpu.max is "$MAX $PERIOD" in microseconds; 100 ms is the kernel default period.
CPU_PERIOD_US = 100_000


class V2JobCgroup:
    """The cgroup of one job; implements base.JobCgroup."""

    def __init__(self, path: Path, lock: JobLock, devices: tuple[BlockDevice, ...] = ()) -> None:
        """Wraps an existing job directory.

        Args:
            path: The job's cgroup directory.
            lock: The ownership lock on it, released by remove().
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
        path = self._path
        if limits.cpu is not None:
            quota = max(1000, round(limits.cpu * CPU_PERIOD_US))  # The kernel minimum is 1 ms.
            files.write(path / "cpu.max", f"{quota} {CPU_PERIOD_US}")
        if limits.memory_bytes is not None:
            files.write(path / "memory.max", str(limits.memory_bytes))
            swap = path / "memory.swap.max"
            # Without CONFIG_MEMCG_SWAP the file is missing and swap cannot be limited; that
            # is only acceptable when the host has no swap to escape to.
            if swap.exists():
                files.write(swap, "0")
            elif host_has_swap():
                raise CgroupError("memory.swap.max is missing, so swap cannot be turned off")
        io = [
            f"{key}={bps}"
            for key, bps in (("rbps", limits.io_read_bps), ("wbps", limits.io_write_bps))
            if bps is not None
        ]
        if io:
            if not self._devices:
                raise CgroupError("io limit set, but no block device to throttle")
            for dev in self._devices:
                files.write(path / "io.max", f"{dev} {' '.join(io)}")
        if limits.pids is not None:
            files.write(path / "pids.max", str(limits.pids))

    def signal_all(self, sig: int) -> None:
        """Sends ``sig`` to every process listed in cgroup.procs."""
        files.signal_procs([self._path / "cgroup.procs"], sig)

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
        """Reads cpu.stat, memory.current/peak, io.stat and memory.events."""
        read_bytes = write_bytes = 0
        # io.stat lines are "MAJ:MIN rbytes=N wbytes=N rios=N ...", one per device.
        for line in files.read(self._path / "io.stat").splitlines():
            for field in line.split()[1:]:
                key, _, value = field.partition("=")
                if key == "rbytes":
                    read_bytes += int(value)
                elif key == "wbytes":
                    write_bytes += int(value)
        peak = self._path / "memory.peak"  # Linux 5.19+.
        return Usage(
            cpu_usec=files.read_keyed(self._path / "cpu.stat").get("usage_usec", 0),
            memory_bytes=files.read_int(self._path / "memory.current"),
            memory_peak_bytes=files.read_int(peak) if peak.exists() else 0,
            io_read_bytes=read_bytes,
            io_write_bytes=write_bytes,
            oom_kills=files.read_keyed(self._path / "memory.events").get("oom_kill", 0),
        )

    async def remove(self) -> None:
        """Removes the job's directory, retrying EBUSY."""
        await teardown.remove_dirs([self._path])
        self._lock.release()


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
        made = False
        lock = None
        try:
            with parent_locked(self._parent, exclusive=False):
                files.make_dir(path)
                made = True
                lock = JobLock.try_acquire(path)
            if lock is None:
                raise CgroupError(f"cgroup {path} is locked by another process")
            cgroup = V2JobCgroup(path, lock, self._devices)
            cgroup.apply(limits)
        except CgroupError:
            if lock is not None:
                lock.release()
            if made:  # Never remove a directory that existed before: it is not ours.
                files.try_rmdir(path)
            raise
        return cgroup

    async def sweep(self) -> int:
        """Kills and removes the job cgroups that no live driver owns; returns how many.

        A job directory another process holds locked belongs to a live driver and is left
        alone (see ownership.py).
        """
        leftovers: list[tuple[V2JobCgroup, JobLock]] = []
        try:
            with parent_locked(self._parent, exclusive=True):
                for path in sorted(self._parent.iterdir()):
                    if path.is_dir() and path.name.startswith(JOB_DIR_PREFIX):
                        lock = JobLock.try_acquire(path)
                        if lock is not None:
                            leftovers.append((V2JobCgroup(path, lock), lock))
            for job, _ in leftovers:
                await teardown.kill_until_empty(job)
                await job.remove()
        finally:
            # remove() released the locks of what it removed; a failure leaves the rest for
            # the next sweep instead of holding their fds.
            for _, lock in leftovers:
                lock.release()
        return len(leftovers)


def freeze_and_kill(path: Path) -> None:
    """SIGKILLs every process of a cgroup without cgroup.kill (before Linux 5.14).

    A frozen cgroup's tasks cannot fork (cgroup-v2.rst, "cgroup.freeze"), so the pid list
    cannot outrun the kills; the pending SIGKILLs take effect when the cgroup thaws.
    """
    freeze = path / "cgroup.freeze"
    files.write(freeze, "1")
    try:
        files.signal_procs([path / "cgroup.procs"], signal.SIGKILL)
    finally:
        files.write(freeze, "0")


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
