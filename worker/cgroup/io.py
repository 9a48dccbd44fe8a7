"""The IO controllers: bandwidth limits per disk and bytes moved, on v1 (blkio) and v2 (io).

Both versions throttle per whole disk, named MAJ:MIN (blockdev.py), in bytes per second:
Documentation/admin-guide/cgroup-v1/blkio-controller.rst ("Throttling/Upper limit policy")
and cgroup-v2.rst ("IO Interface Files").
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path

from worker.cgroup import files
from worker.cgroup.blockdev import BlockDevice
from worker.errors import CgroupError
from worker.limits import Limits

# The v2 io.max key of each direction's bandwidth limit.
_V2_KEYS = {"read": "rbps", "write": "wbps"}


@dataclasses.dataclass(frozen=True, slots=True)
class IoUsage:
    """What the IO controllers count for a job, summed over devices.

    Attributes:
        read_bytes: Bytes read from block devices.
        write_bytes: Bytes written to block devices.
    """

    read_bytes: int
    write_bytes: int


def _rates(limits: Limits, devices: tuple[BlockDevice, ...]) -> dict[str, int]:
    """Returns the set bandwidth limits by direction ("read", "write").

    Raises:
        CgroupError: A limit is set but there is no disk to throttle.
    """
    rates = {
        direction: bps
        for direction, bps in (("read", limits.io_read_bps), ("write", limits.io_write_bps))
        if bps is not None
    }
    if rates and not devices:
        raise CgroupError(f"io {' and '.join(rates)} limit set, but no block device to throttle")
    return rates


def write_v1(limits: Limits, dirs: Mapping[str, Path], devices: tuple[BlockDevice, ...]) -> None:
    """Writes a blkio.throttle rule per set limit and disk, as "MAJ:MIN bytes_per_second".

    Args:
        limits: The job's limits; only ``io_read_bps`` and ``io_write_bps`` are read.
        dirs: The job's directory in each v1 hierarchy, keyed by controller name.
        devices: The whole disks to throttle.

    Raises:
        CgroupError: A limit is set but no disk given, or the kernel refused a rule.
    """
    for direction, bps in _rates(limits, devices).items():
        for dev in devices:
            files.write(dirs["blkio"] / f"blkio.throttle.{direction}_bps_device", f"{dev} {bps}")


def write_v2(limits: Limits, path: Path, devices: tuple[BlockDevice, ...]) -> None:
    """Writes one io.max line per disk, "MAJ:MIN rbps=N wbps=N", with the set limits.

    Raises:
        CgroupError: A limit is set but no disk given, or the kernel refused a line.
    """
    rates = _rates(limits, devices)
    if not rates:
        return
    keys = " ".join(f"{_V2_KEYS[direction]}={bps}" for direction, bps in rates.items())
    for dev in devices:
        files.write(path / "io.max", f"{dev} {keys}")


def read_v1(dirs: Mapping[str, Path]) -> IoUsage:
    """Reads blkio.throttle.io_service_bytes from the job's v1 blkio directory.

    Only IO that the throttle layer saw is counted; on v1 buffered writeback is charged to the
    flusher, not to the job.

    Raises:
        CgroupError: The file could not be read.
    """
    read_bytes = write_bytes = 0
    # Lines are "MAJ:MIN Op bytes" plus a final "Total bytes".
    for line in files.read(dirs["blkio"] / "blkio.throttle.io_service_bytes").splitlines():
        match line.split():
            case [_, "Read", count]:
                read_bytes += int(count)
            case [_, "Write", count]:
                write_bytes += int(count)
    return IoUsage(read_bytes=read_bytes, write_bytes=write_bytes)


def read_v2(path: Path) -> IoUsage:
    """Reads io.stat, whose lines are "MAJ:MIN rbytes=N wbytes=N rios=N ...", one per device.

    Raises:
        CgroupError: io.stat could not be read.
    """
    read_bytes = write_bytes = 0
    for line in files.read(path / "io.stat").splitlines():
        for field in line.split()[1:]:
            key, _, value = field.partition("=")
            if key == "rbytes":
                read_bytes += int(value)
            elif key == "wbytes":
                write_bytes += int(value)
    return IoUsage(read_bytes=read_bytes, write_bytes=write_bytes)
