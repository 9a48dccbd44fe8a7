"""Rows measured on the library in-process: start latency and leaks after many jobs."""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from pathlib import Path

from tools.bench.stats import Latency
from tools.testing import leakcheck
from worker import spare
from worker.config import ManagerConfig
from worker.limits import Limits
from worker.manager import JobManager
from worker.spec import JobSpec

# The same limits as the runc row, so the two start the same amount of kernel work.
BENCH_LIMITS = Limits(cpu=0.5, memory_bytes=64 << 20, pids=64)
TRUE = ("/bin/true",)


def manager_config(data_dir: Path) -> ManagerConfig:
    """Returns the manager configuration every bench row uses."""
    return ManagerConfig(data_dir=data_dir, default_grace=1.0)


async def start_latency(
    data_dir: Path, runs: int, spacing_s: float = 0.0
) -> tuple[Latency, Latency]:
    """Times start() of an isolated ``/bin/true`` to running, and to exited with output done.

    Args:
        data_dir: The manager's data directory.
        runs: How many starts to time.
        spacing_s: Pause between starts. The manager makes its next spare (cgroup and
            sandbox, worker/spare.py) 1 ms after a start, so spaced starts find it ready,
            while a start back to back (0) finds it still being made, or none.
    """
    spec = JobSpec(argv=TRUE, owner="bench", limits=BENCH_LIMITS)
    to_running, to_exited = [], []
    async with JobManager(manager_config(data_dir)) as manager:
        for _ in range(runs):
            begin = time.perf_counter()
            status = await manager.start(spec)
            to_running.append(time.perf_counter() - begin)
            await manager.wait(status.job_id)
            to_exited.append(time.perf_counter() - begin)
            await asyncio.sleep(spacing_s)
    return Latency.of(to_running), Latency.of(to_exited)


async def leaks_after(data_dir: Path, jobs: int) -> dict[str, int]:
    """Runs ``jobs`` sequential jobs and returns what grew: fds, tasks, children, cgroups."""
    spec = JobSpec(argv=TRUE, owner="bench")
    async with JobManager(manager_config(data_dir)) as manager:
        # Warm up once so that lazily opened, long-lived resources are in the baseline.
        await manager.wait((await manager.start(spec)).job_id)
        # A quick job can end before its start's replacement spare exists (1 ms later).
        settle = spare.REPLENISH_DELAY_S * 20
        await asyncio.sleep(settle)
        before = leakcheck.Snapshot.take()
        tasks_before = len(asyncio.all_tasks())
        for _ in range(jobs):
            await manager.wait((await manager.start(spec)).job_id)
        await asyncio.sleep(settle)
        after = leakcheck.Snapshot.take()
        tasks_after = len(asyncio.all_tasks())
    # Counts, not identities: each start takes the manager's spare cgroup (worker/spare.py)
    # and a new one, with its own directories and lock fd, replaces it.
    return {
        "fds": len(after.fds) - len(before.fds),
        "tasks": tasks_after - tasks_before,
        "processes": len(after.children) - len(before.children),
        "cgroup dirs": len(after.cgroups) - len(before.cgroups),
        "threads": len(after.threads) - len(before.threads),
    }


def _jobinit_pids() -> list[int]:
    """The pids of every running jobinit (its comm is its file name)."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and Path(f"/proc/{entry}/comm").read_text() == "jobinit\n":
                found.append(int(entry))
        except OSError:  # Gone meanwhile.
            continue
    return found


def _kib(path: Path, field: str) -> int:
    """The value of ``field`` ("VmRSS", "Pss", ...) in a /proc status or smaps file, in KiB."""
    return int(path.read_text().split(f"\n{field}:")[1].split()[0])


async def stop_and_init_memory(data_dir: Path, runs: int) -> tuple[Latency, float, float]:
    """Stops ``runs`` jobs of ``sleep`` (no SIGTERM handler) and measures their jobinit.

    Returns:
        The latency of stop() with a one-minute grace, which jobinit makes unneeded by
        forwarding SIGTERM; and the median RSS and private memory of a running jobinit in KiB.
    """
    spec = JobSpec(argv=("/bin/sleep", "300"), owner="bench")
    stops, rss, private = [], [], []
    async with JobManager(manager_config(data_dir)) as manager:
        for _ in range(runs):
            status = await manager.start(spec)
            for pid in _jobinit_pids():
                rss.append(_kib(Path(f"/proc/{pid}/status"), "VmRSS"))
                rollup = Path(f"/proc/{pid}/smaps_rollup")
                private.append(_kib(rollup, "Private_Clean") + _kib(rollup, "Private_Dirty"))
            begin = time.perf_counter()
            await manager.stop(status.job_id, grace=60)
            stops.append(time.perf_counter() - begin)
    return Latency.of(stops), statistics.median(rss), statistics.median(private)


def _meminfo_kib() -> dict[str, int]:
    fields = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        name, _, value = line.partition(":")
        fields[name] = int(value.split()[0])
    return fields


async def idle_cost(data_dir: Path, jobs: int) -> dict[str, float]:
    """Starts ``jobs`` sleeping jobs and returns what each costs the host, in KiB.

    "available" is the drop of MemAvailable per job (everything: processes, page tables,
    the kernel's objects for the namespaces and the job's mounts); "kernel" the growth of
    Slab, KernelStack and PageTables per job, the part no process's RSS shows.
    """
    kernel = ("Slab", "KernelStack", "PageTables")
    spec = JobSpec(argv=("/bin/sleep", "300"), owner="bench")
    async with JobManager(manager_config(data_dir)) as manager:
        await asyncio.sleep(0.1)  # The spare is made.
        before = _meminfo_kib()
        started = [await manager.start(spec) for _ in range(jobs)]
        await asyncio.sleep(0.5)  # Lazily freed and allocated objects settle.
        after = _meminfo_kib()
        for status in started:
            await manager.stop(status.job_id, grace=5)
    return {
        "available": (before["MemAvailable"] - after["MemAvailable"]) / jobs,
        "kernel": sum(after[k] - before[k] for k in kernel) / jobs,
    }
