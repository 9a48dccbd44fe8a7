"""jobworker benchmarks: one run, one table, jobworker side by side with baselines.

Run with ``tools/bazel run //tools:bench`` as root. The results and their reading live in
docs/benchmarks.md. Nothing here is a pass/fail test: these machines are noisy,
so the table reports ratios to baselines measured in the same run.
"""

from __future__ import annotations

import asyncio
import datetime
import os
import platform
import tempfile
from collections.abc import Sequence
from pathlib import Path

from absl import app, flags

from api import tls_policy

_RUNS = flags.DEFINE_integer("runs", 200, "Samples per start-latency row.")
_COLD_RUNS = flags.DEFINE_integer("cold_runs", 50, "Samples for the new-channel row.")
_BYTES = flags.DEFINE_integer(
    "bytes", 1 << 30, "Bytes the throughput job writes (1 and 10 followers)."
)
_BYTES_100 = flags.DEFINE_integer(
    "bytes_100", 128 << 20, "Bytes per follower with 100 followers (keeps the run short)."
)
_SCALE_JOBS = flags.DEFINE_integer("scale_jobs", 1000, "Concurrent sleeping jobs.")
_SEQUENTIAL_JOBS = flags.DEFINE_integer("sequential_jobs", 10_000, "Jobs for the leak row.")
_MiB = 1 << 20


def _machine() -> str:
    with open("/proc/cpuinfo") as f:
        model = next((line.split(":", 1)[1].strip() for line in f if "model name" in line), "?")
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / (1 << 30)
    return f"{os.cpu_count()} x {model}, {mem:.0f} GiB, Linux {platform.release()}"


async def _run() -> None:
    from tools.bench import baselines, daemon_rows, grpc_ceiling, library_rows
    from tools.bench.daemon_process import Daemon
    from tools.bench.stats import Latency, Row, render

    def lat(value: Latency) -> str:
        return f"p50 {value.p50_ms:.2f} ms, p99 {value.p99_ms:.2f} ms"

    rows: list[Row] = []
    n = _RUNS.value
    true_ = baselines.time_command(["/bin/true"], n)
    unshare = baselines.time_command(["unshare", "-pmnf", "--mount-proc", "/bin/true"], n)
    runc = await asyncio.to_thread(baselines.runc_latency, min(n, 50), 0.5, 64 * _MiB, 64)
    with tempfile.TemporaryDirectory(prefix="jobworker-bench-") as tmp:
        work = Path(tmp)
        running, exited = await library_rows.start_latency(work / "lib", n, 0.05)
        burst_running, burst_exited = await library_rows.start_latency(work / "burst", n)
        rows += [
            Row("1a subprocess /bin/true", lat(true_)),
            Row("1b unshare -pmnf --mount-proc", lat(unshare)),
            Row(
                "1c library start, running (starts 50 ms apart)",
                lat(running),
                f"{running.p50_ms / unshare.p50_ms:.2f} x 1b",
            ),
            Row(
                "1d library start, exited (starts 50 ms apart)",
                lat(exited),
                f"{exited.p50_ms / unshare.p50_ms:.2f} x 1b",
            ),
            Row(
                "1c' library start back to back, running",
                lat(burst_running),
                f"{burst_running.p50_ms / unshare.p50_ms:.2f} x 1b",
                "no pause: the next spare is still being made",
            ),
            Row(
                "1d' library start back to back, exited",
                lat(burst_exited),
                f"{burst_exited.p50_ms / unshare.p50_ms:.2f} x 1b",
            ),
        ]
        stop, init_rss, init_private = await library_rows.stop_and_init_memory(
            work / "stop", min(n, 50)
        )
        idle = await library_rows.idle_cost(work / "idle", 100)
        rows += [
            Row("1i stop() of sleep, grace 60 s", lat(stop), note="SIGTERM through jobinit"),
            Row(
                "1j jobinit memory per running job",
                f"RSS {init_rss:.0f} KiB, private {init_private:.0f} KiB",
            ),
            Row(
                "1k idle cost of a running job (100 sleeping)",
                f"{idle['available']:.0f} KiB of MemAvailable",
                note=f"{idle['kernel']:.0f} KiB of it slab, kernel stacks and page tables",
            ),
        ]
        if isinstance(runc, Latency):
            rows.append(
                Row("1g runc run", lat(runc), f"1c = {running.p50_ms / runc.p50_ms:.2f} x 1g")
            )
        else:
            rows.append(Row("1g runc run", runc))
        async with Daemon(work / "daemon").running() as daemon:
            warm = await daemon_rows.start_latency_warm(daemon, n)
            cold = await daemon_rows.start_latency_cold(daemon, _COLD_RUNS.value)
            async with grpc_ceiling.unary_echo(daemon.pki_dir) as bare_call:
                bare_spaced = await daemon_rows.spaced(bare_call, n)
            rows += [
                Row(
                    "1e gRPC StartJob, warm channel",
                    lat(warm),
                    f"1c + {warm.p50_ms - running.p50_ms:.2f} ms",
                ),
                Row(
                    "1h bare grpc.aio unary, same mTLS, 50 ms apart",
                    lat(bare_spaced),
                    f"{bare_spaced.p50_ms / (warm.p50_ms - running.p50_ms):.2f} x (1e - 1c)",
                    "the framework's share of 1e - 1c",
                ),
                Row(
                    "1f gRPC StartJob, new channel",
                    lat(cold),
                    f"1e + {cold.p50_ms - warm.p50_ms:.2f} ms",
                ),
            ]
            pki = daemon.pki_dir
            size, size100 = _BYTES.value, _BYTES_100.value
            pipe = baselines.pipe_copy_bytes_per_second(size)
            ceiling = await grpc_ceiling.ceiling_bytes_per_second(pki, size)
            ceiling100 = await grpc_ceiling.ceiling_bytes_per_second(pki, size100, 100)
            one = await daemon_rows.throughput(daemon, size, 1)
            written = await daemon_rows.throughput_of_written_log(daemon, size)
            ten = await daemon_rows.throughput(daemon, size, 10)
            hundred = await daemon_rows.throughput(daemon, size100, 100)
            mb = 1e6
            rows += [
                Row("2 raw pipe copy", f"{pipe / mb:.0f} MB/s"),
                Row("2 bare grpc.aio ceiling, 1 stream", f"{ceiling / mb:.0f} MB/s"),
                Row(
                    "2 bare grpc.aio ceiling, 100 streams", f"{ceiling100 / mb:.0f} MB/s aggregate"
                ),
                Row("2 1 follower", f"{one / mb:.0f} MB/s", f"{one / ceiling:.2f} x ceiling"),
                Row(
                    "2 1 follower, log already written",
                    f"{written / mb:.0f} MB/s",
                    f"{written / ceiling:.2f} x ceiling",
                    "job exited, log cached and written back",
                ),
                Row(
                    "2 10 followers",
                    f"{ten / mb:.0f} MB/s aggregate",
                    f"{ten / one:.2f} x 1 follower",
                ),
                Row(
                    "2 100 followers",
                    f"{hundred / mb:.0f} MB/s aggregate",
                    f"{hundred / one:.2f} x 1 follower",
                    f"{size100 >> 20} MiB each",
                ),
            ]
            before, peak = await daemon_rows.peak_rss_during(daemon, size, 10)
            rows.append(
                Row(
                    "3 daemon RSS, 1 GiB to 10 followers (1 stalled)",
                    f"{before / _MiB:.1f} -> peak {peak / _MiB:.1f} MiB",
                    f"+{(peak - before) / _MiB:.1f} MiB",
                )
            )
            async with grpc_ceiling.unary_echo(pki) as bare_call:
                scale = await daemon_rows.scale(daemon, _SCALE_JOBS.value, 1000, bare_call)
            rows += [
                Row(f"4 start {_SCALE_JOBS.value} sleeping jobs", f"{scale['start_all_s']:.1f} s"),
                Row(
                    "4 daemon RSS per job",
                    f"{scale['rss_per_job'] / 1024:.1f} KiB",
                    note=f"RSS {scale['rss_after'] / _MiB:.0f} MiB at {_SCALE_JOBS.value} jobs",
                ),
                Row("4 extra processes per job", f"{scale['extra_procs_per_job']:.3f}"),
                Row(
                    "4 GetJob under load",
                    lat(scale["getjob"]),
                    f"p99 {scale['getjob'].p99_ms / scale['bare_unary'].p99_ms:.2f} x bare",
                ),
                Row("4 bare grpc.aio unary, same mTLS, interleaved", lat(scale["bare_unary"])),
            ]
        leaks = await library_rows.leaks_after(work / "seq", _SEQUENTIAL_JOBS.value)
        rows.append(
            Row(
                f"4 left after {_SEQUENTIAL_JOBS.value} sequential jobs",
                ", ".join(f"{k} {v}" for k, v in leaks.items()),
            )
        )
    print(f"# jobworker bench, {datetime.date.today()}, {_machine()}\n")
    print(render(rows))


def main(argv: Sequence[str]) -> None:
    """Runs every row once and prints the table."""
    del argv
    # The in-process ceiling server must speak TLS 1.3 only, like the daemon.
    tls_policy.forbid_tls12()
    asyncio.run(_run())


if __name__ == "__main__":
    app.run(main)
