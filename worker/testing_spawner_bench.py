"""Benchmark: spawn latency of the spawner against ``unshare -pmnf --mount-proc``.

Run as root: ``python3 -m worker.testing_spawner_bench [N]``. Prints the median and p90 in
milliseconds of (1) ``Spawner.spawn`` until the program runs, (2) until it has exited and
been reaped, both back to back (gap 0: the pooled sandbox is still being made) and 50 ms
apart (the pool is ready), (3) the same /bin/true under unshare(1) via asyncio subprocess,
and (4) plain /bin/true via asyncio subprocess. Not a test: the machines are too noisy.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time

from worker.spawner import Spawner, SpawnRequest

_TRUE = SpawnRequest(
    argv=("/bin/true",), env={"PATH": "/usr/bin:/bin"}, cwd="/", uid=65534, gid=65534,
    cgroup_procs=(),
)  # fmt: skip


def _summary(name: str, samples: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples)
    return f"{name:<28} median {statistics.median(ms):6.2f} ms  p90 {ms[len(ms) * 9 // 10]:6.2f} ms"


async def _subprocess(argv: list[str], n: int) -> list[float]:
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        process = await asyncio.create_subprocess_exec(*argv)
        await process.wait()
        samples.append(time.perf_counter() - start)
    return samples


async def _spawner(n: int, gap: float) -> tuple[list[float], list[float]]:
    spawner = await Spawner.start()
    running, exited = [], []
    null = os.open("/dev/null", os.O_WRONLY)
    try:
        for _ in range(n):
            await asyncio.sleep(gap)  # Time for the spawner to refill its sandbox pool.
            start = time.perf_counter()
            pid = await spawner.spawn(_TRUE, null)
            running.append(time.perf_counter() - start)
            await spawner.wait(pid)
            exited.append(time.perf_counter() - start)
    finally:
        os.close(null)
        await spawner.aclose()
    return running, exited


async def main(n: int) -> None:
    """Runs each measurement ``n`` times and prints a summary line per measurement."""
    for gap in (0.0, 0.05):
        running, exited = await _spawner(n, gap)
        print(_summary(f"spawner: running, gap {gap}", running))
        print(_summary(f"spawner: exited, gap {gap}", exited))
    print(_summary("unshare -pmnf --mount-proc", await _subprocess(
        ["unshare", "-pmnf", "--mount-proc", "/bin/true"], n)))  # fmt: skip
    print(_summary("subprocess /bin/true", await _subprocess(["/bin/true"], n)))


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 200))
