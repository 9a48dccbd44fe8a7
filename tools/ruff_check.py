"""Lint as a test: ``ruff check`` and ``ruff format --check`` over the given files.

Run by //tools:ruff_test on every first-party file (//:py_srcs) with the repository's
pyproject.toml; it fails on any finding, and on an empty file list (a lint test that checks
nothing cannot fail).
"""

from __future__ import annotations

import subprocess
import sys

from ruff.__main__ import find_ruff_bin  # type: ignore[import-untyped]  # No py.typed.

CONFIG = "pyproject.toml"


def ruff_commands(ruff: str, files: list[str]) -> list[list[str]]:
    """Returns the ruff invocations that must all succeed for ``files``."""
    common = [f"--config={CONFIG}", "--no-cache"]
    return [
        [ruff, "check", *common, "--output-format=full", *files],
        [ruff, "format", "--check", "--diff", *common, *files],
    ]


def main(argv: list[str]) -> int:
    """Runs ruff on the files in ``argv[1:]``; returns 0 only if every check passed."""
    files = argv[1:]
    if not files:
        print(f"{argv[0]}: no files to lint", file=sys.stderr)
        return 2
    failed = False
    for command in ruff_commands(str(find_ruff_bin()), files):
        result = subprocess.run(command, check=False)
        failed |= result.returncode != 0
    print(f"ruff: {len(files)} files, {'FAILED' if failed else 'clean'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
