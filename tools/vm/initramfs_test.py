from __future__ import annotations

import gzip
import lzma
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tools.vm import initramfs

_COMMAND = initramfs.GuestCommand(
    argv=("/usr/bin/python3", "-c", "print('it ran')"),
    cwd="/some dir",
    env=(("PATH", "/usr/bin:/bin"), ("JOBWORKER_TEST_IO_DEVICE", "/dev/ram0")),
    timeout_s=900,
)


def _kernel_dir(tmp_path: Path, load: str, files: dict[str, bytes]) -> Path:
    (tmp_path / "modules").mkdir()
    (tmp_path / "modules.load").write_text(load)
    for name, data in files.items():
        (tmp_path / "modules" / name).write_bytes(data)
    return tmp_path


def test_read_load_list_keeps_order_params_and_missing_modules(tmp_path: Path) -> None:
    kernel = _kernel_dir(
        tmp_path, "virtio\n\n9p\nbrd rd_nr=1 rd_size=65536\n", {"virtio.ko": b"", "brd.ko.xz": b""}
    )
    assert initramfs.read_load_list(kernel) == [
        initramfs.Module("virtio", kernel / "modules/virtio.ko"),
        initramfs.Module("9p", None),
        initramfs.Module("brd", kernel / "modules/brd.ko.xz", ("rd_nr=1", "rd_size=65536")),
    ]


def test_init_loads_modules_in_order_and_skips_built_in_ones() -> None:
    modules = [
        initramfs.Module("virtio", Path("virtio.ko")),
        initramfs.Module("netfs", None),
        initramfs.Module("brd", Path("brd.ko"), ("rd_nr=1",)),
    ]
    init = initramfs.render_init(modules, _COMMAND)
    virtio = init.index("insmod /modules/virtio.ko || fail")
    brd = init.index("insmod /modules/brd.ko rd_nr=1 || fail")
    assert virtio < init.index("module netfs: no file") < brd < init.index("mount -t 9p")
    assert "insmod /modules/netfs.ko" not in init


def test_init_quotes_the_command_and_ends_with_result_and_poweroff() -> None:
    init = initramfs.render_init([], _COMMAND)
    assert "--chdir='/some dir'" in init
    assert "/usr/bin/python3 -c 'print('\"'\"'it ran'\"'\"')'" in init
    assert "JOBWORKER_TEST_IO_DEVICE=/dev/ram0" in init
    assert init.rstrip().endswith("poweroff -f")
    assert init.index("mount -t cgroup2") < init.index("chroot . /usr/bin/env -i")
    assert "timeout -s KILL 930 \\\n    timeout -s INT 900 \\\n    chroot ." in init


def test_init_is_valid_shell() -> None:
    init = initramfs.render_init([initramfs.Module("brd", Path("brd.ko"), ("a=1",))], _COMMAND)
    subprocess.run(["/bin/busybox", "sh", "-n", "-c", init], check=True)


def test_is_static_elf_tells_busybox_static_from_a_dynamic_binary(tmp_path: Path) -> None:
    assert initramfs.is_static_elf(Path("/bin/busybox"))
    assert not initramfs.is_static_elf(Path(os.path.realpath(sys.executable)))
    script = tmp_path / "script"
    script.write_text("#!/bin/sh\n")
    assert not initramfs.is_static_elf(script)


def test_build_writes_an_archive_with_init_busybox_and_decompressed_modules(
    tmp_path: Path,
) -> None:
    (tmp_path / "plain.ko").write_bytes(b"plain module")
    (tmp_path / "packed.ko.xz").write_bytes(lzma.compress(b"packed module"))
    modules = [
        initramfs.Module("plain", tmp_path / "plain.ko"),
        initramfs.Module("packed", tmp_path / "packed.ko.xz"),
        initramfs.Module("builtin", None),
    ]
    image = tmp_path / "initramfs.cpio.gz"
    initramfs.build(image, busybox=Path("/bin/busybox"), modules=modules, command=_COMMAND)
    out = tmp_path / "out"
    out.mkdir()
    archive = gzip.decompress(image.read_bytes())
    subprocess.run(["/bin/busybox", "cpio", "-i", "-d"], input=archive, cwd=out, check=True)
    assert (out / "modules/plain.ko").read_bytes() == b"plain module"
    assert (out / "modules/packed.ko").read_bytes() == b"packed module"
    assert sorted(p.name for p in (out / "modules").iterdir()) == ["packed.ko", "plain.ko"]
    assert (out / "init").read_text().startswith("#!/bin/busybox sh\n")
    assert os.access(out / "init", os.X_OK)
    assert (out / "bin/busybox").read_bytes() == Path("/bin/busybox").read_bytes()


def test_build_refuses_a_dynamic_busybox(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="busybox-static"):
        initramfs.build(
            tmp_path / "x",
            busybox=Path(os.path.realpath(sys.executable)),
            modules=[],
            command=_COMMAND,
        )


def test_build_refuses_an_unknown_module_format(tmp_path: Path) -> None:
    (tmp_path / "m.ko.zst").write_bytes(b"")
    with pytest.raises(ValueError, match=r"neither \.ko nor \.ko\.xz"):
        initramfs.build(
            tmp_path / "x",
            busybox=Path("/bin/busybox"),
            modules=[initramfs.Module("m", tmp_path / "m.ko.zst")],
            command=_COMMAND,
        )
