"""Job specifications and resource limits, validated on construction."""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Mapping

from worker.errors import InvalidSpec

DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
# Linux refuses execve() with more than ARG_MAX (usually 2 MiB) of argv plus environment;
# a tighter bound keeps requests small and errors early and clear.
MAX_ARGS_BYTES = 128 * 1024
# PATH_MAX: chdir(2) refuses longer paths with ENAMETOOLONG. Together with MAX_ARGS_BYTES it
# bounds the spawn message (worker/spawn_protocol.py, MAX_MESSAGE).
MAX_CWD_BYTES = 4096
MAX_OWNER_LEN = 256


def _check_text(field: str, value: object, *, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise InvalidSpec(field, f"must be a string, not {type(value).__name__}")
    if not value and not allow_empty:
        raise InvalidSpec(field, "must not be empty")
    if "\x00" in value:
        raise InvalidSpec(field, "must not contain NUL bytes")
    return value


def _size(text: str) -> int:
    # As execve(2) and chdir(2) get it: os.fsencode() turns the lone surrogates of
    # undecodable file names back into their bytes.
    return len(text.encode(errors="surrogateescape"))


@dataclasses.dataclass(frozen=True, slots=True)
class Limits:
    """Per-job resource limits; None means "use the daemon default" (or unlimited).

    Attributes:
        cpu: CPU bandwidth as a fraction of one core; 0.5 is half a core, 2.0 two cores.
        memory_bytes: Hard memory limit in bytes, swap excluded.
        io_read_bps: Read bandwidth limit in bytes per second on throttled block devices.
        io_write_bps: Write bandwidth limit in bytes per second on throttled block devices.
        pids: Maximum number of processes and threads.
    """

    cpu: float | None = None
    memory_bytes: int | None = None
    io_read_bps: int | None = None
    io_write_bps: int | None = None
    pids: int | None = None

    def __post_init__(self) -> None:
        if self.cpu is not None:
            if isinstance(self.cpu, bool) or not isinstance(self.cpu, int | float):
                raise InvalidSpec("limits.cpu", "must be a number")
            if not 0.01 <= self.cpu <= 1024:
                raise InvalidSpec(
                    "limits.cpu", f"must be between 0.01 and 1024 cores, got {self.cpu}"
                )
        for name, low in (
            ("memory_bytes", 1 << 20),
            ("io_read_bps", 1),
            ("io_write_bps", 1),
            ("pids", 1),
        ):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int):
                raise InvalidSpec(f"limits.{name}", "must be an integer")
            if not low <= value <= 1 << 62:
                raise InvalidSpec(f"limits.{name}", f"must be between {low} and 2**62, got {value}")

    def merged_over(self, defaults: Limits) -> Limits:
        """Returns these limits with unset fields taken from ``defaults``."""
        return Limits(
            **{
                f.name: getattr(defaults, f.name)
                if getattr(self, f.name) is None
                else getattr(self, f.name)
                for f in dataclasses.fields(self)
            }
        )

    def check_within(self, maximum: Limits) -> None:
        """Raises InvalidSpec when a set field exceeds the same field of ``maximum``."""
        for f in dataclasses.fields(self):
            value, cap = getattr(self, f.name), getattr(maximum, f.name)
            if value is not None and cap is not None and value > cap:
                raise InvalidSpec(f"limits.{f.name}", f"{value} exceeds the daemon maximum {cap}")


@dataclasses.dataclass(frozen=True, slots=True)
class JobSpec:
    """What to run, where, for whom and within which limits.

    Attributes:
        argv: The program and its arguments, executed directly with no shell. A relative
            argv[0] is looked up in the PATH of ``env``.
        owner: Opaque owner identity; the API sets it from the client certificate.
        env: The job's complete environment; the daemon's own environment never leaks in.
        cwd: Absolute working directory, entered as the job's user.
        limits: Requested limits; unset fields take the manager's defaults.
    """

    argv: tuple[str, ...]
    owner: str
    env: Mapping[str, str] = dataclasses.field(
        default_factory=lambda: types.MappingProxyType({"PATH": DEFAULT_PATH})
    )
    cwd: str = "/"
    limits: Limits = Limits()

    def __post_init__(self) -> None:
        argv: tuple[object, ...] = tuple(self.argv) if isinstance(self.argv, tuple | list) else ()
        if not isinstance(self.argv, tuple | list):
            raise InvalidSpec("argv", "must be a list of strings")
        if not argv:
            raise InvalidSpec("argv", "must not be empty")
        checked = tuple(_check_text(f"argv[{i}]", a, allow_empty=i > 0) for i, a in enumerate(argv))
        _check_text("owner", self.owner)
        if len(self.owner) > MAX_OWNER_LEN:
            raise InvalidSpec("owner", f"longer than {MAX_OWNER_LEN} characters")
        if not isinstance(self.env, Mapping):
            raise InvalidSpec("env", "must be a mapping of strings")
        env = {}
        for key, value in self.env.items():
            _check_text("env key", key)
            if "=" in key:
                raise InvalidSpec(f"env[{key!r}]", "key must not contain '='")
            env[key] = _check_text(f"env[{key!r}]", value, allow_empty=True)
        size = sum(_size(a) + 1 for a in checked) + sum(
            _size(k) + _size(v) + 2 for k, v in env.items()
        )
        if size > MAX_ARGS_BYTES:
            raise InvalidSpec("argv", f"argv and env total {size} bytes, over {MAX_ARGS_BYTES}")
        _check_text("cwd", self.cwd)
        if not self.cwd.startswith("/"):
            raise InvalidSpec("cwd", "must be an absolute path")
        if _size(self.cwd) >= MAX_CWD_BYTES:
            raise InvalidSpec("cwd", f"must be shorter than {MAX_CWD_BYTES} bytes")
        if not isinstance(self.limits, Limits):
            raise InvalidSpec("limits", "must be a Limits value")
        object.__setattr__(self, "argv", checked)
        object.__setattr__(self, "env", types.MappingProxyType(env))
