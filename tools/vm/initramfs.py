"""Builds the test VM's initramfs: static busybox as PID 1, kernel modules, and the /init script.

/init loads the virtio, ext4, 9p and brd modules, mounts the host's root read-only over 9p with
a tmpfs overlay on top (so pytest, hypothesis and the tests can write anywhere, in guest memory
only), mounts proc, sysfs, devtmpfs, cgroup2 and the ext4 scratch disk (at SCRATCH_DIR) into it,
moves it to / and runs the guest command there. It then prints one RESULT_MARKER line and
powers the VM off.
"""

from __future__ import annotations

import dataclasses
import gzip
import lzma
import shlex
import struct
from pathlib import Path

from tools.vm import newc

# The line the guest prints last; tools/vm/result.py parses it.
RESULT_MARKER = "JOBWORKER-VM-RESULT"
# The line the guest prints once its mounts are up, before it runs the command.
INFO_MARKER = "JOBWORKER-VM-INFO"
# The scratch disk (the first virtio disk, see tools/vm/qemu.py), an ext4 for the tests' TMPDIR:
# on tmpfs, POSIX_FADV_DONTNEED does not evict and RWF_NOWAIT fails with EOPNOTSUPP. It is
# mounted below /tmp, not on it: the host's /tmp may hold the Bazel output base or the work
# tree (CI clones anywhere), which must stay visible to the guest.
SCRATCH_DEVICE = "/dev/vda"
SCRATCH_DIR = "/tmp/jobworker-vm-scratch"
# Where the guest mounts the host's root, the tmpfs that holds the overlay's writable layer,
# and the overlay that becomes the command's root.
_HOST = "/host"
_RW = "/rw"
_NEWROOT = "/newroot"
# 9p moves file data in messages of at most msize bytes. 512 KiB keeps reads of the host's
# Python tree from being split into thousands of tiny round trips (the 8 KiB default of older
# kernels made interpreter start-up several times slower under TCG).
_9P_OPTIONS = "trans=virtio,version=9p2000.L,ro,msize=524288,cache=loose"
# How long after the SIGINT of the guest's timeout the command is SIGKILLed.
_KILL_GRACE_S = 30
_ELF_MAGIC = b"\x7fELF"
_PT_INTERP = 3


@dataclasses.dataclass(frozen=True, slots=True)
class Module:
    """A kernel module to insmod, in load order.

    Attributes:
        name: The module's name ("9pnet_virtio").
        path: Its .ko or .ko.xz file, or None when the kernel package has none (built in).
        params: Module parameters, each "key=value".
    """

    name: str
    path: Path | None
    params: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class GuestCommand:
    """What the guest runs, chrooted into the host's root (seen read-only, with a tmpfs overlay).

    Attributes:
        argv: The program and its arguments, as absolute host paths.
        cwd: The directory to run it in.
        env: The complete environment; nothing else is inherited.
        timeout_s: The guest sends the command SIGINT after this many seconds (pytest then
            prints its summary and durations), SIGKILL _KILL_GRACE_S later, and still prints
            the kernel log and the result line.
    """

    argv: tuple[str, ...]
    cwd: str
    env: tuple[tuple[str, str], ...]
    timeout_s: int


def read_load_list(kernel_dir: Path) -> list[Module]:
    """Reads the module load order that //tools/vm:kernel.bzl wrote beside the kernel.

    Args:
        kernel_dir: The kernel repository's directory, holding modules.load and modules/.

    Returns:
        The modules in load order; a module without a file has path None.

    Raises:
        FileNotFoundError: kernel_dir has no modules.load.
    """
    modules = []
    for line in (kernel_dir / "modules.load").read_text().splitlines():
        if not line.strip():
            continue
        name, *params = line.split()
        candidates = [kernel_dir / "modules" / f"{name}{ext}" for ext in (".ko", ".ko.xz")]
        path = next((c for c in candidates if c.exists()), None)
        modules.append(Module(name, path, tuple(params)))
    return modules


def _module_bytes(path: Path) -> bytes:
    # busybox insmod takes a plain ELF object; Debian ships modules uncompressed up to
    # bookworm and xz-compressed after it.
    if path.name.endswith(".ko"):
        return path.read_bytes()
    if path.name.endswith(".ko.xz"):
        return lzma.decompress(path.read_bytes())
    raise ValueError(f"kernel module {path} is neither .ko nor .ko.xz")


def is_static_elf(path: Path) -> bool:
    """Returns True if ``path`` is a 64-bit little-endian ELF without a program interpreter.

    A dynamically linked busybox would need the host's ld.so inside the initramfs.
    """
    data = path.read_bytes()
    if data[:4] != _ELF_MAGIC or data[4] != 2 or data[5] != 1:
        return False
    phoff = struct.unpack_from("<Q", data, 0x20)[0]
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    return all(
        struct.unpack_from("<I", data, phoff + i * phentsize)[0] != _PT_INTERP for i in range(phnum)
    )


def _q(word: str) -> str:
    return shlex.quote(word)


def render_init(modules: list[Module], command: GuestCommand) -> str:
    """Returns the text of /init, a busybox sh script that runs ``command`` and powers off.

    Every setup step that fails prints a RESULT_MARKER line with rc=125 and a reason, so the
    host reports what broke instead of waiting for a timeout.
    """
    lines = [
        "#!/bin/busybox sh",
        "# PID 1 of the jobworker test VM, generated by tools/vm/initramfs.py.",
        "/bin/busybox --install -s /bin",
        "export PATH=/bin",
        "fail() {",
        f'    echo "{RESULT_MARKER} rc=125 cgroup=unknown reason=$*"',
        "    poweroff -f",
        "}",
        "mount -t proc proc /proc || fail mount proc",
        "mount -t sysfs sysfs /sys || fail mount sysfs",
        "mount -t devtmpfs devtmpfs /dev || fail mount devtmpfs",
    ]
    for module in modules:
        if module.path is None:
            lines.append(f"echo 'module {module.name}: no file in the kernel package, built in'")
            continue
        insmod = " ".join(["insmod", f"/modules/{module.name}.ko", *map(_q, module.params)])
        lines.append(f"{insmod} || fail insmod {module.name}")
    lines += [
        f"mount -t 9p -o {_9P_OPTIONS} host {_HOST} || fail mount 9p host root",
        f"mount -t tmpfs -o mode=0755 rw {_RW} || fail mount tmpfs for overlay",
        f"mkdir {_RW}/upper {_RW}/work",
        f"mount -t overlay -o lowerdir={_HOST},upperdir={_RW}/upper,workdir={_RW}/work"
        f" overlay {_NEWROOT} || fail mount overlay",
        f"mount -t proc proc {_NEWROOT}/proc || fail mount guest proc",
        f"mount -t sysfs sysfs {_NEWROOT}/sys || fail mount guest sysfs",
        f"mount -t cgroup2 cgroup2 {_NEWROOT}/sys/fs/cgroup || fail mount cgroup2",
        f"mount -t devtmpfs devtmpfs {_NEWROOT}/dev || fail mount guest devtmpfs",
        f"mkdir -p {_NEWROOT}/dev/pts {_NEWROOT}/dev/shm",
        f"mount -t devpts devpts {_NEWROOT}/dev/pts || fail mount devpts",
        f"mount -t tmpfs -o mode=1777 shm {_NEWROOT}/dev/shm || fail mount /dev/shm",
        f"mkdir -p {_NEWROOT}{SCRATCH_DIR} || fail make the scratch mount point",
        f"mount -t ext4 {SCRATCH_DEVICE} {_NEWROOT}{SCRATCH_DIR} || fail mount the scratch disk",
        f"chmod 1777 {_NEWROOT}{SCRATCH_DIR}",
        "ip link set lo up || fail bring up lo",
        # Like switch_root(8): the overlay becomes "/" so that pivot_root(2) works for the
        # sandbox tests (it refuses to pivot away from the initramfs's rootfs).
        f"cd {_NEWROOT} && mount --move . / || fail move the overlay to /",
        # The host's GNU stat names the filesystem type; busybox's says UNKNOWN for cgroup2.
        "cgroup=$(chroot . /usr/bin/stat -f -c %T /sys/fs/cgroup)",
        f'echo "{INFO_MARKER} kernel=$(uname -r) cgroup=$cgroup'
        ' controllers=$(tr " " , < sys/fs/cgroup/cgroup.controllers)'
        ' uptime=$(cut -d" " -f1 /proc/uptime)"',
        # busybox timeout(1) execs the command in its own pid, so the two nest: SIGINT first,
        # which pytest turns into an "Interrupted" summary, then SIGKILL if that hangs too.
        "start=$(cut -d. -f1 /proc/uptime)",
        f"timeout -s KILL {command.timeout_s + _KILL_GRACE_S} \\",
        f"    timeout -s INT {command.timeout_s} \\",
        "    chroot . /usr/bin/env -i --chdir=" + _q(command.cwd) + " \\",
        *(f"        {_q(f'{key}={value}')} \\" for key, value in command.env),
        "        " + " ".join(map(_q, command.argv)),
        "rc=$?",
        f"if [ $(($(cut -d. -f1 /proc/uptime) - start)) -ge {command.timeout_s} ]; then",
        f'    echo "the command was stopped at the {command.timeout_s} s timeout (rc $rc)"',
        "fi",
        # The console shows only critical kernel messages (see tools/vm/qemu.py), so print the
        # kernel log when the command failed: OOM kills, hung tasks and warnings are there.
        'if [ "$rc" != 0 ]; then',
        '    echo "--- guest kernel log, last 60 lines ---"',
        "    dmesg | tail -n 60",
        "fi",
        f'echo "{RESULT_MARKER} rc=$rc cgroup=$cgroup uptime=$(cut -d" " -f1 /proc/uptime)"',
        "sync",
        "poweroff -f",
    ]
    return "\n".join(lines) + "\n"


def build(out: Path, *, busybox: Path, modules: list[Module], command: GuestCommand) -> None:
    """Writes the gzip-compressed newc initramfs to ``out``.

    Args:
        out: The file to write.
        busybox: A statically linked busybox binary; it becomes /bin/busybox and runs /init.
        modules: The modules /init loads, in order.
        command: What the guest runs once the host's root is mounted.

    Raises:
        ValueError: busybox is not a static binary, or a module file has an unknown format.
    """
    if not is_static_elf(busybox):
        raise ValueError(f"{busybox} is not a static x86-64 binary; install busybox-static")
    entries = [newc.Entry.directory(d) for d in ("bin", "dev", "proc", "sys", "modules")]
    entries += [newc.Entry.directory(d[1:]) for d in (_HOST, _RW, _NEWROOT)]
    # The kernel opens /dev/console for PID 1's stdio before /init can mount devtmpfs.
    entries.append(newc.Entry.char_device("dev/console", 5, 1))
    entries.append(newc.Entry.file("bin/busybox", busybox.read_bytes(), 0o755))
    entries.append(newc.Entry.file("init", render_init(modules, command).encode(), 0o755))
    entries += [
        newc.Entry.file(f"modules/{m.name}.ko", _module_bytes(m.path))
        for m in modules
        if m.path is not None
    ]
    with out.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as archive:
        newc.write_archive(archive, entries)
