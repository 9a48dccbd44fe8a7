"""The seccomp filter every job runs under: a deny list, as Docker's default profile keeps one.

Docker's default profile is the most widely trusted public list of what a container never
needs: new namespaces and mounts, BPF, perf events, userfaultfd, the kernel keyring, kexec and
modules, file handles, swap, reboot, io_uring and the like. Most of them also need a
capability a job does not have; the filter still denies them, because a kernel bug behind a
capability check is the one it would exploit. A denied call fails with EPERM instead of
killing the job, so a program that probes for a feature degrades gracefully.

The filter is classic BPF (Documentation/userspace-api/seccomp_filter.rst), assembled here
rather than by libseccomp: it reads the architecture first and refuses every call made in
another one (an i386 ``int 0x80``, or an x32 call, which x86_64 numbers with bit 30 set), so
no syscall table but ours can reach the kernel. clone is allowed only without namespace
flags; clone3, whose flags sit in memory a filter cannot read, fails with ENOSYS, so that
glibc falls back to clone (as Docker's profile does). ptrace stays allowed: the PID namespace
leaves a job only its own processes to trace, and jobinit is not dumpable.

The sandbox installs it after no_new_privs, as the job's user, right before it execs jobinit
(worker/sandbox.py): jobinit and the program run under it from their first instruction.
"""

from __future__ import annotations

import ctypes
import dataclasses
import errno
import platform
import struct

# <linux/filter.h> and <linux/bpf_common.h>: the instructions used here.
_LD_W_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS: A = the 32-bit word at offset k.
_JEQ = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
_JGE = 0x35  # BPF_JMP | BPF_JGE | BPF_K
_JSET = 0x45  # BPF_JMP | BPF_JSET | BPF_K
_RET = 0x06  # BPF_RET | BPF_K
# <linux/seccomp.h>: struct seccomp_data {int nr; __u32 arch; __u64 ip; __u64 args[6];}.
_NR, _ARCH, _ARG0_LOW = 0, 4, 16  # Little-endian: the low half of args[0] comes first.
_ALLOW = 0x7FFF0000  # SECCOMP_RET_ALLOW
_ERRNO = 0x00050000  # SECCOMP_RET_ERRNO | errno
_X32_BIT = 0x40000000  # __X32_SYSCALL_BIT
# CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET (<linux/sched.h>). CLONE_NEWTIME
# (0x80) only exists for unshare and clone3: in clone's flags that byte is the exit signal.
_CLONE_NAMESPACES = 0x7E020000
_INSTRUCTION = struct.Struct("=HBBI")  # struct sock_filter {u16 code; u8 jt; u8 jf; u32 k}

_DENIED_NAMES = [
    "acct",
    "add_key",
    "bpf",
    "delete_module",
    "finit_module",
    "fsconfig",
    "fsmount",
    "fsopen",
    "fspick",
    "init_module",
    "io_uring_enter",
    "io_uring_register",
    "io_uring_setup",
    "kexec_file_load",
    "kexec_load",
    "keyctl",
    "lookup_dcookie",
    "mount",
    "mount_setattr",
    "move_mount",
    "open_by_handle_at",
    "open_tree",
    "perf_event_open",
    "pivot_root",
    "quotactl",
    "reboot",
    "request_key",
    "setns",
    "swapoff",
    "swapon",
    "syslog",
    "umount2",
    "unshare",
    "userfaultfd",
]


# Each call's number on (x86_64, aarch64): arch/x86/entry/syscalls/syscall_64.tbl and
# include/uapi/asm-generic/unistd.h in the kernel's source.
_NUMBERS = {
    "acct": (163, 89),
    "add_key": (248, 217),
    "bpf": (321, 280),
    "clone": (56, 220),
    "clone3": (435, 435),
    "delete_module": (176, 106),
    "finit_module": (313, 273),
    "fsconfig": (431, 431),
    "fsmount": (432, 432),
    "fsopen": (430, 430),
    "fspick": (433, 433),
    "init_module": (175, 105),
    "io_uring_enter": (426, 426),
    "io_uring_register": (427, 427),
    "io_uring_setup": (425, 425),
    "kexec_file_load": (320, 294),
    "kexec_load": (246, 104),
    "keyctl": (250, 219),
    "lookup_dcookie": (212, 18),
    "mount": (165, 40),
    "mount_setattr": (442, 442),
    "move_mount": (429, 429),
    "open_by_handle_at": (304, 265),
    "open_tree": (428, 428),
    "perf_event_open": (298, 241),
    "pivot_root": (155, 41),
    "quotactl": (179, 60),
    "reboot": (169, 142),
    "request_key": (249, 218),
    "setns": (308, 268),
    "swapoff": (168, 225),
    "swapon": (167, 224),
    "syslog": (103, 116),
    "umount2": (166, 39),
    "unshare": (272, 97),
    "userfaultfd": (323, 282),
}


@dataclasses.dataclass(frozen=True, slots=True)
class _Arch:
    """One architecture: its audit number, whether it has x32 calls, its column in _NUMBERS."""

    audit: int  # AUDIT_ARCH_* from <linux/audit.h>.
    has_x32: bool
    column: int

    def number(self, name: str) -> int:
        """Returns the number of the system call ``name`` here."""
        return _NUMBERS[name][self.column]


_ARCHES = {
    "x86_64": _Arch(audit=0xC000003E, has_x32=True, column=0),
    "aarch64": _Arch(audit=0xC00000B7, has_x32=False, column=1),
}


def denied_syscalls() -> tuple[str, ...]:
    """The names of the system calls the filter refuses outright, for documentation and tests."""
    return tuple(_DENIED_NAMES)


@dataclasses.dataclass(frozen=True, slots=True)
class _Op:
    """One instruction; jumps name a label, None falls through to the next instruction."""

    code: int
    k: int
    true: str | None = None
    false: str | None = None
    label: str | None = None


def build(machine: str | None = None) -> bytes:
    """Assembles the filter for ``machine`` (this one's by default): sock_filter records.

    Raises:
        OSError: The architecture has no syscall table here (ENOSYS).
    """
    arch = _ARCHES.get(machine or platform.machine())
    if arch is None:
        raise OSError(errno.ENOSYS, f"no seccomp filter for {machine or platform.machine()}")
    program = [
        _Op(_LD_W_ABS, _ARCH),
        _Op(_JEQ, arch.audit, false="deny"),
        _Op(_LD_W_ABS, _NR),
        *([_Op(_JGE, _X32_BIT, true="deny")] if arch.has_x32 else []),
        *(_Op(_JEQ, arch.number(name), true="deny") for name in _DENIED_NAMES),
        _Op(_JEQ, arch.number("clone3"), true="nosys"),
        _Op(_JEQ, arch.number("clone"), true="clone"),
        _Op(_RET, _ALLOW),
        _Op(_LD_W_ABS, _ARG0_LOW, label="clone"),
        _Op(_JSET, _CLONE_NAMESPACES, true="deny"),
        _Op(_RET, _ALLOW),
        _Op(_RET, _ERRNO | errno.ENOSYS, label="nosys"),
        _Op(_RET, _ERRNO | errno.EPERM, label="deny"),
    ]
    return _assemble(program)


def _assemble(program: list[_Op]) -> bytes:
    """Resolves labels into BPF's relative jumps (0 to 255 forward) and packs the program."""
    labels = {op.label: index for index, op in enumerate(program) if op.label}
    out = bytearray()
    for index, op in enumerate(program):
        jumps = [0 if t is None else labels[t] - index - 1 for t in (op.true, op.false)]
        if any(not 0 <= jump <= 255 for jump in jumps):
            raise ValueError(f"jump out of range at instruction {index}")
        out += _INSTRUCTION.pack(op.code, jumps[0], jumps[1], op.k)
    return bytes(out)


# <linux/prctl.h> and <linux/seccomp.h>.
_PR_SET_SECCOMP = 22
_SECCOMP_MODE_FILTER = 2


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def install(program: bytes) -> None:
    """Installs ``program`` on the calling thread; it needs no_new_privs (seccomp(2)).

    Raises:
        OSError: The kernel refused the filter.
    """
    buffer = ctypes.create_string_buffer(program, len(program))
    fprog = _SockFprog(len(program) // _INSTRUCTION.size, ctypes.addressof(buffer))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p, ctypes.c_ulong]
    if libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"installing the seccomp filter: {errno.errorcode.get(err, err)}")
