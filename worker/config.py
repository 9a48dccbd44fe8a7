"""How a JobManager runs jobs: where its data lives, as whom jobs run, and their limits."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from worker.limits import Limits

JOBINIT = Path(__file__).parent / "init" / "jobinit"
"""jobinit as //worker/init:jobinit builds it, beside this package in the runfiles."""


@dataclasses.dataclass(frozen=True, slots=True)
class ManagerConfig:
    """How the manager runs jobs.

    Attributes:
        data_dir: Directory for the manager's data, created with mode 0700 when missing;
            job logs live in ``data_dir / "logs"``.
        job_uid: The unprivileged user id jobs run as.
        job_gid: The group id jobs run as; supplementary groups are cleared.
        default_grace: Seconds between SIGTERM and SIGKILL when stop() is given no grace.
        default_limits: Limits applied to the fields a spec leaves unset.
        max_limits: Upper bounds; a spec above one fails with InvalidSpec("limits.<name>").
        cgroup_root: Where the cgroup hierarchies are mounted.
        io_paths: Filesystems whose backing disks get the IO limits.
        init_path: The jobinit binary, PID 1 of every job; it must be executable by
            ``job_uid``, but no path to it needs to be.
    """

    data_dir: Path
    job_uid: int = 65534
    job_gid: int = 65534
    default_grace: float = 5.0
    default_limits: Limits = dataclasses.field(default_factory=Limits)
    max_limits: Limits = dataclasses.field(default_factory=Limits)
    cgroup_root: Path = Path("/sys/fs/cgroup")
    io_paths: tuple[str, ...] = ("/",)
    init_path: Path = JOBINIT
