from collections.abc import Iterator
from pathlib import Path

import pytest
from absl import flags
from absl.testing import flagsaver

from cli import connection
from cli.errors import CliError


@pytest.fixture(autouse=True)
def _restore_flags() -> Iterator[None]:
    with flagsaver.flagsaver():
        yield


def parse_flags(*argv: str) -> None:
    flags.FLAGS.unparse_flags()
    flags.FLAGS(["jobctl", *argv])


ENV = {"JOBCTL_CA": "/env/ca.crt", "JOBCTL_CERT": "/env/me.crt", "JOBCTL_KEY": "/env/me.key"}


def test_defaults_and_environment() -> None:
    parse_flags()
    settings = connection.settings_from_flags(ENV)
    assert settings == connection.Settings(
        addr="127.0.0.1:50051",
        ca=Path("/env/ca.crt"),
        cert=Path("/env/me.crt"),
        key=Path("/env/me.key"),
        connect_timeout=5.0,
        rpc_timeout=30.0,
    )


def test_flags_win_over_the_environment() -> None:
    parse_flags("--addr=localhost:1", "--ca=/flag/ca.crt", "--connect_timeout=0.5")
    settings = connection.settings_from_flags({**ENV, "JOBCTL_ADDR": "127.0.0.1:2"})
    assert (settings.addr, settings.ca, settings.cert) == (
        "localhost:1",
        Path("/flag/ca.crt"),
        Path("/env/me.crt"),
    )
    assert settings.connect_timeout == 0.5


def test_environment_address_is_used_without_the_flag() -> None:
    parse_flags()
    assert connection.settings_from_flags({**ENV, "JOBCTL_ADDR": "h:3"}).addr == "h:3"


def test_relative_paths_resolve_against_the_bazel_working_directory() -> None:
    parse_flags("--cert=certs/me.crt")
    env = {**ENV, "JOBCTL_CA": "ca.crt", "BUILD_WORKING_DIRECTORY": "/home/me/src"}
    settings = connection.settings_from_flags(env)
    assert settings.cert == Path("/home/me/src/certs/me.crt")
    assert settings.ca == Path("/home/me/src/ca.crt")
    assert settings.key == Path("/env/me.key")


def test_relative_paths_stay_relative_outside_bazel() -> None:
    parse_flags("--cert=me.crt")
    assert connection.settings_from_flags(ENV).cert == Path("me.crt")


@pytest.mark.parametrize("missing", ["JOBCTL_CA", "JOBCTL_CERT", "JOBCTL_KEY"])
def test_missing_credentials_name_the_flag_and_variable(missing: str) -> None:
    parse_flags()
    env = {k: v for k, v in ENV.items() if k != missing}
    flag = missing.removeprefix("JOBCTL_").lower()
    with pytest.raises(CliError, match=f"no --{flag} given and {missing} is not set"):
        connection.settings_from_flags(env)
