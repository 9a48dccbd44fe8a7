"""A directory where jobs may dump cores, for the tests of the true wait status."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def core_dump_dir() -> Iterator[Path]:
    """Yields a directory under /tmp that every user may write; removes it and its cores.

    With the usual core_pattern "core" (core(5)) the kernel writes the dump into the crashing
    process's cwd, which must be writable by the job's user; a test's own temporary
    directory may sit where that user cannot even search.
    """
    directory = Path("/tmp") / f"jobworker-cores-{os.getpid()}"
    directory.mkdir()
    directory.chmod(0o777)  # mkdir's mode is filtered by the umask.
    try:
        yield directory
    finally:
        for leftover in directory.iterdir():
            leftover.unlink()
        directory.rmdir()
