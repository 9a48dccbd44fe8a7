"""Test support for the JobManager tests: configs, specs and a verifiable output pattern."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from worker.config import ManagerConfig
from worker.limits import Limits
from worker.manager import JobManager
from worker.spec import JobSpec

# Jobs run as uid 65534, which cannot use the pyenv interpreter under /root (mode 0700).
PYTHON = "/usr/bin/python3"

# The job side of `pattern`: block i is sha256(str(i)) repeated 64 times (2 KiB). The job
# flushes and pauses now and then, so readers see the log grow while they follow it.
PATTERN_SCRIPT = """
import hashlib, sys, time
blocks, pause_every = int(sys.argv[1]), int(sys.argv[2])
out = sys.stdout.buffer
for i in range(blocks):
    out.write(hashlib.sha256(b"%d" % i).digest() * 64)
    if pause_every and i % pause_every == pause_every - 1:
        out.flush()
        time.sleep(0.01)
out.flush()
"""


def pattern(blocks: int) -> bytes:
    """Returns exactly what PATTERN_SCRIPT writes for ``blocks`` blocks."""
    return b"".join(hashlib.sha256(b"%d" % i).digest() * 64 for i in range(blocks))


def pattern_job(blocks: int, pause_every: int = 0, owner: str = "alice") -> JobSpec:
    """Returns a spec whose job writes `pattern(blocks)` and exits 0."""
    return job(PYTHON, "-c", PATTERN_SCRIPT, str(blocks), str(pause_every), owner=owner)


def job(*argv: str, owner: str = "alice", cwd: str = "/", limits: Limits | None = None) -> JobSpec:
    """Returns a spec with the default environment."""
    return JobSpec(argv=argv, owner=owner, cwd=cwd, limits=limits or Limits())


def config(tmp_path: Path, **overrides: object) -> ManagerConfig:
    """Returns a config whose data directory is private to the test."""
    return ManagerConfig(data_dir=tmp_path / "data", **overrides)  # type: ignore[arg-type]


def log_files(tmp_path: Path) -> list[str]:
    """Returns the names of the job logs in the test's data directory."""
    logs = tmp_path / "data" / "logs"
    return sorted(os.listdir(logs)) if logs.exists() else []


def sha256(data: bytes) -> str:
    """Returns the hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


async def read_all(manager: JobManager, job_id: str, offset: int = 0, follow: bool = True) -> bytes:
    """Returns everything one reader of the job's output gets."""
    return b"".join([chunk async for chunk in manager.output(job_id, offset, follow)])
