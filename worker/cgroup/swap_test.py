from __future__ import annotations

from pathlib import Path

import pytest

from worker.cgroup.swap import host_has_swap

_HEADER = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"


@pytest.mark.parametrize(
    ("content", "expected"),
    [(_HEADER, False), (_HEADER + "/swapfile file 1048572 0 -2\n", True)],
)
def test_host_has_swap_reads_proc_swaps(tmp_path: Path, content: str, expected: bool) -> None:
    swaps = tmp_path / "swaps"
    swaps.write_text(content)
    assert host_has_swap(swaps) is expected
