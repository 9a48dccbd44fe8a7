"""Boots the test VM under qemu, streams its serial console, and never leaves qemu running."""

from __future__ import annotations

import codecs
import dataclasses
import os
import selectors
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

# TCG, not KVM: /dev/kvm exists on these machines but a KVM guest hangs at boot (measured).
# "-cpu max" gives the guest every feature TCG emulates; "-no-reboot" turns the guest's
# reboot or panic into qemu exiting, so a crashed guest ends the run instead of looping.
# "-nic none": the guest needs no network, and without a NIC the BIOS skips the iPXE ROM.
_MACHINE_FLAGS = ("-accel", "tcg", "-cpu", "max", "-nographic", "-no-reboot", "-nic", "none")
# The host's root, shared read-only. multidevs=remap gives files of the host's other mounts
# (e.g. /root/.cache, where Bazel keeps runfiles) distinct inode numbers in the guest.
_VIRTFS = "local,path=/,mount_tag=host,security_model=passthrough,readonly=on,multidevs=remap"
# console=ttyS0: the serial port is qemu's stdout. panic=-1: reboot (so qemu exits) at once on
# a panic, e.g. if /init dies. loglevel=2: only critical kernel messages (panics) reach the
# console; the OOM reports the tests provoke would split pytest's lines. /init prints the
# kernel log when the tests fail.
_KERNEL_CMDLINE = "console=ttyS0 panic=-1 loglevel=2"
_READ_CHUNK = 65536


@dataclasses.dataclass(frozen=True, slots=True)
class VmConfig:
    """How to boot the VM.

    Attributes:
        kernel: The bzImage (vmlinuz) to boot.
        initramfs: The gzip newc archive with /init.
        scratch_disk: A raw disk image, the guest's first virtio disk (/dev/vda).
        cpus: Virtual CPUs.
        memory_mib: Guest memory.
        timeout_s: qemu is killed this long after it starts.
    """

    kernel: Path
    initramfs: Path
    scratch_disk: Path
    cpus: int = 2
    memory_mib: int = 1024
    timeout_s: float = 1200.0


@dataclasses.dataclass(frozen=True, slots=True)
class VmRun:
    """What a boot produced.

    Attributes:
        console: Everything the guest printed, decoded as UTF-8 with replacement.
        exit_code: qemu's exit status (negative: killed by that signal).
        timed_out: True if the harness killed qemu at the timeout.
        seconds: Wall time from start to exit.
    """

    console: str
    exit_code: int
    timed_out: bool
    seconds: float


def find_qemu() -> str:
    """Returns the qemu-system-x86_64 path.

    Raises:
        FileNotFoundError: It is not installed (Debian package qemu-system-x86).
    """
    qemu = shutil.which("qemu-system-x86_64")
    if qemu is None:
        raise FileNotFoundError(
            "qemu-system-x86_64 is not on PATH; install the Debian package qemu-system-x86"
        )
    return qemu


def argv(qemu: str, config: VmConfig) -> list[str]:
    """Returns the command line that boots ``config``.

    setpriv(1) sets PR_SET_PDEATHSIG before exec'ing qemu, so the kernel SIGKILLs qemu if the
    harness dies (Bazel's timeout, Ctrl-C): prctl(2) "the signal that the calling process will
    get when its parent dies", kept across execve of a non-setuid binary.
    """
    return [
        "setpriv",
        "--pdeathsig",
        "KILL",
        qemu,
        *_MACHINE_FLAGS,
        "-smp",
        str(config.cpus),
        "-m",
        str(config.memory_mib),
        "-virtfs",
        _VIRTFS,
        # cache=unsafe: the image is thrown away after the run, so the guest's flushes need
        # not reach the host's disk.
        "-drive",
        f"file={config.scratch_disk},format=raw,if=virtio,cache=unsafe",
        "-kernel",
        str(config.kernel),
        "-initrd",
        str(config.initramfs),
        "-append",
        _KERNEL_CMDLINE,
    ]


def boot(qemu: str, config: VmConfig, echo: Callable[[str], None]) -> VmRun:
    """Boots the VM, passes its console output to ``echo`` as it comes, and waits for it.

    qemu is killed at the timeout, and in any case before this returns or raises.

    Args:
        qemu: The qemu-system-x86_64 binary.
        config: What to boot.
        echo: Called with each decoded chunk of console output.

    Returns:
        The console output and how qemu ended.
    """
    start = time.monotonic()
    deadline = start + config.timeout_s
    chunks: list[bytes] = []
    timed_out = False
    # stdin is /dev/null: with -nographic qemu multiplexes its monitor onto stdio and would
    # otherwise put the test's terminal into raw mode.
    proc = subprocess.Popen(
        argv(qemu, config),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert proc.stdout is not None  # stdout=PIPE guarantees it; this narrows the type.
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(proc.stdout, selectors.EVENT_READ)
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    timed_out = True
                    break
                if not selector.select(timeout=remaining):
                    continue
                # os.read returns what is there (at most _READ_CHUNK) without waiting for more.
                chunk = os.read(proc.stdout.fileno(), _READ_CHUNK)
                if not chunk:
                    break
                chunks.append(chunk)
                echo(decoder.decode(chunk))
    finally:
        if proc.poll() is None:
            proc.kill()
        exit_code = proc.wait()
        proc.stdout.close()
    return VmRun(
        console=b"".join(chunks).decode(errors="replace"),
        exit_code=exit_code,
        timed_out=timed_out,
        seconds=time.monotonic() - start,
    )
