"""The memory controller: a hard limit that keeps the job out of swap, and memory use, v1 and v2.

Files: Documentation/admin-guide/cgroup-v1/memory.rst and cgroup-v2.rst, "Memory Interface
Files".
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path

from worker.cgroup import files
from worker.cgroup.swap import host_has_swap
from worker.errors import CgroupError
from worker.limits import Limits


@dataclasses.dataclass(frozen=True, slots=True)
class MemoryUsage:
    """What the memory controller counts for a job.

    Attributes:
        current_bytes: Memory in use now.
        peak_bytes: The most ever in use, where the kernel reports it, else 0.
        oom_kills: Processes of the job killed by the kernel's OOM killer.
        high_events: Times the job was throttled over memory.high (v2; v1 has no high).
        max_events: Times its usage hit the limit (v2 memory.events max; v1 failcnt).
    """

    current_bytes: int
    peak_bytes: int
    oom_kills: int
    high_events: int = 0
    max_events: int = 0


def write_v1(limits: Limits, dirs: Mapping[str, Path]) -> None:
    """Writes the memory limit, if set, and the same limit on memory plus swap.

    memsw limits memory plus swap (memory.rst, "Swap Extension"), so equal values mean "no
    swap". It is written after limit_in_bytes, which it may not be lower than.

    Args:
        limits: The job's limits; only ``memory_bytes`` is read.
        dirs: The job's directory in each v1 hierarchy, keyed by controller name.

    Raises:
        CgroupError: The kernel refused a value, or the job could escape into swap.
    """
    if limits.memory_bytes is None:
        return
    memory = dirs["memory"]
    files.write(memory / "memory.limit_in_bytes", str(limits.memory_bytes))
    _keep_out_of_swap(memory / "memory.memsw.limit_in_bytes", str(limits.memory_bytes))


def write_v2(limits: Limits, path: Path) -> None:
    """Writes the memory limit, if set, to memory.max, and 0 to memory.swap.max.

    Raises:
        CgroupError: The kernel refused a value, or the job could escape into swap.
    """
    if limits.memory_bytes is None:
        return
    files.write(path / "memory.max", str(limits.memory_bytes))
    _keep_out_of_swap(path / "memory.swap.max", "0")


def _keep_out_of_swap(swap_limit: Path, value: str) -> None:
    """Writes the swap limit that goes with a memory limit, on either version.

    The file is missing when the kernel does not account swap (v1: swapaccount=0; v2: no
    CONFIG_MEMCG_SWAP). A job could then page out past its limit instead of being OOM-killed,
    which is only acceptable when the host has no swap to escape to; otherwise the limit is
    refused rather than weakened quietly.
    """
    if swap_limit.exists():
        files.write(swap_limit, value)
    elif host_has_swap():
        raise CgroupError(
            f"{swap_limit.name} is missing (no swap accounting), so the memory limit cannot "
            "keep the job out of swap"
        )


def read_v1(dirs: Mapping[str, Path]) -> MemoryUsage:
    """Reads the job's memory counters from its v1 memory directory.

    Raises:
        CgroupError: A counter file could not be read.
    """
    memory = dirs["memory"]
    return MemoryUsage(
        current_bytes=files.read_int(memory / "memory.usage_in_bytes"),
        peak_bytes=files.read_int(memory / "memory.max_usage_in_bytes"),
        # oom_kill is in memory.oom_control since Linux 4.13.
        oom_kills=files.read_keyed(memory / "memory.oom_control").get("oom_kill", 0),
        max_events=_failcnt_v1(memory),
    )


def _failcnt_v1(memory: Path) -> int:
    """Returns how often the job's charges hit its memory limit (cgroup-v1/memory.rst, 5.1).

    A charge tries memory plus swap first when swap is accounted (mm/memcontrol.c,
    try_charge), and with equal limits that is the one that fails; so a hit counts in
    memory.memsw.failcnt or in memory.failcnt, never in both. Not every kernel keeps these
    counts: on Linux 6.18 (v1 host) both stayed 0 through an OOM kill (measured).
    """
    memsw = memory / "memory.memsw.failcnt"
    hits = files.read_int(memory / "memory.failcnt")
    return hits + files.read_int(memsw) if memsw.exists() else hits


def read_v2(path: Path) -> MemoryUsage:
    """Reads memory.current, memory.peak and memory.events.

    Raises:
        CgroupError: A counter file could not be read.
    """
    peak = path / "memory.peak"  # Linux 5.19+.
    events = files.read_keyed(path / "memory.events")
    return MemoryUsage(
        current_bytes=files.read_int(path / "memory.current"),
        peak_bytes=files.read_int(peak) if peak.exists() else 0,
        oom_kills=events.get("oom_kill", 0),
        high_events=events.get("high", 0),
        max_events=events.get("max", 0),
    )
