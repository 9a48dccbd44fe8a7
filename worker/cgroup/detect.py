"""Finding out how cgroups are mounted, and opening the driver for that mode.

This is the only place that decides between v1 and v2, like containerd's cgroups.Mode().
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from worker.cgroup import blockdev, files, v1, v2
from worker.cgroup.base import CgroupDriver, CgroupMode
from worker.errors import CgroupError

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_SELF_CGROUP = Path("/proc/self/cgroup")


def detect_mode(root: Path = CGROUP_ROOT) -> CgroupMode:
    """Returns how cgroups are mounted at ``root``.

    ``cgroup.controllers`` exists only in cgroup2 directories
    (Documentation/admin-guide/cgroup-v2.rst), so: at the root it means unified; in
    ``<root>/unified`` (systemd's hybrid layout) it means hybrid, where the controllers are
    still on v1; otherwise any v1 hierarchy below the root means legacy. containerd tests the
    file system magic of the same paths; testing files keeps fake trees usable in tests.

    Raises:
        CgroupError: Nothing at ``root`` looks like a cgroup mount.
    """
    if (root / "cgroup.controllers").is_file():
        return CgroupMode.UNIFIED
    if (root / "unified" / "cgroup.controllers").is_file():
        return CgroupMode.HYBRID
    try:
        if any((child / "cgroup.procs").is_file() for child in root.iterdir()):
            return CgroupMode.LEGACY
    except OSError as err:
        raise CgroupError(f"cannot list cgroup mounts at {root}: {err.strerror}") from err
    raise CgroupError(f"no cgroup v1 or v2 file system is mounted at {root}")


def parse_proc_cgroup(text: str) -> dict[str, str]:
    """Parses /proc/<pid>/cgroup into {controller: path}.

    Each line is "hierarchy-ID:controller-list:path" (cgroups(7)). The v2 line has an empty
    controller list and is returned under the key "". Named v1 hierarchies
    ("name=systemd") are kept under their full name.
    """
    own = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if not controllers:
            own[""] = path
        for controller in controllers.split(","):
            if controller:
                own[controller] = path
    return own


def open_driver(
    *,
    root: Path = CGROUP_ROOT,
    io_paths: Sequence[str] = ("/",),
    proc_self_cgroup: Path = PROC_SELF_CGROUP,
    sys_dev_block: Path = blockdev.SYS_DEV_BLOCK,
) -> CgroupDriver:
    """Detects the mode, checks the controllers and prepares the jobworker parent(s).

    Call it before starting the spawner: on v2 it moves this process into its supervisor
    leaf, and the spawner must inherit that leaf. Calling it again in the same process is
    safe and reuses the same layout.

    Args:
        root: Where cgroups are mounted (cgroup2 itself on unified hosts).
        io_paths: Paths whose disks the IO limits apply to; a file system path or a block
            device node.
        proc_self_cgroup: This process's cgroup membership file (injectable for tests).
        sys_dev_block: The sysfs directory of block device numbers (injectable for tests).

    Returns:
        A V2Driver on unified hosts, a V1Driver on legacy and hybrid hosts.

    Raises:
        CgroupError: No cgroup mount, a missing controller (all are named), an io path that
            does not exist, or a parent directory or controller the kernel refused.
    """
    mode = detect_mode(root)
    own = parse_proc_cgroup(files.read(proc_self_cgroup))
    devices = blockdev.disks_behind(io_paths, sys_dev_block=sys_dev_block)
    if mode is CgroupMode.UNIFIED:
        if "" not in own:
            raise CgroupError(f"{proc_self_cgroup} has no cgroup v2 (0::) line")
        return v2.open_v2_driver(root, own[""], devices)
    return v1.open_v1_driver(mode, root, _v1_only(own), devices)


def _v1_only(own: Mapping[str, str]) -> dict[str, str]:
    return {controller: path for controller, path in own.items() if controller}
