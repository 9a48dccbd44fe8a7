"""The main of every py_pytest_test (tools/pytest.bzl): runs pytest on the given test files.

Bazel passes the test files as arguments. Warnings that hide bugs in async code are errors, the
shared plugin (tools/testing/pytest_plugin.py) adds the leak check, and pytest's exit code is the
test's, so "no tests collected" (5) fails the target instead of passing it vacuously.
"""

from __future__ import annotations

import os
import sys

import pytest

PYTEST_ARGS = (
    "-p",
    "tools.testing.pytest_plugin",
    "-p",
    "no:cacheprovider",
    "-W",
    "error::ResourceWarning",
    "-W",
    "error::RuntimeWarning",
    "-W",
    "error::pytest.PytestUnraisableExceptionWarning",
    "--strict-markers",
    "--strict-config",
    "-o",
    "xfail_strict=true",
)


def pytest_args(argv: list[str], environ: dict[str, str]) -> list[str]:
    """Returns pytest's arguments for the test files and extra flags in ``argv``.

    Args:
        argv: the test's arguments: test files, then any flags from the BUILD file.
        environ: the test environment; Bazel's XML_OUTPUT_FILE gets the JUnit report and
            TESTBRIDGE_TEST_ONLY (``--test_filter``) becomes ``-k``.

    Returns:
        The arguments for ``pytest.main``.
    """
    args = [*PYTEST_ARGS, "-rfEs", "-v"]
    if xml := environ.get("XML_OUTPUT_FILE"):
        args.append(f"--junitxml={xml}")
    if only := environ.get("TESTBRIDGE_TEST_ONLY"):
        args += ["-k", only]
    return args + argv


def main() -> int:
    """Runs pytest and returns its exit code."""
    # Runfiles are a symlink tree into the source; keep bytecode out of it.
    sys.dont_write_bytecode = True
    return int(pytest.main(pytest_args(sys.argv[1:], dict(os.environ))))


if __name__ == "__main__":
    sys.exit(main())
