"""Which block devices to throttle: the whole disks behind a set of paths.

The IO controllers throttle per device, named MAJ:MIN. ``stat().st_dev`` of a file system is
often a partition, which io.max refuses (Documentation/admin-guide/cgroup-v2.rst, "IO
Interface Files": limits apply to whole devices), so a partition is mapped to its disk
through sysfs. File systems with no block device behind them (overlay, tmpfs, 9p, nfs: major
0) cannot be throttled and are skipped.
"""

from __future__ import annotations

import dataclasses
import os
import stat
from collections.abc import Iterable
from pathlib import Path

from worker.errors import CgroupError

SYS_DEV_BLOCK = Path("/sys/dev/block")


@dataclasses.dataclass(frozen=True, slots=True, order=True)
class BlockDevice:
    """A block device number, as the cgroup IO files spell it ("MAJ:MIN")."""

    major: int
    minor: int

    def __str__(self) -> str:
        return f"{self.major}:{self.minor}"

    @classmethod
    def parse(cls, text: str) -> BlockDevice:
        """Parses "MAJ:MIN" as in sysfs "dev" files."""
        major, _, minor = text.strip().partition(":")
        try:
            return cls(int(major), int(minor))
        except ValueError as err:
            raise CgroupError(f"not a device number: {text.strip()!r}") from err


def whole_disk(dev: BlockDevice, *, sys_dev_block: Path = SYS_DEV_BLOCK) -> BlockDevice | None:
    """Returns the whole disk of ``dev``, or None when it is not a real block device.

    /sys/dev/block/MAJ:MIN links to the device's sysfs dir; a partition's dir holds a
    ``partition`` file and sits inside its disk's dir, whose ``dev`` file names the disk
    (Documentation/ABI/stable/sysfs-block).
    """
    if dev.major == 0:  # Anonymous devices: tmpfs, overlay, 9p, nfs, btrfs subvolumes.
        return None
    node = sys_dev_block / str(dev)
    if not node.exists():
        return None
    if not (node / "partition").exists():
        return dev
    disk_dir = node.resolve().parent
    try:
        return BlockDevice.parse((disk_dir / "dev").read_text())
    except OSError as err:
        raise CgroupError(f"cannot find the disk of partition {dev}: {err.strerror}") from err


def disks_behind(
    paths: Iterable[str], *, sys_dev_block: Path = SYS_DEV_BLOCK
) -> tuple[BlockDevice, ...]:
    """Returns the sorted, distinct whole disks behind ``paths``.

    A path naming a block device node (for example /dev/ram0) stands for that device; any
    other path stands for the file system it lives on.

    Raises:
        CgroupError: A path does not exist.
    """
    found = set()
    for path in paths:
        try:
            st = os.stat(path)
        except OSError as err:
            raise CgroupError(f"io path {path}: {err.strerror}") from err
        number = st.st_rdev if stat.S_ISBLK(st.st_mode) else st.st_dev
        dev = BlockDevice(os.major(number), os.minor(number))
        disk = whole_disk(dev, sys_dev_block=sys_dev_block)
        if disk is not None:
            found.add(disk)
    return tuple(sorted(found))
