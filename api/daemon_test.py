from __future__ import annotations

import os
import subprocess
import sys

# In a child, so that this test process keeps its own limits.
_PROBE = (
    "import resource\n"
    "resource.setrlimit(resource.RLIMIT_NOFILE, (256, 4096))\n"
    "from api.daemon import raise_fd_limit\n"
    "print(raise_fd_limit(), *resource.getrlimit(resource.RLIMIT_NOFILE))\n"
)


def test_raise_fd_limit_lifts_the_soft_limit_to_the_hard_one() -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    result = subprocess.run(
        [sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["4096", "4096", "4096"]
