"""jobworkerd's and pki_tool's flag handling (the wiring, not the server)."""

from __future__ import annotations

from api import tls_policy

# Importing jobworkerd must not load grpc (its main restricts TLS 1.2 first); this module
# keeps the process grpc-free until then, like the daemon.
tls_policy.forbid_tls12()

import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from absl import app, flags  # noqa: E402
from absl.testing import flagsaver  # noqa: E402

from api import jobworkerd, pki, pki_tool  # noqa: E402
from worker.errors import InvalidSpec  # noqa: E402
from worker.limits import Limits  # noqa: E402


@pytest.fixture(autouse=True)
def parsed_flags() -> Iterator[None]:
    if not flags.FLAGS.is_parsed():
        flags.FLAGS(["test"])
    with flagsaver.flagsaver():
        yield


def test_importing_the_main_does_not_load_grpc() -> None:
    # In a fresh interpreter: this test process may have loaded grpc for other modules.
    check = "import sys, api.jobworkerd; sys.exit('grpc' in sys.modules)"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    assert subprocess.run([sys.executable, "-c", check], env=env, check=False).returncode == 0


def test_dev_pki_is_created_in_the_workspace_under_bazel_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BUILD_WORKSPACE_DIRECTORY", str(tmp_path))
    files = jobworkerd._tls_files()
    assert files == pki.TlsFiles.in_pki_dir(tmp_path / ".dev" / "pki", "server")
    assert {p.name for p in (tmp_path / ".dev" / "pki").iterdir()} >= {
        "ca.crt",
        "server.key",
        "alice.crt",
        "bob.key",
        "admin.crt",
    }


def test_explicit_tls_files_go_together(tmp_path: Path) -> None:
    flags.FLAGS["tls_ca"].value = str(tmp_path / "ca.crt")
    with pytest.raises(app.UsageError, match="go together"):
        jobworkerd._tls_files()
    flags.FLAGS["tls_cert"].value = "c.crt"
    flags.FLAGS["tls_key"].value = "c.key"
    assert jobworkerd._tls_files() == pki.TlsFiles(
        tmp_path / "ca.crt", Path("c.crt"), Path("c.key")
    )


def test_limit_flags() -> None:
    default, maximum = jobworkerd._limits()
    assert default == Limits(cpu=1.0, memory_bytes=512 << 20, pids=256)
    assert maximum.cpu == 2.0 and maximum.pids == 4096
    flags.FLAGS["default_cpu"].value = 4.0  # Above --max_cpu: refuse to start.
    with pytest.raises(InvalidSpec, match=r"^limits\.cpu: "):
        jobworkerd._limits()


# The flags are made from worker/limits.py; these names, defaults and types are what
# deployments (deploy/jobworkerd.service, scripts) depend on.
DAEMON_LIMIT_FLAGS = {
    "default_cpu": 1.0,
    "default_memory_bytes": 512 << 20,
    "default_io_read_bps": None,
    "default_io_write_bps": None,
    "default_pids": 256,
    "max_cpu": 2.0,
    "max_memory_bytes": 8 << 30,
    "max_io_read_bps": 1 << 30,
    "max_io_write_bps": 1 << 30,
    "max_pids": 4096,
}


@pytest.mark.parametrize(("name", "default"), DAEMON_LIMIT_FLAGS.items())
def test_limit_flag_names_defaults_and_types(name: str, default: float | None) -> None:
    flag = flags.FLAGS[name]
    assert flag.default == default
    flag.parse("3")
    assert flag.value == 3
    if name.endswith("_cpu"):
        flag.parse("0.5")
        assert flag.value == 0.5
    else:
        with pytest.raises(flags.IllegalFlagValueError):
            flag.parse("0.5")


def test_unexpected_arguments_are_a_usage_error() -> None:
    with pytest.raises(app.UsageError):
        jobworkerd.main(["jobworkerd", "extra"])


def test_pki_tool_init(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUILD_WORKING_DIRECTORY", str(tmp_path))
    flags.FLAGS["dir"].value = "pki"
    pki_tool.main(["pki_tool", "init"])
    assert (tmp_path / "pki" / "admin.crt").exists()
    with pytest.raises(app.UsageError):
        pki_tool.main(["pki_tool", "frobnicate"])
    flags.FLAGS["dir"].value = None
    with pytest.raises(app.UsageError):
        pki_tool.main(["pki_tool", "init"])


def test_jobs_never_see_the_daemons_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUILD_WORKSPACE_DIRECTORY", str(tmp_path))
    flags.FLAGS["job_hidden_paths"].value = ["/srv/secrets"]
    world = jobworkerd._world(jobworkerd._tls_files())
    pki_dir = tmp_path / ".dev" / "pki"
    assert set(world.hidden) == {
        str(pki_dir),
        str(pki_dir / "ca.crt"),
        str(pki_dir / "server.crt"),
        str(pki_dir / "server.key"),
        "/srv/secrets",
    }
    assert (world.root, world.tmp_bytes) == ("/", 256 << 20)


def test_explicit_tls_files_are_hidden_but_not_their_directories(tmp_path: Path) -> None:
    for name in ("tls_ca", "tls_cert", "tls_key"):
        flags.FLAGS[name].value = str(tmp_path / f"{name}.pem")
    world = jobworkerd._world(jobworkerd._tls_files())
    assert sorted(world.hidden) == sorted(
        str(tmp_path / f"{n}.pem") for n in ("tls_ca", "tls_cert", "tls_key")
    )
