"""Checked reads and writes of cgroup control files, shared by the v1 and v2 drivers.

Every helper turns an OSError into a CgroupError that names the file, the value and the
kernel's reason, so that a refused limit fails the job's start with a message a human can act
on.

These calls block. A start's directory creations and limit writes, and the cgroup.procs reads
and rmdirs of a kill or a removal, are a few small syscalls each and run on the event loop.
A job's usage takes several files and is not free on a busy host (one usage() took up to
70 ms under 50 concurrent starts), so usage() runs in a thread (worker/usage.py, and the
final read in worker/job.py).
"""

from __future__ import annotations

import errno
import os
import signal
from collections.abc import Iterable, Sequence
from pathlib import Path

from worker.errors import CgroupError

# Rounds of "read cgroup.procs, signal what is new" before giving up on a cgroup whose
# processes keep forking; kill_until_empty() (teardown.py) calls kill_all() again anyway.
_MAX_SIGNAL_ROUNDS = 64


def write(path: Path, value: str) -> None:
    """Writes ``value`` to a control file with a single write call, as the kernel expects.

    Raises:
        CgroupError: The file is missing or the kernel refused the value.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except OSError as err:
        raise CgroupError(f"cannot open {path} to write {value!r}: {err.strerror}") from err
    try:
        data = value.encode()
        written = os.write(fd, data)
        if written != len(data):
            raise CgroupError(f"short write of {value!r} to {path}: {written} bytes")
    except OSError as err:
        raise CgroupError(f"kernel refused {value!r} in {path}: {err.strerror}") from err
    finally:
        os.close(fd)


def read(path: Path) -> str:
    """Returns the content of a control file.

    Raises:
        CgroupError: The file cannot be read.
    """
    try:
        return path.read_text()
    except OSError as err:
        raise CgroupError(f"cannot read {path}: {err.strerror}") from err


def read_int(path: Path) -> int:
    """Returns a control file holding a single integer."""
    text = read(path).strip()
    try:
        return int(text)
    except ValueError as err:
        raise CgroupError(f"{path} holds {text!r}, not an integer") from err


def read_keyed(path: Path) -> dict[str, int]:
    """Parses a flat keyed file ("key value" per line), such as memory.events or cpu.stat."""
    values = {}
    for line in read(path).splitlines():
        key, _, value = line.partition(" ")
        if value.strip().lstrip("-").isdigit():
            values[key] = int(value)
    return values


def read_pids(procs_file: Path) -> set[int]:
    """Returns the pids listed in a cgroup.procs file; empty if the cgroup is gone."""
    try:
        return {int(p) for p in procs_file.read_text().split()}
    except FileNotFoundError:
        return set()
    except OSError as err:
        raise CgroupError(f"cannot read {procs_file}: {err.strerror}") from err


def signal_procs(
    procs_files: Sequence[Path], sig: int, exclude: frozenset[int] = frozenset()
) -> None:
    """Sends ``sig`` to every process in ``procs_files`` but ``exclude``, never to a reused pid.

    A pid read from cgroup.procs may exit and be reused by an unrelated process before
    kill(2). So each pid is first pinned with pidfd_open(2), the files are read again, and
    only pidfds whose pid is still listed are signalled with pidfd_send_signal(2): the pidfd
    was opened before that second read, so it names a process that was in the cgroup. Rounds
    repeat until one finds nothing new, which catches children forked meanwhile.

    Raises:
        CgroupError: A procs file could not be read, a pidfd not opened (EMFILE, ENFILE,
            ENOMEM) or a signal not sent.
    """
    done = set(exclude)
    for _ in range(_MAX_SIGNAL_ROUNDS):
        listed = _read_all(procs_files) - done
        if not listed:
            return
        pidfds = _open_pidfds(listed)
        try:
            still = _read_all(procs_files)
            for pid, pidfd in pidfds.items():
                if pid in still:
                    _send(pidfd, sig)
        finally:
            for pidfd in pidfds.values():
                os.close(pidfd)
        done |= listed


def _read_all(procs_files: Iterable[Path]) -> set[int]:
    pids: set[int] = set()
    for procs_file in procs_files:
        pids |= read_pids(procs_file)
    return pids


def _open_pidfds(pids: Iterable[int]) -> dict[int, int]:
    pidfds: dict[int, int] = {}
    for pid in pids:
        try:
            pidfds[pid] = os.pidfd_open(pid)
        except ProcessLookupError:  # Exited since the read: nothing to signal.
            continue
        except OSError as err:
            # EMFILE, ENFILE or ENOMEM (pidfd_open(2)): the daemon is short of fds or memory.
            # Callers handle only CgroupError, and the pidfds opened so far must not leak.
            for pidfd in pidfds.values():
                os.close(pidfd)
            raise CgroupError(
                f"cannot signal the job: pidfd_open of pid {pid} failed: {err.strerror}"
            ) from err
    return pidfds


def _send(pidfd: int, sig: int) -> None:
    try:
        signal.pidfd_send_signal(pidfd, sig)
    except ProcessLookupError:  # Exited (it may be a zombie) after the pidfd was opened.
        return
    except OSError as err:
        raise CgroupError(f"cannot send signal {sig}: {err.strerror}") from err


def make_dir(path: Path) -> None:
    """Creates one cgroup directory, which must not exist yet.

    Raises:
        CgroupError: The directory exists already or could not be made.
    """
    try:
        path.mkdir()
    except OSError as err:
        raise CgroupError(f"cannot create cgroup {path}: {err.strerror}") from err


def ensure_dir(path: Path) -> None:
    """Creates a cgroup directory unless it exists (the shared parent and leaf dirs)."""
    try:
        path.mkdir(exist_ok=True)
    except OSError as err:
        raise CgroupError(f"cannot create cgroup {path}: {err.strerror}") from err


def try_rmdir(path: Path) -> bool:
    """Removes an empty cgroup directory; returns False when the kernel says it is busy.

    rmdir(2) of a cgroup fails with EBUSY while it still has processes or children
    (Documentation/admin-guide/cgroup-v1/cgroups.rst, "Removing a cgroup").

    Raises:
        CgroupError: rmdir failed for a reason other than EBUSY or ENOENT.
    """
    try:
        path.rmdir()
    except FileNotFoundError:
        return True
    except OSError as err:
        if err.errno == errno.EBUSY:
            return False
        raise CgroupError(f"cannot remove cgroup {path}: {err.strerror}") from err
    return True
