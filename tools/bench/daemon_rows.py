"""Rows measured against a real jobworkerd over mTLS: latency, throughput, memory, scale."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

from jobworker.v1 import jobworker_pb2 as pb
from tools.bench.daemon_process import Daemon, rss_bytes, stub
from tools.bench.stats import Latency

_LIMITS = pb.Limits(cpu=0.5, memory_bytes=64 << 20, pids=64)
_TIMEOUT = 60.0
# Like the library's row 1c: spaced starts find the spawner's ready sandbox.
_SPACING_S = 0.05


def _start_request(argv: list[str], limits: pb.Limits = _LIMITS) -> pb.StartJobRequest:
    return pb.StartJobRequest(argv=argv, limits=limits)


async def start_latency_warm(daemon: Daemon, runs: int) -> Latency:
    """Times StartJob of ``/bin/true`` on one warm channel, starts 50 ms apart."""
    samples = []
    async with daemon.channel() as channel:
        jobs = stub(channel)
        await jobs.StartJob(_start_request(["/bin/true"]), timeout=_TIMEOUT)  # Warm-up.
        for _ in range(runs):
            begin = time.perf_counter()
            await jobs.StartJob(_start_request(["/bin/true"]), timeout=_TIMEOUT)
            samples.append(time.perf_counter() - begin)
            await asyncio.sleep(_SPACING_S)
    return Latency.of(samples)


async def spaced(call: Callable[[], Awaitable[object]], runs: int) -> Latency:
    """Times ``call`` ``runs`` times, 50 ms apart like the StartJob rows."""
    samples = []
    for _ in range(runs):
        begin = time.perf_counter()
        await call()
        samples.append(time.perf_counter() - begin)
        await asyncio.sleep(_SPACING_S)
    return Latency.of(samples)


async def start_latency_cold(daemon: Daemon, runs: int) -> Latency:
    """Times a new channel (TCP + TLS 1.3 handshake) plus StartJob of ``/bin/true``."""
    samples = []
    for _ in range(runs):
        begin = time.perf_counter()
        async with daemon.channel() as channel:
            await stub(channel).StartJob(_start_request(["/bin/true"]), timeout=_TIMEOUT)
        samples.append(time.perf_counter() - begin)
        await asyncio.sleep(_SPACING_S)
    return Latency.of(samples)


async def _follow(daemon: Daemon, job_id: str, stall: asyncio.Event | None = None) -> int:
    received = 0
    async with daemon.channel() as channel:
        call = stub(channel).StreamOutput(pb.StreamOutputRequest(job_id=job_id, follow=True))
        if stall is not None:
            await stall.wait()  # Holds the stream open without reading it.
            call.cancel()
            return 0
        async for chunk in call:
            received += len(chunk.data)
    return received


async def throughput(daemon: Daemon, total: int, followers: int) -> float:
    """Starts a job writing ``total`` bytes; returns the followers' aggregate bytes/s."""
    async with daemon.channel() as channel:
        job = await stub(channel).StartJob(
            _start_request(["head", "-c", str(total), "/dev/zero"], pb.Limits(cpu=2)),
            timeout=_TIMEOUT,
        )
    begin = time.perf_counter()
    sizes = await asyncio.gather(*(_follow(daemon, job.job.job_id) for _ in range(followers)))
    elapsed = time.perf_counter() - begin
    if any(size != total for size in sizes):
        raise RuntimeError(f"a follower got {min(sizes)} of {total} bytes")
    return sum(sizes) / elapsed


async def throughput_of_written_log(daemon: Daemon, total: int) -> float:
    """Lets a job write ``total`` bytes and exit, then times one follower reading them all.

    The "1 follower" row follows a job while it writes, so on these 2-vCPU machines it also
    pays for the job's own write (about 0.9 CPU-s per GiB), the writeback of the log, and,
    under the daemon's 512 MiB default memory limit, re-reading from disk the part of the log
    that the job's memory cgroup evicted before the follower got there (150-280 MiB of 1 GiB
    in three runs). This row removes those three: the job's limit holds the whole log, the
    follower starts after the job exited, and the dirty pages are written back first. What
    remains is the daemon's streaming path, comparable with the ceiling.
    """
    limits = pb.Limits(cpu=2, memory_bytes=total + (256 << 20))
    async with daemon.channel() as channel:
        job = await stub(channel).StartJob(
            _start_request(["head", "-c", str(total), "/dev/zero"], limits), timeout=_TIMEOUT
        )
    job_id = job.job.job_id
    # An untimed follower ends exactly when the job has exited and its output is complete.
    drained = await _follow(daemon, job_id)
    await asyncio.to_thread(os.sync)
    begin = time.perf_counter()
    size = await _follow(daemon, job_id)
    elapsed = time.perf_counter() - begin
    if drained != total or size != total:
        raise RuntimeError(f"followers got {drained} and {size} of {total} bytes")
    return size / elapsed


async def peak_rss_during(daemon: Daemon, total: int, followers: int) -> tuple[int, int]:
    """Returns the daemon's RSS before, and its peak while ``followers`` (one stalled) read."""
    before = rss_bytes(daemon.pid)
    peak = before
    done = asyncio.Event()

    async def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, rss_bytes(daemon.pid))
            await asyncio.sleep(0.02)

    async with daemon.channel() as channel:
        job = await stub(channel).StartJob(
            _start_request(["head", "-c", str(total), "/dev/zero"], pb.Limits(cpu=2)),
            timeout=_TIMEOUT,
        )
    job_id = job.job.job_id
    stall = asyncio.Event()
    async with asyncio.TaskGroup() as group:
        sampler = group.create_task(sample())
        stalled = group.create_task(_follow(daemon, job_id, stall))
        await asyncio.gather(*(_follow(daemon, job_id) for _ in range(followers - 1)))
        stall.set()
        await stalled
        done.set()
        await sampler
    return before, peak


def _process_count() -> int:
    return sum(1 for name in os.listdir("/proc") if name.isdigit())


async def scale(
    daemon: Daemon, jobs: int, probes: int, baseline: Callable[[], Awaitable[object]]
) -> dict[str, Any]:
    """Starts ``jobs`` sleeping jobs at once; measures time, RSS, processes and GetJob.

    Each GetJob alternates with a call of ``baseline`` (a bare unary call over the same mTLS),
    so that both see the same machine.
    """
    rss_before, procs_before = rss_bytes(daemon.pid), _process_count()
    async with daemon.channel() as channel:
        api = stub(channel)
        limit = asyncio.Semaphore(64)  # The daemon's max_concurrent_streams is 256.

        async def start_one() -> str:
            async with limit:
                reply = await api.StartJob(
                    _start_request(["/bin/sleep", "600"], pb.Limits(cpu=0.1, pids=4)),
                    timeout=_TIMEOUT,
                )
                job_id: str = reply.job.job_id
                return job_id

        begin = time.perf_counter()
        ids = await asyncio.gather(*(start_one() for _ in range(jobs)))
        start_all = time.perf_counter() - begin
        rss_after, procs_after = rss_bytes(daemon.pid), _process_count()
        samples, bare = [], []
        for i in range(probes):
            t0 = time.perf_counter()
            await api.GetJob(pb.GetJobRequest(job_id=ids[i % len(ids)]), timeout=_TIMEOUT)
            t1 = time.perf_counter()
            await baseline()
            samples.append(t1 - t0)
            bare.append(time.perf_counter() - t1)

        async def stop_one(job_id: str) -> None:
            async with limit:
                await api.StopJob(
                    pb.StopJobRequest(job_id=job_id, grace_seconds=0), timeout=_TIMEOUT
                )

        await asyncio.gather(*(stop_one(job_id) for job_id in ids))
    return {
        "start_all_s": start_all,
        "rss_per_job": (rss_after - rss_before) / jobs,
        "rss_after": rss_after,
        "extra_procs_per_job": (procs_after - procs_before - jobs) / jobs,
        "getjob": Latency.of(samples),
        "bare_unary": Latency.of(bare),
    }
