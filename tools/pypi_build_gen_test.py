from pathlib import Path

import pytest

from tools import pypi_build_gen


@pytest.mark.parametrize(
    ("name", "normalized"),
    [
        ("absl-py", "absl_py"),
        ("grpcio_tools", "grpcio_tools"),
        ("Typing.Extensions", "typing_extensions"),
        ("types--protobuf", "types_protobuf"),
    ],
)
def test_normalize(name: str, normalized: str) -> None:
    assert pypi_build_gen.normalize(name) == normalized


def _install(site: Path, name: str, version: str, files: list[str], requires: list[str]) -> None:
    dist_info = site / f"{name}-{version}.dist-info"
    dist_info.mkdir(parents=True)
    lines = [f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"]
    lines += [f"Requires-Dist: {r}\n" for r in requires]
    (dist_info / "METADATA").write_text("".join(lines))
    record = [*files, f"{dist_info.name}/METADATA", f"{dist_info.name}/RECORD"]
    for path in files:
        target = site / path.replace("../../bin/", "bin/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("")
    (dist_info / "RECORD").write_text("".join(f"{p},,\n" for p in record))


def test_reads_files_and_installed_runtime_deps(tmp_path: Path) -> None:
    site = tmp_path / "site"
    _install(
        site,
        "Foo-Bar",
        "1.0",
        ["foo/__init__.py", "foo/data.json", "foo/odd name.txt", "../../bin/foo"],
        [
            "baz>=2",
            'qux; python_version < "3.0"',
            'pytest; extra == "test"',
            "not-installed",
        ],
    )
    _install(site, "baz", "2.0", ["baz.py"], [])
    _install(site, "qux", "1.0", ["qux.py"], [])
    foo, baz, qux = sorted(
        pypi_build_gen.read_distributions(site),
        key=lambda d: ["foo_bar", "baz", "qux"].index(d.name),
    )
    assert foo.name == "foo_bar"
    assert foo.srcs == ("site/foo/__init__.py",)
    assert "site/foo/data.json" in foo.data
    assert "site/bin/foo" in foo.data
    assert foo.skipped == ("site/foo/odd name.txt (not a valid Bazel label)",)
    # Extras are optional; markers are not evaluated, uninstalled names are dropped.
    assert foo.requires == {"baz", "qux"}
    assert baz.requires == frozenset()
    build = pypi_build_gen.render("site", [foo, baz, qux])
    assert 'name = "foo_bar"' in build
    assert '":baz"' in build
    assert 'imports = ["site"]' in build


def test_main_fails_without_distributions(tmp_path: Path) -> None:
    (tmp_path / "site").mkdir()
    assert pypi_build_gen.main(["gen", str(tmp_path / "site"), str(tmp_path / "BUILD")]) == 1
    assert not (tmp_path / "BUILD").exists()
