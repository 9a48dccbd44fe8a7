"""The few Linux syscalls Python 3.11 lacks, as thin ctypes wrappers.

Each wrapper raises OSError with the kernel's errno, like the functions of ``os``. They are
used by the spawner process and the children it forks (worker/sandbox.py); the daemon itself
never calls them.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import socket
import struct

# <sched.h>, see unshare(2).
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

# <sys/mount.h>, see mount(2), umount2(2) and mount_setattr(2).
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MNT_DETACH = 0x2
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
_AT_FDCWD = -100
_AT_RECURSIVE = 0x8000
_MOUNT_ATTR = struct.Struct(
    "=QQQQ"
)  # struct mount_attr: attr_set, attr_clr, propagation, userns_fd.
# The generic numbers, which x86_64 shares for the calls added since 4.x (asm-generic/unistd.h).
_SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}
_SYS_MOUNT_SETATTR = 442

# <linux/prctl.h>, see prctl(2).
PR_SET_PDEATHSIG = 1
PR_SET_NO_NEW_PRIVS = 38
PR_SET_CHILD_SUBREAPER = 36

# <asm-generic/mman-common.h>, see madvise(2) (Linux 5.14).
MADV_POPULATE_WRITE = 23

# <linux/sockios.h> and <net/if.h>, see netdevice(7).
_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1
_IFREQ_FLAGS = struct.Struct("16sH22x")  # struct ifreq: ifr_name[IFNAMSIZ], ifr_flags, padding.

_LIBC = ctypes.CDLL(None, use_errno=True)
_LIBC.unshare.argtypes = [ctypes.c_int]
_LIBC.mount.argtypes = [
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_ulong,
    ctypes.c_void_p,
]
_LIBC.prctl.argtypes = [
    ctypes.c_int,
    ctypes.c_ulong,
    ctypes.c_ulong,
    ctypes.c_ulong,
    ctypes.c_ulong,
]
_LIBC.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
_LIBC.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
# union sigval is passed like a long on x86_64 and aarch64: one integer register.
_LIBC.sigqueue.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long]


def _check(result: int, what: str) -> None:
    if result == -1:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def unshare(flags: int) -> None:
    """Moves the calling process into new namespaces (man 2 unshare).

    With CLONE_NEWPID only the caller's *children* enter the new PID namespace, and the
    first of them becomes its init (PID 1).
    """
    _check(_LIBC.unshare(flags), "unshare")


def mount(
    source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None
) -> None:
    """Mounts a filesystem or changes a mount's propagation (man 2 mount).

    ``data`` holds the filesystem's options, such as tmpfs's ``size=1m,mode=1777``.
    """
    _check(
        _LIBC.mount(
            source.encode() if source is not None else None,
            target.encode(),
            fstype.encode() if fstype is not None else None,
            flags,
            data.encode() if data is not None else None,
        ),
        f"mount {target}",
    )


def umount2(target: str, flags: int) -> None:
    """Unmounts ``target``; MNT_DETACH takes it out of the tree at once (man 2 umount)."""
    _check(_LIBC.umount2(target.encode(), flags), f"umount {target}")


def mount_setattr(target: str, attr_set: int, *, recursive: bool) -> None:
    """Sets MOUNT_ATTR_* flags on a mount, or its whole subtree (man 2 mount_setattr, 5.12).

    One call changes every mount of a recursive bind, where mount(2) would need a remount
    per submount.
    """
    attr = ctypes.create_string_buffer(_MOUNT_ATTR.pack(attr_set, 0, 0, 0), _MOUNT_ATTR.size)
    flags = _AT_RECURSIVE if recursive else 0
    result = _LIBC.syscall(
        ctypes.c_long(_SYS_MOUNT_SETATTR),
        ctypes.c_int(_AT_FDCWD),
        ctypes.c_char_p(target.encode()),
        ctypes.c_uint(flags),
        attr,
        ctypes.c_size_t(_MOUNT_ATTR.size),
    )
    _check(result, f"mount_setattr {target}")


def pivot_root(new_root: str, put_old: str) -> None:
    """Makes ``new_root`` the root mount of this mount namespace (man 2 pivot_root)."""
    number = _SYS_PIVOT_ROOT[os.uname().machine]
    result = _LIBC.syscall(
        ctypes.c_long(number), ctypes.c_char_p(new_root.encode()), ctypes.c_char_p(put_old.encode())
    )
    _check(result, f"pivot_root {new_root}")


def prctl(option: int, arg2: int) -> None:
    """Calls prctl with one argument; the unused ones must be zero (man 2 prctl)."""
    _check(_LIBC.prctl(option, arg2, 0, 0, 0), f"prctl({option})")


def sigqueue(pid: int, sig: int, value: int) -> None:
    """Queues ``sig`` with the integer ``value`` to ``pid`` (man 3 sigqueue, SI_QUEUE)."""
    _check(_LIBC.sigqueue(pid, sig, value), f"sigqueue({pid}, {sig})")


def populate_private_writable() -> None:
    """Faults in every private writable mapping now (madvise MADV_POPULATE_WRITE).

    In a forked child this breaks copy-on-write sharing with the parent ahead of time, so
    that later code does not pay a page fault per page it writes. Mappings the kernel
    refuses (EINVAL, EFAULT, ENOMEM) are left as they are: this is an optimisation only.
    """
    with open("/proc/self/maps", "rb") as maps:
        lines = maps.read().splitlines()
    for line in lines:
        fields = line.split()
        if fields[1] == b"rw-p":
            start, end = (int(x, 16) for x in fields[0].split(b"-"))
            _LIBC.madvise(start, end - start, MADV_POPULATE_WRITE)


def set_interface_up(name: str) -> None:
    """Sets IFF_UP on a network interface (``ip link set NAME up``); see netdevice(7)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = _IFREQ_FLAGS.pack(name.encode(), 0)
        _, flags = _IFREQ_FLAGS.unpack(fcntl.ioctl(sock, _SIOCGIFFLAGS, request))
        fcntl.ioctl(sock, _SIOCSIFFLAGS, _IFREQ_FLAGS.pack(name.encode(), flags | _IFF_UP))
