"""The CPU controllers: the CFS bandwidth limit and CPU time, on v1 (cpu, cpuacct) and v2 (cpu).

Both versions limit CPU with CFS bandwidth control, a quota of run time per period summed over
all CPUs (Documentation/scheduler/sched-bwc.rst); only the files that hold it differ.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path

from worker.cgroup import files
from worker.limits import Limits

# The kernel's default period (sched-bwc.rst), used on both versions.
PERIOD_US = 100_000
# sched-bwc.rst: "The minimum quota allowed for the quota or period is 1ms."
MIN_QUOTA_US = 1_000


@dataclasses.dataclass(frozen=True, slots=True)
class CpuUsage:
    """What the CPU controllers count for a job.

    Attributes:
        usec: CPU time used, user plus system, in microseconds.
        periods: CFS periods in which the job was runnable under a CPU limit.
        throttled_periods: Those of them in which it used up its quota and was throttled.
        throttled_usec: Time it spent throttled, in microseconds.
    """

    usec: int
    periods: int = 0
    throttled_periods: int = 0
    throttled_usec: int = 0


def quota_us(cores: float) -> int:
    """Returns the run time per PERIOD_US that lets a job use ``cores`` CPUs.

    A quota under the kernel's minimum would be refused, so it is raised to MIN_QUOTA_US.
    """
    return max(MIN_QUOTA_US, round(cores * PERIOD_US))


def write_v1(limits: Limits, dirs: Mapping[str, Path]) -> None:
    """Writes the CPU limit, if set, into the job's v1 cpu directory.

    Args:
        limits: The job's limits; only ``cpu`` is read.
        dirs: The job's directory in each v1 hierarchy, keyed by controller name.

    Raises:
        CgroupError: The kernel refused a value.
    """
    if limits.cpu is None:
        return
    cpu = dirs["cpu"]
    files.write(cpu / "cpu.cfs_period_us", str(PERIOD_US))
    files.write(cpu / "cpu.cfs_quota_us", str(quota_us(limits.cpu)))


def write_v2(limits: Limits, path: Path) -> None:
    """Writes the CPU limit, if set, as cpu.max "$MAX $PERIOD" (cgroup-v2.rst, "CPU").

    Raises:
        CgroupError: The kernel refused the value.
    """
    if limits.cpu is not None:
        files.write(path / "cpu.max", f"{quota_us(limits.cpu)} {PERIOD_US}")


def read_v1(dirs: Mapping[str, Path]) -> CpuUsage:
    """Reads the job's CPU counters from its v1 cpuacct (and, for more counters, cpu) dirs.

    Raises:
        CgroupError: A counter file could not be read.
    """
    # cpuacct.usage and cpu.stat's throttled_time are in nanoseconds (cgroup-v1/cpuacct.rst,
    # scheduler/sched-bwc.rst "Statistics").
    stat = files.read_keyed(dirs["cpu"] / "cpu.stat")
    return CpuUsage(
        usec=files.read_int(dirs["cpuacct"] / "cpuacct.usage") // 1000,
        periods=stat.get("nr_periods", 0),
        throttled_periods=stat.get("nr_throttled", 0),
        throttled_usec=stat.get("throttled_time", 0) // 1000,
    )


def read_v2(path: Path) -> CpuUsage:
    """Reads the job's CPU counters from cpu.stat (cgroup-v2.rst, "CPU Interface Files").

    Raises:
        CgroupError: cpu.stat could not be read.
    """
    stat = files.read_keyed(path / "cpu.stat")
    return CpuUsage(
        usec=stat.get("usage_usec", 0),
        periods=stat.get("nr_periods", 0),
        throttled_periods=stat.get("nr_throttled", 0),
        throttled_usec=stat.get("throttled_usec", 0),
    )
