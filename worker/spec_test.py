"""JobSpec and Limits: what is accepted, and the field and reason of what is not."""

from __future__ import annotations

import pytest

from worker.errors import InvalidSpec
from worker.spec import DEFAULT_PATH, MAX_ARGS_BYTES, MAX_CWD_BYTES, JobSpec, Limits


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


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"cpu": 0.001}, "limits.cpu"),
        ({"cpu": True}, "limits.cpu"),
        ({"cpu": "1"}, "limits.cpu"),
        ({"memory_bytes": 1024}, "limits.memory_bytes"),
        ({"memory_bytes": 1.5}, "limits.memory_bytes"),
        ({"io_read_bps": 0}, "limits.io_read_bps"),
        ({"io_write_bps": 2**63}, "limits.io_write_bps"),
        ({"pids": 0}, "limits.pids"),
        ({"pids": False}, "limits.pids"),
    ],
)
def test_invalid_limit_names_the_field(fields: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidSpec) as error:
        Limits(**fields)  # type: ignore[arg-type]
    assert error.value.field == field


def test_merge_takes_unset_fields_from_the_defaults_and_checks_the_maximum() -> None:
    merged = Limits(cpu=0.5).merged_over(Limits(cpu=1.0, pids=100))
    assert merged == Limits(cpu=0.5, pids=100)
    merged.check_within(Limits(cpu=0.5, memory_bytes=1 << 30))
    with pytest.raises(InvalidSpec, match="exceeds the daemon maximum 50") as error:
        merged.check_within(Limits(pids=50))
    assert error.value.field == "limits.pids"
