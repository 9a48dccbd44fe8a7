"""Baselines measured on the same machine: subprocess, unshare, runc and a raw pipe."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from tools.bench.stats import Latency

_BUSYBOX = "/bin/busybox"


def time_command(argv: list[str], runs: int) -> Latency:
    """Times ``argv`` from fork to reaped exit, ``runs`` times, with output discarded."""
    samples = []
    for _ in range(runs):
        begin = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        samples.append(time.perf_counter() - begin)
    return Latency.of(samples)


def ensure_runc() -> str | None:
    """Returns the runc binary, installing Debian's runc if missing; None if impossible."""
    found = shutil.which("runc")
    if found:
        return found
    result = subprocess.run(
        ["apt-get", "install", "-y", "-qq", "runc"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        check=False,
    )
    return shutil.which("runc") if result.returncode == 0 else None


def make_runc_bundle(runc: str, directory: Path, cpu: float, memory: int, pids: int) -> Path:
    """Writes an OCI bundle running busybox ``true`` with the same limits as the jobs.

    Raises:
        FileNotFoundError: busybox-static is not installed.
    """
    rootfs = directory / "rootfs"
    (rootfs / "bin").mkdir(parents=True)
    shutil.copy(_BUSYBOX, rootfs / "bin" / "busybox")
    (rootfs / "bin" / "true").symlink_to("busybox")
    subprocess.run([runc, "spec"], cwd=directory, check=True)
    spec = json.loads((directory / "config.json").read_text())
    spec["process"].update(terminal=False, args=["/bin/true"], user={"uid": 65534, "gid": 65534})
    period = 100_000
    spec["linux"]["resources"] = {
        "cpu": {"quota": int(cpu * period), "period": period},
        "memory": {"limit": memory},
        "pids": {"limit": pids},
    }
    (directory / "config.json").write_text(json.dumps(spec))
    return directory


def time_runc(runc: str, bundle: Path, runs: int) -> Latency:
    """Times ``runc run`` of the bundle, container create to exit, ``runs`` times."""
    samples = []
    for i in range(runs):
        begin = time.perf_counter()
        subprocess.run(
            [runc, "run", "--bundle", str(bundle), f"jobworker-bench-{os.getpid()}-{i}"],
            check=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
        )
        samples.append(time.perf_counter() - begin)
    return Latency.of(samples)


def runc_latency(runs: int, cpu: float, memory: int, pids: int) -> Latency | str:
    """Returns runc's start-to-exit latency, or why the row was skipped."""
    runc = ensure_runc()
    if runc is None:
        return "skipped: runc is not installed and apt-get could not install it"
    if not Path(_BUSYBOX).exists():
        return "skipped: busybox-static is not installed"
    with tempfile.TemporaryDirectory(prefix="jobworker-runc-") as tmp:
        bundle = make_runc_bundle(runc, Path(tmp), cpu, memory, pids)
        return time_runc(runc, bundle, runs)


def pipe_copy_bytes_per_second(total: int) -> float:
    """Measures ``head -c total /dev/zero`` copied through a pipe by ``cat`` to /dev/null."""
    begin = time.perf_counter()
    with subprocess.Popen(["head", "-c", str(total), "/dev/zero"], stdout=subprocess.PIPE) as head:
        subprocess.run(["cat"], stdin=head.stdout, stdout=subprocess.DEVNULL, check=True)
        assert head.stdout is not None
        head.stdout.close()
    return total / (time.perf_counter() - begin)
