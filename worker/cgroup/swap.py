"""Whether the host has swap, which decides if a memory limit needs swap accounting."""

from __future__ import annotations

from pathlib import Path


def host_has_swap(proc_swaps: Path = Path("/proc/swaps")) -> bool:
    """Returns True when at least one swap area is active (proc(5), /proc/swaps).

    A memory limit without swap accounting would let a job page out past its limit instead
    of being OOM-killed, so both drivers refuse such a limit when this returns True.
    """
    return len(proc_swaps.read_text().splitlines()) > 1  # The first line is a header.
