import subprocess
from pathlib import Path

import pytest

from tools import py_srcs_coverage


def _git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    _git(tmp_path, "init", "-q")
    for name in ("pkg/a.py", "pkg/sub/b.py", "README.md"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    _git(tmp_path, "add", ".")
    (tmp_path / "pkg/untracked.py").write_text("")
    return tmp_path


def test_all_tracked_files_covered(repo: Path) -> None:
    assert py_srcs_coverage.uncovered(repo, {"pkg/a.py", "pkg/sub/b.py"}) == []


def test_reports_tracked_file_missing_from_py_srcs(repo: Path) -> None:
    assert py_srcs_coverage.uncovered(repo, {"pkg/a.py"}) == ["pkg/sub/b.py"]


def test_without_git_walks_the_tree_skipping_bazel_and_hidden_dirs(tmp_path: Path) -> None:
    for name in ("a.py", "bazel-out/x.py", ".cache/y.py", "d/c.py", "d/notes.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    assert py_srcs_coverage.uncovered(tmp_path, set()) == ["a.py", "d/c.py"]


def test_main_fails_and_names_the_file(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    marker = repo / "pyproject.toml"
    marker.write_text("")
    link = repo.parent / "runfile_link.toml"
    link.symlink_to(marker)
    assert py_srcs_coverage.main(["cov", str(link), "pkg/a.py"]) == 1
    assert "pkg/sub/b.py" in capsys.readouterr().out
    assert py_srcs_coverage.main(["cov", str(link), "pkg/a.py", "pkg/sub/b.py"]) == 0


def test_main_without_covered_files_is_a_usage_error() -> None:
    assert py_srcs_coverage.main(["cov", "pyproject.toml"]) == 2
