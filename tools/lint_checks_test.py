"""The lint and type tests fail on a violation: each check runs on a clean and a broken file."""

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tools import mypy_check, ruff_check

_CLEAN = '''"""A module that passes ruff and mypy --strict."""


def double(value: int) -> int:
    """Returns twice ``value``."""
    return value * 2
'''

_MIS_TYPED = _CLEAN + "\n\nRESULT: str = double(1)\n"
_MIS_FORMATTED = _CLEAN.replace("value * 2", "value*2")
_LINT_ERROR = "import os\n" + _CLEAN


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copy(ruff_check.CONFIG, tmp_path / "pyproject.toml")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _write(workdir: Path, source: str) -> str:
    (workdir / "sample.py").write_text(source)
    return "sample.py"


@pytest.mark.parametrize(
    ("source", "status"),
    [
        pytest.param(_CLEAN, 0, id="clean"),
        pytest.param(_MIS_FORMATTED, 1, id="mis-formatted"),
        pytest.param(_LINT_ERROR, 1, id="unused-import"),
    ],
)
def test_ruff_check(workdir: Path, source: str, status: int) -> None:
    assert ruff_check.main(["ruff_check", _write(workdir, source)]) == status


@pytest.mark.parametrize(
    ("source", "status"),
    [
        pytest.param(_CLEAN, 0, id="clean"),
        pytest.param(_MIS_TYPED, 1, id="mis-typed"),
        pytest.param(_CLEAN.replace("value: int", "value"), 1, id="untyped-def"),
    ],
)
def test_mypy_check(workdir: Path, source: str, status: int) -> None:
    assert mypy_check.main(["mypy_check", _write(workdir, source)]) == status


@pytest.mark.parametrize("check", [ruff_check.main, mypy_check.main])
def test_no_files_is_an_error(workdir: Path, check: Callable[[list[str]], int]) -> None:
    assert check(["check"]) == 2
