from __future__ import annotations

import io
import os
import stat
import subprocess
from pathlib import Path

import pytest

from tools.vm import newc


def _archive(entries: list[newc.Entry]) -> bytes:
    out = io.BytesIO()
    newc.write_archive(out, entries)
    return out.getvalue()


def test_header_layout_matches_the_kernel_format() -> None:
    data = _archive([newc.Entry.file("a", b"xyz", 0o600)])
    assert data[:6] == b"070701"
    fields = [int(data[6 + 8 * i : 14 + 8 * i], 16) for i in range(13)]
    ino, mode, _, _, nlink, _, size, _, _, _, _, namesize, _ = fields
    assert (ino, mode, nlink, size, namesize) == (1, stat.S_IFREG | 0o600, 1, 3, 2)
    # 110-byte header + "a\0" is padded to 112, then 3 data bytes padded to 4.
    assert data[110:112] == b"a\0"
    assert data[112:116] == b"xyz\0"
    assert data[116:122] == b"070701"
    assert b"TRAILER!!!\0" in data[116:]
    assert len(data) % 4 == 0


def test_busybox_cpio_extracts_what_was_written(tmp_path: Path) -> None:
    entries = [
        newc.Entry.directory("d", 0o750),
        newc.Entry.file("d/f", b"hello\n", 0o640),
        newc.Entry.file("d/odd-name.bin", bytes(range(7)), 0o755),
        newc.Entry.symlink("d/link", "f"),
    ]
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run(
        ["/bin/busybox", "cpio", "-i", "-d"], input=_archive(entries), cwd=out, check=True
    )
    assert stat.S_IMODE((out / "d").stat().st_mode) == 0o750
    assert (out / "d/f").read_bytes() == b"hello\n"
    assert stat.S_IMODE((out / "d/f").stat().st_mode) == 0o640
    assert (out / "d/odd-name.bin").read_bytes() == bytes(range(7))
    assert os.readlink(out / "d/link") == "f"


def test_device_node_carries_its_numbers_in_the_rdev_fields() -> None:
    data = _archive([newc.Entry.char_device("console", 5, 1)])
    fields = [int(data[6 + 8 * i : 14 + 8 * i], 16) for i in range(13)]
    mode, size, rdevmajor, rdevminor = fields[1], fields[6], fields[9], fields[10]
    assert stat.S_ISCHR(mode)
    assert (size, rdevmajor, rdevminor) == (0, 5, 1)


@pytest.mark.parametrize("name", ["", "/abs"])
def test_rejects_names_the_kernel_would_misplace(name: str) -> None:
    with pytest.raises(ValueError, match="relative and non-empty"):
        _archive([newc.Entry.file(name, b"")])


def test_rejects_a_repeated_name() -> None:
    with pytest.raises(ValueError, match="appears twice"):
        _archive([newc.Entry.directory("d"), newc.Entry.directory("d")])
