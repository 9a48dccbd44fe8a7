"""Parses what the test VM printed on its serial console."""

from __future__ import annotations

import dataclasses
import re

from tools.vm.initramfs import INFO_MARKER, RESULT_MARKER

# The serial console may end lines with "\r\n" and the kernel may print between our words, so
# match the marker anywhere in a line and take "key=value" words up to the end of that line.
_RESULT_RE = re.compile(
    rf"{RESULT_MARKER} rc=(\d+) cgroup=(\S+)(?: reason=(.*?))?(?: uptime=\S+)?$", re.M
)
_INFO_RE = re.compile(rf"{INFO_MARKER} kernel=(\S+) cgroup=(\S+) controllers=(\S*)")


@dataclasses.dataclass(frozen=True, slots=True)
class GuestResult:
    """What the guest reported.

    Attributes:
        rc: The guest command's exit status; 125 when the guest's own setup failed.
        cgroup_fs: The filesystem type at the guest's /sys/fs/cgroup ("cgroup2fs" on v2).
        reason: Why setup failed, or "" when the command ran.
        kernel: The guest kernel's release, or "" if the guest died before printing it.
        controllers: The controllers in the guest's root cgroup.controllers.
    """

    rc: int
    cgroup_fs: str
    reason: str
    kernel: str
    controllers: tuple[str, ...]


def parse(console: str) -> GuestResult | None:
    """Returns the guest's result from its console output, or None if it printed none.

    The last result line wins: the guest prints exactly one, but a test could echo the marker.
    """
    results = _RESULT_RE.findall(console.replace("\r", ""))
    if not results:
        return None
    rc, cgroup_fs, reason = results[-1]
    infos = _INFO_RE.findall(console.replace("\r", ""))
    kernel, _, controllers = infos[0] if infos else ("", "", "")
    return GuestResult(
        rc=int(rc),
        cgroup_fs=cgroup_fs,
        reason=reason.strip(),
        kernel=kernel,
        controllers=tuple(c for c in controllers.split(",") if c),
    )
