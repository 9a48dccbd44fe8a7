"""JobSpec: what is accepted, and the field and reason of what is not."""

from __future__ import annotations

import pytest

from worker.errors import InvalidSpec
from worker.limits import Limits
from worker.spec import DEFAULT_PATH, MAX_ARGS_BYTES, MAX_CWD_BYTES, JobSpec


def test_defaults_and_normalised_fields() -> None:
    spec = JobSpec(argv=["echo", "hi", ""], owner="alice")  # type: ignore[arg-type]
    assert spec.argv == ("echo", "hi", "")
    assert dict(spec.env) == {"PATH": DEFAULT_PATH}
    assert (spec.cwd, spec.limits) == ("/", Limits())
    with pytest.raises(TypeError):
        spec.env["X"] = "1"  # type: ignore[index]


@pytest.mark.parametrize(
    ("fields", "field", "reason"),
    [
        ({"argv": ()}, "argv", "must not be empty"),
        ({"argv": "echo hi"}, "argv", "must be a list of strings"),
        ({"argv": ("",)}, "argv[0]", "must not be empty"),
        ({"argv": ("echo", 3)}, "argv[1]", "must be a string, not int"),
        ({"argv": ("echo", "a\x00b")}, "argv[1]", "NUL"),
        ({"owner": ""}, "owner", "must not be empty"),
        ({"owner": "x" * 257}, "owner", "longer than 256"),
        ({"env": [("A", "1")]}, "env", "must be a mapping"),
        ({"env": {"A=B": "1"}}, "env['A=B']", "must not contain '='"),
        ({"env": {"A": 1}}, "env['A']", "must be a string"),
        ({"cwd": "tmp"}, "cwd", "absolute"),
        ({"cwd": "/" + "d" * (MAX_CWD_BYTES - 1)}, "cwd", f"shorter than {MAX_CWD_BYTES}"),
        ({"limits": {"cpu": 1}}, "limits", "must be a Limits value"),
    ],
)
def test_invalid_spec_names_the_field(fields: dict[str, object], field: str, reason: str) -> None:
    with pytest.raises(InvalidSpec) as error:
        JobSpec(**{"argv": ("true",), "owner": "alice", **fields})  # type: ignore[arg-type]
    assert error.value.field == field
    assert reason in error.value.reason


def test_argv_and_env_size_is_counted_as_execve_gets_it() -> None:
    # Each string counts with its NUL; each env entry also with its "=".
    fits = "x" * (MAX_ARGS_BYTES - len("true") - 1 - 1)
    JobSpec(argv=("true", fits), owner="alice", env={})
    with pytest.raises(InvalidSpec, match="over 131072"):
        JobSpec(argv=("true", fits + "x"), owner="alice", env={})
    with pytest.raises(InvalidSpec, match="over 131072"):
        JobSpec(argv=("true",), owner="alice", env={"A": fits})


def test_undecodable_file_names_are_accepted_and_sized_as_bytes() -> None:
    name = b"caf\xe9".decode(errors="surrogateescape")  # What os.fsdecode() returns.
    spec = JobSpec(argv=("/bin/cat", name), owner="alice", cwd="/" + name)
    assert spec.argv[1] == name
