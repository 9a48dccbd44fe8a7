"""Types as a test: ``mypy --strict`` (pyproject.toml) over the given files.

Run by //tools:mypy_test on every first-party file (//:py_srcs). Third-party packages and the
generated jobworker.v1 stubs come from the test's runfiles only, never from the interpreter's
own site-packages, so the check sees exactly the locked versions.
"""

from __future__ import annotations

import argparse
import os
import stat
import sys
import sysconfig
import tempfile
from pathlib import Path

from mypy import api

CONFIG = "pyproject.toml"


def search_path() -> list[str]:
    """Returns this process's import path without the standard library.

    mypy reads the standard library from its own typeshed, as it does for any interpreter.
    """
    stdlib = Path(sysconfig.get_path("stdlib"))
    excluded = {stdlib, stdlib / "lib-dynload", stdlib.with_name(f"{stdlib.name}.zip")}
    excluded |= {stdlib.parent / f"python{sys.version_info[0]}{sys.version_info[1]}.zip"}
    return [str(Path(p).absolute()) for p in sys.path[1:] if Path(p).absolute() not in excluded]


def write_search_path_reporter(directory: Path, generated_roots: list[str]) -> Path:
    """Writes a stand-in interpreter for mypy's ``--python-executable``.

    mypy asks that interpreter for its sys.path and its site-packages (mypy/pyinfo.py,
    ``getsearchdirs``). The stand-in answers with this test's import path plus
    ``generated_roots``, and no site-packages: the real interpreter would add its own
    site-packages even when started with -S. mypy reports no errors inside the files it finds
    on that path (it treats them as installed packages), which is what generated code needs.
    """
    reporter = directory / "python"
    answer = repr(([*generated_roots, *search_path()], []))
    reporter.write_text(f"#!{sys.executable} -S\nprint({answer!r})\n", encoding="utf-8")
    reporter.chmod(reporter.stat().st_mode | stat.S_IXUSR)
    return reporter


def main(argv: list[str]) -> int:
    """Runs mypy; returns its exit status (0 only if there are no errors)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--generated_root",
        action="append",
        default=[],
        help="an import root of generated modules (protoc's): checked against, not checked",
    )
    parser.add_argument("files", nargs="*")
    args = parser.parse_args(argv[1:])
    if not args.files:
        print(f"{argv[0]}: no files to check", file=sys.stderr)
        return 2
    generated_roots = [str(Path(p).absolute()) for p in args.generated_root]
    # On MYPYPATH, mypy finds the modules without a py.typed marker.
    os.environ["MYPYPATH"] = os.pathsep.join(generated_roots)
    with tempfile.TemporaryDirectory(dir=os.environ.get("TEST_TMPDIR")) as tmp:
        stdout, stderr, status = api.run(
            [
                f"--config-file={CONFIG}",
                f"--cache-dir={tmp}/mypy_cache",
                f"--python-executable={write_search_path_reporter(Path(tmp), generated_roots)}",
                *args.files,
            ]
        )
    sys.stdout.write(stdout)
    sys.stderr.write(stderr)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv))
