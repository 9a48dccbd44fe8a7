import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tools import pytest_main
from tools.testing import pytest_plugin

_MAIN = Path(pytest_main.__file__)


def _run(tmp_path: Path, name: str, source: str) -> subprocess.CompletedProcess[str]:
    test_file = tmp_path / name
    test_file.write_text(textwrap.dedent(source))
    env = {k: v for k, v in os.environ.items() if k not in ("XML_OUTPUT_FILE",)}
    # The child must not filter the parent's test (TESTBRIDGE_TEST_ONLY) or write its report.
    env.pop("TESTBRIDGE_TEST_ONLY", None)
    return subprocess.run(
        [sys.executable, str(_MAIN), str(test_file)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )


def test_args_include_xml_report_and_filter() -> None:
    args = pytest_main.pytest_args(
        ["a_test.py"], {"XML_OUTPUT_FILE": "/x/test.xml", "TESTBRIDGE_TEST_ONLY": "foo"}
    )
    assert "--junitxml=/x/test.xml" in args
    assert args[args.index("-k") + 1] == "foo"
    assert args[-1] == "a_test.py"
    assert "tools.testing.pytest_plugin" in args


def test_args_without_bazel_environment() -> None:
    args = pytest_main.pytest_args(["a_test.py"], {})
    assert not any(a.startswith("--junitxml") for a in args)
    assert "-k" not in args


@pytest.mark.parametrize(
    ("source", "exit_code"),
    [
        pytest.param("def test_ok():\n    assert True\n", 0, id="passing"),
        pytest.param("def test_bad():\n    assert False\n", 1, id="failing"),
        pytest.param("def helper():\n    pass\n", 5, id="no-tests-collected"),
        pytest.param(
            """
            import pytest

            @pytest.mark.no_such_marker
            def test_marked():
                pass
            """,
            2,
            id="unknown-marker",
        ),
        pytest.param(
            """
            async def never_awaited():
                pass

            def test_unawaited_coroutine():
                never_awaited()
            """,
            1,
            id="coroutine-never-awaited",
        ),
        pytest.param(
            """
            import asyncio

            async def test_async_runs_on_a_loop():
                await asyncio.sleep(0)
                assert asyncio.get_running_loop().get_debug()
            """,
            0,
            id="async-test",
        ),
        pytest.param(
            """
            import asyncio

            async def test_leaves_task_behind():
                asyncio.get_running_loop().create_task(asyncio.sleep(10))
            """,
            1,
            id="leaked-task",
        ),
        pytest.param(
            """
            import os

            def test_leaks_fd():
                os.open("/dev/null", os.O_RDONLY)
            """,
            1,
            id="leaked-fd",
        ),
    ],
)
def test_exit_code_is_pytests(tmp_path: Path, source: str, exit_code: int) -> None:
    result = _run(tmp_path, "sample_test.py", source)
    assert result.returncode == exit_code, result.stdout + result.stderr


# The test file pretends to run as a normal user: the plugin asks os.geteuid() after
# collection, by which time the file has been imported.
_KERNEL_TEST_AS_USER = """
import os

import pytest

os.geteuid = lambda: 1000

def test_plain():
    pass

@pytest.mark.kernel
def test_needs_the_kernel():
    pass
"""


def test_kernel_tests_without_root_fail_the_run_with_one_line(tmp_path: Path) -> None:
    result = _run(tmp_path, "sample_test.py", _KERNEL_TEST_AS_USER)
    assert result.returncode == pytest.ExitCode.USAGE_ERROR
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [f"ERROR: {pytest_plugin.KERNEL_NEEDS_ROOT}"]
    assert "passed" not in result.stdout


def test_kernel_tests_as_root_run(tmp_path: Path) -> None:
    source = _KERNEL_TEST_AS_USER.replace("os.geteuid = lambda: 1000", "os.geteuid = lambda: 0")
    result = _run(tmp_path, "sample_test.py", source)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout
