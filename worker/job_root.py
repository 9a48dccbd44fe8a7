"""The job's own root: a read-only view of the host with private /tmp and a minimal /dev.

Built by the sandbox's process B (worker/sandbox.py), as root, in its new mount namespace,
after it joined the job's cgroups and before it drops privileges. A spare's B builds it
before the job exists, so a start does not wait for it. In the order of ``enter``:

1. Bind ``JobWorld.root`` (the host's ``/`` by default), with every mount under it, onto
   ``/tmp``, then make that whole tree read-only, nosuid and nodev with one
   mount_setattr(2) (AT_RECURSIVE): the job reads the host's programs and libraries, writes
   nothing, and no device node of the host works in it. The bind copies the mount tree as it
   is now, so the mounts made below on the host's /tmp are not part of it.
2. Mask each hidden path: an empty read-only tmpfs over a directory, /dev/null over a file.
   The daemon's data directory and TLS keys stay unreadable even if made world-readable.
3. Fresh proc (this PID namespace's processes) and read-only sysfs (this network namespace's
   devices); on cgroup v2 also a read-only cgroup2, whose root, in the job's cgroup
   namespace, is the job's own cgroup (runtimes read their limits there).
4. A tmpfs /dev with null, zero, full, random, urandom and tty, and the fd links.
5. Private tmpfs on /tmp, /var/tmp and /dev/shm, each capped at ``tmp_bytes``. Their pages
   are charged to the memory cgroup of the process that writes them, the job's, so they
   count against ``memory_bytes`` too; they vanish with the mount namespace, when the
   job's last process exits.
6. pivot_root(2) into it, with the old root stacked on the new one and detached at once
   (pivot_root(".", "."), the man page's recipe for a root with no room for ``put_old``).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from worker import linux
from worker.config import JobWorld

_STAGING = "/tmp"  # Any directory: the bind takes the tree as it is before it is mounted on.
_FRESH = linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC
_READ_ONLY = linux.MOUNT_ATTR_RDONLY | linux.MOUNT_ATTR_NOSUID | linux.MOUNT_ATTR_NODEV
# The only device nodes a job gets: name, major, minor (Documentation/admin-guide/devices.txt).
DEVICES = (
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
)
_DEV_LINKS = (
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
)
PRIVATE = ("/tmp", "/var/tmp", "/dev/shm")


def enter(world: JobWorld) -> None:
    """Builds the job's root and makes it this process's ``/`` (steps in the module doc).

    Raises:
        OSError: A step failed; the message names the path.
    """
    new = _STAGING
    linux.mount(world.root, new, None, linux.MS_BIND | linux.MS_REC)
    linux.mount_setattr(new, _READ_ONLY, recursive=True)
    for path in world.hidden:
        _mask(new + path)
    linux.mount("proc", new + "/proc", "proc", _FRESH)
    linux.mount("sysfs", new + "/sys", "sysfs", _FRESH | linux.MS_RDONLY)
    if Path("/sys/fs/cgroup/cgroup.controllers").exists():  # The host's: unified (v2).
        cgroup = new + "/sys/fs/cgroup"
        linux.mount("cgroup2", cgroup, "cgroup2", _FRESH | linux.MS_RDONLY)
    _make_dev(new + "/dev")
    for path in PRIVATE:
        linux.mount("tmpfs", new + path, "tmpfs", _FRESH & ~linux.MS_NOEXEC, _tmpfs(world))
    os.chdir(new)
    linux.pivot_root(".", ".")
    linux.umount2(".", linux.MNT_DETACH)
    os.chdir("/")


def _tmpfs(world: JobWorld) -> str:
    return f"size={world.tmp_bytes},mode=1777"


def _mask(target: str) -> None:
    """Hides ``target`` in the new root; a path the root does not have needs no hiding."""
    try:
        mode = os.lstat(target).st_mode
    except FileNotFoundError:
        return
    if stat.S_ISDIR(mode):
        linux.mount("tmpfs", target, "tmpfs", _FRESH | linux.MS_RDONLY, "size=4k,mode=0555")
    else:
        # A bind takes its flags from its source, the host's devtmpfs, so /dev/null still
        # reads (as empty) here; then it too is made read-only.
        linux.mount("/dev/null", target, None, linux.MS_BIND)
        linux.mount_setattr(target, _READ_ONLY & ~linux.MOUNT_ATTR_NODEV, recursive=False)


def _make_dev(dev: str) -> None:
    """Mounts a small tmpfs on ``dev`` with the job's device nodes and links, then /dev/shm."""
    linux.mount("tmpfs", dev, "tmpfs", linux.MS_NOSUID | linux.MS_NOEXEC, "size=64k,mode=0755")
    for name, major, minor in DEVICES:
        path = f"{dev}/{name}"
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(major, minor))
        os.chmod(path, 0o666)  # mknod's mode is filtered by the umask.
    for name, target in _DEV_LINKS:
        os.symlink(target, f"{dev}/{name}")
    os.mkdir(f"{dev}/shm")
