"""Job specifications, validated on construction."""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Mapping

from worker.errors import InvalidSpec
from worker.limits import Limits

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
    limits: Limits = dataclasses.field(default_factory=Limits)

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
