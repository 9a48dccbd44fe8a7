import pytest

from cli import parser
from cli.commands import limits_from_args
from jobworker.v1 import jobworker_pb2 as pb


def parse(*argv: str):  # type: ignore[no-untyped-def]
    return parser.parse(["jobctl", *argv])


def test_start_with_limits_and_a_command_after_the_separator() -> None:
    args = parse(
        "start",
        "--cpu",
        "0.5",
        "--memory",
        "256MiB",
        "--io-read",
        "10MB/s",
        "--io-write",
        "1MiB/s",
        "--pids",
        "64",
        "-e",
        "A=1",
        "--env",
        "B=x=y",
        "--cwd",
        "/tmp",
        "--",
        "/bin/sh",
        "-c",
        "echo --cpu",
    )
    assert args.command == "start"
    assert (args.cpu, args.memory_bytes, args.io_read_bps, args.io_write_bps, args.pids) == (
        0.5,
        256 * 1024**2,
        10_000_000,
        1024**2,
        64,
    )
    assert args.env == [("A", "1"), ("B", "x=y")]
    assert args.cwd == "/tmp"
    assert args.argv == ["/bin/sh", "-c", "echo --cpu"]


@pytest.mark.parametrize("command", ["start", "run"])
def test_limit_flags_keep_their_spelling(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    # The flags come from worker/limits.py; these are the names users and scripts type.
    with pytest.raises(SystemExit):
        parse(command, "--help")
    out = capsys.readouterr().out
    for flag in ("--cpu CORES", "--memory SIZE", "--io-read RATE", "--io-write RATE", "--pids N"):
        assert flag in out


def test_limit_flags_make_the_limits_message() -> None:
    args = parse("run", "--memory", "1GB", "--io-read", "2MiB/s", "--pids", "8", "--", "x")
    assert limits_from_args(args) == pb.Limits(memory_bytes=10**9, io_read_bps=2 * 1024**2, pids=8)
    assert not limits_from_args(parse("run", "--", "x")).ListFields()


def test_limits_default_to_unset() -> None:
    args = parse("run", "--", "/bin/true")
    assert (
        args.cpu,
        args.memory_bytes,
        args.io_read_bps,
        args.io_write_bps,
        args.pids,
        args.grace,
    ) == (
        None,
        None,
        None,
        None,
        None,
        None,
    )
    assert args.env == []


@pytest.mark.parametrize(
    ("argv", "fields"),
    [
        (["status", "abc"], {"command": "status", "job_id": "abc", "output": "human"}),
        (["status", "-o", "json", "abc"], {"output": "json"}),
        (["logs", "-f", "abc"], {"command": "logs", "follow": True}),
        (["logs", "abc"], {"follow": False}),
        (["stop", "--grace", "2.5", "abc"], {"command": "stop", "grace": 2.5}),
        (["list", "-o", "json"], {"command": "list", "output": "json"}),
        (["run", "--grace", "0", "--", "x"], {"command": "run", "grace": 0.0}),
    ],
)
def test_subcommands(argv: list[str], fields: dict[str, object]) -> None:
    args = parse(*argv)
    for name, value in fields.items():
        assert getattr(args, name) == value


def test_connection_flags_are_accepted_after_the_subcommand() -> None:
    from absl import flags

    parse("status", "--addr", "localhost:1234", "abc")
    assert flags.FLAGS.addr == "localhost:1234"
    parse("--addr", "127.0.0.1:50051", "list")
    assert flags.FLAGS.addr == "127.0.0.1:50051"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["start", "--memory", "10M", "--", "x"], "invalid size '10M'"),
        (["start", "--cpu", "-1", "--", "x"], "invalid CPU share '-1'"),
        (["start", "--io-read", "fast", "--", "x"], "invalid rate 'fast'"),
        (["start", "--pids", "0", "--", "x"], "invalid count '0'"),
        (["start", "-e", "NOVALUE", "--", "x"], "invalid environment entry 'NOVALUE'"),
        (["stop", "--grace", "-1", "x"], "invalid duration '-1'"),
        (["start"], "the following arguments are required: CMD"),
        (["status"], "the following arguments are required: ID"),
        (["list", "-o", "yaml"], "invalid choice: 'yaml'"),
        (["nope"], "invalid choice: 'nope'"),
        ([], "the following arguments are required: COMMAND"),
    ],
)
def test_bad_command_lines_exit_2_with_usage(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        parse(*argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: jobctl")
    assert message in err


def test_help_documents_exit_codes_and_environment(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        parse("--help")
    assert exited.value.code == 0
    out = capsys.readouterr().out
    for needle in ("JOBCTL_ADDR", "JOBCTL_CA", "JOBCTL_CERT", "JOBCTL_KEY", "130", "128+N"):
        assert needle in out


def test_an_id_after_a_double_dash_is_read_as_the_id() -> None:
    # worker/ids.py never issues an id that starts with "-"; "--" still passes any token.
    assert parse("logs", "--", "-TnEWeMBR56iGgfCHOdkeQ").job_id == "-TnEWeMBR56iGgfCHOdkeQ"


def test_a_dash_id_is_not_taken_from_the_command_of_run() -> None:
    args = parse("run", "--", "/bin/echo", "-TnEWeMBR56iGgfCHOdkeQ")
    assert args.argv == ["/bin/echo", "-TnEWeMBR56iGgfCHOdkeQ"]


@pytest.mark.parametrize(
    ("argv", "name", "everyone"),
    [
        (["kill", "ID"], "TERM", False),
        (["kill", "-s", "stop", "ID"], "STOP", False),
        (["kill", "--signal", "SIGHUP", "--all", "ID"], "HUP", True),
        (["kill", "-s", "9", "ID"], "KILL", False),
        (["kill", "-s", "SEGV", "ID"], "SEGV", False),  # The daemon says which it allows.
    ],
)
def test_kill_takes_a_signal_by_name_or_number(argv: list[str], name: str, everyone: bool) -> None:
    args = parse(*argv)
    assert (args.command, args.signal, args.all, args.job_id) == ("kill", name, everyone, "ID")


def test_kill_refuses_a_number_that_names_no_signal(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        parse("kill", "-s", "99", "ID")
    assert exited.value.code == 2
    assert "invalid signal '99': no signal has that number" in capsys.readouterr().err


def test_timeout_takes_a_duration() -> None:
    assert parse("run", "--timeout", "1h30m", "--", "x").timeout_seconds == 5400.0
