"""A writer for the "newc" cpio format, the only archive format the kernel unpacks as initramfs.

The format is specified in the kernel's Documentation/driver-api/early-userspace/buffer-format.rst:
each entry is the magic "070701", thirteen 8-digit hex fields, the NUL-terminated name padded
to a multiple of 4 bytes, then the data padded to a multiple of 4 bytes. The archive ends with
an entry named "TRAILER!!!".
"""

from __future__ import annotations

import dataclasses
import io
import stat

_MAGIC = b"070701"
_TRAILER = "TRAILER!!!"


@dataclasses.dataclass(frozen=True, slots=True)
class Entry:
    """One file, directory, symlink or device node of the archive.

    Attributes:
        name: The path inside the archive, without a leading slash ("bin/busybox").
        mode: The full st_mode: file type bits plus permission bits.
        data: The file's bytes, or a symlink's target; empty for directories and nodes.
        rdev: (major, minor) of a device node; (0, 0) otherwise.
    """

    name: str
    mode: int
    data: bytes = b""
    rdev: tuple[int, int] = (0, 0)

    @classmethod
    def directory(cls, name: str, perm: int = 0o755) -> Entry:
        """Returns a directory entry."""
        return cls(name, stat.S_IFDIR | perm)

    @classmethod
    def file(cls, name: str, data: bytes, perm: int = 0o644) -> Entry:
        """Returns a regular file entry."""
        return cls(name, stat.S_IFREG | perm, data)

    @classmethod
    def symlink(cls, name: str, target: str) -> Entry:
        """Returns a symbolic link entry pointing at ``target``."""
        return cls(name, stat.S_IFLNK | 0o777, target.encode())

    @classmethod
    def char_device(cls, name: str, major: int, minor: int, perm: int = 0o600) -> Entry:
        """Returns a character device node entry."""
        return cls(name, stat.S_IFCHR | perm, rdev=(major, minor))


def _pad(length: int) -> bytes:
    return b"\0" * (-length % 4)


def _write_entry(out: io.BufferedIOBase, ino: int, entry: Entry) -> None:
    if entry.name.startswith("/") or not entry.name:
        raise ValueError(f"cpio entry name must be relative and non-empty, got {entry.name!r}")
    name = entry.name.encode() + b"\0"
    nlink = 2 if stat.S_ISDIR(entry.mode) else 1
    fields = (
        ino,
        entry.mode,
        0,  # uid: root
        0,  # gid: root
        nlink,
        0,  # mtime: fixed, so the same inputs give the same archive
        len(entry.data),
        0,  # devmajor of the archive's own filesystem: meaningless here
        0,  # devminor
        entry.rdev[0],
        entry.rdev[1],
        len(name),
        0,  # check: only used by the "070702" (crc) variant
    )
    header = _MAGIC + b"".join(b"%08X" % field for field in fields)
    out.write(header + name + _pad(len(header) + len(name)))
    out.write(entry.data + _pad(len(entry.data)))


def write_archive(out: io.BufferedIOBase, entries: list[Entry]) -> None:
    """Writes ``entries`` and the trailer as one newc archive.

    Parents must come before their children: the kernel creates each entry as it reads it.

    Args:
        out: A binary stream to write to (a file, or a gzip stream).
        entries: What the archive holds, in order.

    Raises:
        ValueError: An entry name is absolute, empty or repeated.
    """
    seen: set[str] = set()
    for ino, entry in enumerate(entries, start=1):
        if entry.name in seen:
            raise ValueError(f"cpio entry {entry.name!r} appears twice")
        seen.add(entry.name)
        _write_entry(out, ino, entry)
    _write_entry(out, len(entries) + 1, Entry(_TRAILER, 0))
