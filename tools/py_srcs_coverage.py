"""Fails when a Python file of the repository is in no package's ``py_srcs`` filegroup.

//tools:ruff_test and //tools:mypy_test check exactly //:py_srcs, the union of every package's
``py_srcs``; a file outside it (a new package not yet listed in the root BUILD.bazel, or a
glob that misses it) would silently escape lint and types. This test compares that union with
the files git tracks. It reads the source tree itself, found through the runfiles symlink of
pyproject.toml, so it is tagged "external" (never cached) and "local".
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# Bazel's convenience symlinks and tool caches, never first-party code.
_SKIPPED_DIRS = ("bazel-", ".")


def source_root(runfile: Path) -> Path:
    """Returns the workspace directory that a source file's runfiles symlink points into."""
    return runfile.resolve().parent


def python_files(root: Path) -> set[str]:
    """Returns the .py files under ``root``: tracked by git, or found on disk without git."""
    if (root / ".git").exists():
        listing = subprocess.run(
            ["git", "-C", str(root), "ls-files", "-z", "--", "*.py"],
            capture_output=True,
            check=True,
        ).stdout
        return {name for name in listing.decode().split("\0") if name}
    found = set()
    for directory, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(_SKIPPED_DIRS)]
        rel = Path(directory).relative_to(root)
        found |= {str(rel / f) for f in filenames if f.endswith(".py")}
    return found


def uncovered(root: Path, covered: set[str]) -> list[str]:
    """Returns the .py files under ``root`` that are not in ``covered``, sorted."""
    return sorted(python_files(root) - covered)


def main(argv: list[str]) -> int:
    """Checks that the files in ``argv[2:]`` cover the tree of the runfile ``argv[1]``."""
    if len(argv) < 3:
        print(f"usage: {argv[0]} WORKSPACE_RUNFILE COVERED_FILE...", file=sys.stderr)
        return 2
    root = source_root(Path(argv[1]))
    missing = uncovered(root, set(argv[2:]))
    if missing:
        print(
            f"{len(missing)} Python file(s) in {root} are in no py_srcs filegroup listed in "
            "//:py_srcs, so ruff and mypy never see them:",
            *missing,
            "Export a py_srcs filegroup from their package and list it in BUILD.bazel.",
            sep="\n  ",
        )
        return 1
    print(f"py_srcs covers all {len(argv) - 2} Python files of {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
