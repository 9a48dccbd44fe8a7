"""How a JobManager runs jobs: where its data lives, as whom jobs run, and their limits."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Self

from worker.limits import Limits

JOBINIT = Path(__file__).parent / "init" / "jobinit"
"""jobinit as //worker/init:jobinit builds it, beside this package in the runfiles."""


@dataclasses.dataclass(frozen=True, slots=True)
class JobWorld:
    """What a job sees of the host's files (worker/job_root.py builds it).

    Attributes:
        root: The directory bound read-only, recursively, as the job's ``/``; the host's own
            root by default, so that jobs find the host's programs and libraries.
        hidden: Host paths masked in the job's view: a directory reads as empty, a file as
            /dev/null. The manager adds its data directory to them.
        tmp_bytes: The size cap of each of the job's private tmpfs mounts (/tmp, /var/tmp,
            /dev/shm); their pages are charged to the job's memory cgroup as well.
    """

    root: str = "/"
    hidden: tuple[str, ...] = ()
    tmp_bytes: int = 256 << 20

    def to_json(self) -> str:
        """Encodes the world for the spawner's command line (worker/spawner_launch.py)."""
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Self:
        """Decodes what ``to_json`` encoded."""
        fields = json.loads(text)
        return cls(fields["root"], tuple(fields["hidden"]), fields["tmp_bytes"])


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
        world: The job's view of the host's files.
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
    world: JobWorld = JobWorld()
