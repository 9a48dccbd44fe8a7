"""The zipapps of jobctl and jobworkerd run on their own and print their usage.

`bazel build --build_python_zip //cli:jobctl //api:jobworkerd` writes each binary as a
``#!/usr/bin/env python3`` line followed by a zip; the test runs the same zip (the binary's
``python_zip_file`` output group) with that python3, from an empty directory and a bare
environment, so nothing of the test's own runfiles or import path can help it.
"""

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

# Runfiles path of each zip (the filegroups in tools/BUILD.bazel), the exit status of --help
# and text its usage must show. jobctl parses with argparse, which exits 0 after --help;
# jobworkerd is an absl app, whose --help prints the usage and then exits 1 by design
# (absl/app.py, HelpFlag.parse: _exit_before_main(1)).
_ZIPAPPS = {
    "jobctl": ("cli/jobctl.zip", 0, ["usage: jobctl", "start", "--addr"]),
    "jobworkerd": ("api/jobworkerd.zip", 1, ["jobworkerd", "--listen", "Try --helpfull"]),
}


def _python3() -> str:
    return shutil.which("python3") or sys.executable


@pytest.mark.parametrize("name", sorted(_ZIPAPPS))
def test_zipapp_is_self_contained(name: str) -> None:
    path, _, _ = _ZIPAPPS[name]
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    assert "__main__.py" in names
    # The generated proto modules and the third-party wheels travel inside the zip.
    assert any(n.endswith("jobworker/v1/jobworker_pb2.py") for n in names)
    assert any(n.startswith("runfiles/pypi/site/grpc/") for n in names)


@pytest.mark.parametrize("name", sorted(_ZIPAPPS))
def test_zipapp_prints_help(name: str, tmp_path: Path) -> None:
    path, status, expected = _ZIPAPPS[name]
    result = subprocess.run(
        [_python3(), str(Path(path).absolute()), "--help"],
        cwd=tmp_path,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "TMPDIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == status, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    for text in expected:
        assert text in result.stdout, result.stdout
