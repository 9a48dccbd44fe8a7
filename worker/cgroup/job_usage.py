"""A job's Usage, put together from what each controller module reads, on either version."""

from __future__ import annotations

from worker.cgroup.cpu import CpuUsage
from worker.cgroup.io import IoUsage
from worker.cgroup.memory import MemoryUsage
from worker.cgroup.pids import PidsUsage
from worker.status import Usage


def combine(cpu: CpuUsage, memory: MemoryUsage, io: IoUsage, pids: PidsUsage) -> Usage:
    """Returns the job's Usage from its controllers' counters."""
    return Usage(
        cpu_usec=cpu.usec,
        memory_bytes=memory.current_bytes,
        memory_peak_bytes=memory.peak_bytes,
        io_read_bytes=io.read_bytes,
        io_write_bytes=io.write_bytes,
        oom_kills=memory.oom_kills,
        pids_refused=pids.refused,
        memory_high_events=memory.high_events,
        memory_max_events=memory.max_events,
        cpu_periods=cpu.periods,
        cpu_throttled_periods=cpu.throttled_periods,
        cpu_throttled_usec=cpu.throttled_usec,
    )
