"""The cgroup v1 driver (legacy and hybrid hosts): one directory per job in each hierarchy.

Layout: ``<root>/<controller>/<daemon's own path in that hierarchy>/jobworker/job-<id>`` for
each of the controllers below. Hierarchies mounted together (for example "cpu,cpuacct" with
cpu and cpuacct as symlinks) resolve to one directory, which is made and removed once.
v1 has no no-internal-process rule, so the daemon stays where it is.
"""

from __future__ import annotations

import signal
from collections.abc import Mapping
from pathlib import Path

from worker.cgroup import files, teardown
from worker.cgroup.base import JOB_DIR_PREFIX, PARENT_DIR_NAME, CgroupMode, job_dir_name
from worker.cgroup.blockdev import BlockDevice
from worker.cgroup.ownership import JobLock, parent_locked
from worker.cgroup.swap import host_has_swap
from worker.errors import CgroupError
from worker.limits import Limits
from worker.status import Usage

REQUIRED_CONTROLLERS = ("cpu", "cpuacct", "memory", "blkio", "pids", "freezer")
# CFS bandwidth: quota per period (Documentation/scheduler/sched-bwc.rst). 100 ms is the
# kernel default period; the quota is the fraction of it the job may run, summed over CPUs.
CFS_PERIOD_US = 100_000


def _unique_dirs(dirs: Mapping[str, Path]) -> tuple[Path, ...]:
    """Returns ``dirs`` without the duplicates of co-mounted hierarchies, in a stable order."""
    seen: dict[Path, Path] = {}
    for path in dirs.values():
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
            lock: The ownership lock on the freezer directory, released by remove().
            devices: Whole disks that apply() limits IO on.
        """
        self._dirs = dict(dirs)
        self._unique = _unique_dirs(self._dirs)
        self._lock = lock
        self._devices = devices

    @property
    def procs_files(self) -> tuple[str, ...]:
        """The cgroup.procs file of each distinct hierarchy."""
        return tuple(str(d / "cgroup.procs") for d in self._unique)

    def apply(self, limits: Limits) -> None:
        """Writes every set limit: CFS quota, memory (and memsw), blkio throttle, pids.max.

        Raises:
            CgroupError: A limit was refused or cannot be enforced on this host.
        """
        dirs = self._dirs
        if limits.cpu is not None:
            files.write(dirs["cpu"] / "cpu.cfs_period_us", str(CFS_PERIOD_US))
            quota = max(1000, round(limits.cpu * CFS_PERIOD_US))  # The kernel minimum is 1 ms.
            files.write(dirs["cpu"] / "cpu.cfs_quota_us", str(quota))
        if limits.memory_bytes is not None:
            memory = dirs["memory"]
            files.write(memory / "memory.limit_in_bytes", str(limits.memory_bytes))
            # memsw limits memory plus swap, so equal values mean "no swap". It must be set
            # after limit_in_bytes (it may not be lower). It is missing when the kernel runs
            # without swap accounting (swapaccount=0): then, like v2, refuse the limit if
            # the job could page out past it, rather than weaken it quietly.
            memsw = memory / "memory.memsw.limit_in_bytes"
            if memsw.exists():
                files.write(memsw, str(limits.memory_bytes))
            elif host_has_swap():
                raise CgroupError(
                    "memory.memsw.limit_in_bytes is missing (no swap accounting), so the "
                    "memory limit cannot keep the job out of swap"
                )
        for key, bps in (("read", limits.io_read_bps), ("write", limits.io_write_bps)):
            if bps is None:
                continue
            if not self._devices:
                raise CgroupError(f"io {key} limit set, but no block device to throttle")
            for dev in self._devices:
                files.write(dirs["blkio"] / f"blkio.throttle.{key}_bps_device", f"{dev} {bps}")
        if limits.pids is not None:
            files.write(dirs["pids"] / "pids.max", str(limits.pids))

    def _procs(self) -> list[Path]:
        return [d / "cgroup.procs" for d in self._unique]

    def _frozen_signal(self, sig: int) -> None:
        # The v1 freezer stops every task and, while FREEZING, freezes new children at fork
        # (Documentation/admin-guide/cgroup-v1/freezer-subsystem.rst), so the pid list cannot
        # outrun the signals. SIGKILL stays pending on a frozen task; it dies at THAWED.
        # A leftover found by sweep() may have lost its freezer directory; signal anyway.
        if "freezer" not in self._dirs:
            files.signal_procs(self._procs(), sig)
            return
        state = self._dirs["freezer"] / "freezer.state"
        files.write(state, "FROZEN")
        try:
            files.signal_procs(self._procs(), sig)
        finally:
            files.write(state, "THAWED")

    def signal_all(self, sig: int) -> None:
        """Sends ``sig`` to every process of the job, frozen so none escapes by forking."""
        self._frozen_signal(sig)

    def kill_all(self) -> None:
        """SIGKILLs every process of the job under the freezer."""
        self._frozen_signal(signal.SIGKILL)

    def is_empty(self) -> bool:
        """Returns True when no hierarchy lists a process of the job."""
        return not any(files.read_pids(p) for p in self._procs())

    def usage(self) -> Usage:
        """Reads cpuacct, memory and blkio counters (Documentation/admin-guide/cgroup-v1/)."""
        memory = self._dirs["memory"]
        read_bytes = write_bytes = 0
        # Lines are "MAJ:MIN Op bytes" plus a final "Total bytes". Only IO that the throttle
        # layer saw is counted; on v1 buffered writeback is charged to the flusher, not here.
        service = files.read(self._dirs["blkio"] / "blkio.throttle.io_service_bytes")
        for line in service.splitlines():
            match line.split():
                case [_, "Read", count]:
                    read_bytes += int(count)
                case [_, "Write", count]:
                    write_bytes += int(count)
        return Usage(
            cpu_usec=files.read_int(self._dirs["cpuacct"] / "cpuacct.usage") // 1000,
            memory_bytes=files.read_int(memory / "memory.usage_in_bytes"),
            memory_peak_bytes=files.read_int(memory / "memory.max_usage_in_bytes"),
            io_read_bytes=read_bytes,
            io_write_bytes=write_bytes,
            # oom_kill is in memory.oom_control since Linux 4.13.
            oom_kills=files.read_keyed(memory / "memory.oom_control").get("oom_kill", 0),
        )

    async def remove(self) -> None:
        """Removes the job's directory in every hierarchy, retrying EBUSY.

        The locked freezer directory goes last, so a concurrent sweep never mistakes a
        half-removed job for a leftover.
        """
        locked = self._dirs.get("freezer")
        await teardown.remove_dirs([d for d in self._unique if d != locked])
        if locked is not None:
            await teardown.remove_dirs([locked])
        if self._lock is not None:
            self._lock.release()


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
        made: list[Path] = []
        lock = None
        try:
            with parent_locked(self._parents["freezer"], exclusive=False):
                # The freezer dir, which carries the lock, is made last (see sweep()).
                for path in sorted(_unique_dirs(dirs), key=lambda d: d == dirs["freezer"]):
                    files.make_dir(path)
                    made.append(path)
                lock = JobLock.try_acquire(dirs["freezer"])
            if lock is None:
                raise CgroupError(f"cgroup {dirs['freezer']} is locked by another process")
            cgroup = V1JobCgroup(dirs, lock, self._devices)
            cgroup.apply(limits)
        except CgroupError:
            if lock is not None:
                lock.release()
            for path in reversed(made):
                files.try_rmdir(path)
            raise
        return cgroup

    async def sweep(self) -> int:
        """Kills and removes the job cgroups that no live driver owns; returns how many.

        A job whose freezer directory another process holds locked belongs to a live
        driver and is left alone (see ownership.py).
        """
        leftovers: list[tuple[V1JobCgroup, JobLock | None]] = []
        try:
            with parent_locked(self._parents["freezer"], exclusive=True):
                for name in sorted(self._job_names()):
                    present = {c: p / name for c, p in self._parents.items() if (p / name).is_dir()}
                    lock = None
                    if "freezer" in present:
                        lock = JobLock.try_acquire(present["freezer"])
                        if lock is None:
                            continue
                    leftovers.append((V1JobCgroup(present, lock), lock))
            for job, _ in leftovers:
                await teardown.kill_until_empty(job)
                await job.remove()
        finally:
            # remove() released the locks of what it removed; a failure leaves the rest for
            # the next sweep instead of holding their fds.
            for _, lock in leftovers:
                if lock is not None:
                    lock.release()
        return len(leftovers)

    def _job_names(self) -> set[str]:
        names: set[str] = set()
        for parent in self._parents.values():
            names.update(
                p.name for p in parent.iterdir() if p.is_dir() and p.name.startswith(JOB_DIR_PREFIX)
            )
        return names


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
