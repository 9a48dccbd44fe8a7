"""Wire format between the manager (worker/spawner.py) and the spawner (worker/spawner_main.py).

Transport: one end each of an ``AF_UNIX``/``SOCK_SEQPACKET`` socketpair. A message is one
record: the kernel keeps record boundaries, so no framing is added. Its payload is one JSON
object (ASCII, so that lone surrogates of undecodable file names survive the trip) whose
``type`` names the message class below. fds travel as ``SCM_RIGHTS`` with the record they
belong to (``socket.send_fds``); the receiver sets ``MSG_CMSG_CLOEXEC`` so that no received fd
leaks into an unrelated child.

Each message is a class here with its encoder (``fields``) and decoder (``from_fields``) side
by side; ``encode`` and ``decode`` are the only way records are made and read, at every end.
The spawner's first record is Ready; the manager sends Prepare, Spawn (with the job's output
fd attached) and Kill; the spawner replies Started or Failed to a Spawn, Killed to a Kill,
and reports Exited and Fatal on its own.

Ordering guarantees, which the manager relies on:

* Every request (Spawn, Kill) gets exactly one reply carrying its ``request_id``, unless the
  spawner dies first. Replies to different requests may come in any order.
* For each pid, Started comes before that pid's single Exited.
* The spawner signals only pids it has reported Started for and not yet reaped; a Kill that
  arrives after the pid was reaped is answered ``delivered=False``, and a Killed with
  ``delivered=True`` always precedes that pid's Exited.
* EOF on the socket, from either side, ends the conversation: the spawner SIGKILLs every
  job and exits; the manager fails everything outstanding with SpawnerLost.

Two internal channels connect the spawner to each sandbox it forks (worker/sandbox.py):

* the *report pipe* (close-on-exec), sandbox -> spawner: newline-terminated records, each
  written with one ``write`` of less than PIPE_BUF bytes (so atomic, see pipe(7)): ReportPid
  from B, StepError from whichever process failed, then, from jobinit (worker/init/), which B
  execs with the pipe as its fd 3: ProgramExec, or ExecFailed, and finally ProgramExit. EOF
  means jobinit and everything of the sandbox has exited (worker/spawner_sandbox.py);
* the *control socket* (seqpacket), spawner -> sandbox: the Spawn record as the manager sent
  it, with the output fd attached, sent once; EOF means the sandbox will never get a job.
"""

from __future__ import annotations

import dataclasses
import errno as errno_module
import json
import os
from collections.abc import Mapping
from typing import Any, ClassVar, Self, TypeVar

# A spawn request carries at most worker.spec.MAX_ARGS_BYTES (128 KiB) of argv and env, which
# JSON's \\uXXXX escapes can grow at most six-fold.
MAX_MESSAGE = 1 << 20
# Unix datagram and seqpacket sends fail with EMSGSIZE above the sender's SO_SNDBUF
# (net/unix/af_unix.c, unix_dgram_sendmsg), and the default (net.core.wmem_default) is ~208 KiB.
SEND_BUFFER = 2 * MAX_MESSAGE


class ProtocolError(Exception):
    """A record that does not decode to a known message."""


@dataclasses.dataclass(frozen=True, slots=True)
class SpawnRequest:
    """One job to start.

    Attributes:
        argv: Program and arguments; argv[0] is resolved in env["PATH"] unless it has a "/".
        env: The job's complete environment.
        cwd: Working directory, entered as the job's user.
        uid: User id the job runs as.
        gid: Group id the job runs as; supplementary groups are cleared.
        cgroup_procs: cgroup.procs files the job joins before its first instruction.
        hostname: The hostname in the job's own UTS namespace.
    """

    argv: tuple[str, ...]
    env: Mapping[str, str]
    cwd: str
    uid: int
    gid: int
    cgroup_procs: tuple[str, ...]
    hostname: str = "job"


@dataclasses.dataclass(frozen=True, slots=True)
class ExitStatus:
    """How a job's program ended, from wait4(2) in its init (worker/init/jobinit.c).

    Attributes:
        exit_code: The exit code when it exited normally, else None.
        signal: The terminating signal when a signal killed it, else None.
        core_dumped: Whether the kernel wrote a core dump as the signal killed it.
        user_seconds: User CPU time of the job's processes that were reaped.
        system_seconds: System CPU time of the same.
        max_rss_kib: Largest resident set size of a reaped process of the job.
    """

    exit_code: int | None
    signal: int | None
    core_dumped: bool = False
    user_seconds: float = 0.0
    system_seconds: float = 0.0
    max_rss_kib: int = 0


_BY_TYPE: dict[str, type[Message]] = {}
_M = TypeVar("_M", bound="type[Message]")


def register(cls: _M) -> _M:
    """Class decorator: makes ``decode`` turn records of ``cls.TYPE`` into ``cls``."""
    if _BY_TYPE.setdefault(cls.TYPE, cls) is not cls:
        raise TypeError(f"two message classes of type {cls.TYPE!r}")
    return cls


@dataclasses.dataclass(frozen=True, slots=True)
class Message:
    """Base of every message. Flat messages use these defaults; others override both."""

    TYPE: ClassVar[str]

    def fields(self) -> dict[str, Any]:
        """Returns the JSON fields of this message, without ``type`` (the encoder)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_fields(cls, fields: dict[str, Any]) -> Self:
        """Returns the message made of decoded JSON ``fields`` (the decoder).

        Raises:
            KeyError: A field is missing.
        """
        return cls(**{f.name: fields[f.name] for f in dataclasses.fields(cls)})


@register
@dataclasses.dataclass(frozen=True, slots=True)
class Ready(Message):
    """The spawner is serving; ``pid`` is its own."""

    TYPE = "ready"
    pid: int


@register
@dataclasses.dataclass(frozen=True, slots=True)
class Prepare(Message):
    """Make a sandbox in ``cgroup_procs`` that waits for the Spawn naming ``key``."""

    TYPE = "prepare"
    key: str
    cgroup_procs: tuple[str, ...]

    @classmethod
    def from_fields(cls, fields: dict[str, Any]) -> Self:
        """Decodes; the JSON list of cgroup.procs files becomes a tuple."""
        return cls(key=fields["key"], cgroup_procs=tuple(fields["cgroup_procs"]))


@register
@dataclasses.dataclass(frozen=True, slots=True)
class Spawn(Message):
    """Start ``job``, in the sandbox prepared under ``prepared`` if there is one."""

    TYPE = "spawn"
    request_id: int
    job: SpawnRequest
    prepared: str | None = None

    def fields(self) -> dict[str, Any]:
        """Encodes the job's fields beside the request id and the prepare key."""
        job = dataclasses.asdict(self.job) | {"env": dict(self.job.env)}
        return {"request_id": self.request_id, "prepared": self.prepared, **job}

    @classmethod
    def from_fields(cls, fields: dict[str, Any]) -> Self:
        """Decodes; JSON lists become the request's tuples."""
        job = SpawnRequest(
            argv=tuple(fields["argv"]),
            env=fields["env"],
            cwd=fields["cwd"],
            uid=fields["uid"],
            gid=fields["gid"],
            cgroup_procs=tuple(fields["cgroup_procs"]),
            hostname=fields["hostname"],
        )
        return cls(request_id=fields["request_id"], job=job, prepared=fields["prepared"])


@register
@dataclasses.dataclass(frozen=True, slots=True)
class Kill(Message):
    """Signal the job whose init is ``pid``.

    SIGKILL kills the init, and with it the whole PID namespace; any other signal is
    forwarded by the init to the program alone.
    """

    TYPE = "kill"
    request_id: int
    pid: int
    signal: int


@register
@dataclasses.dataclass(frozen=True, slots=True)
class Started(Message):
    """Reply to Spawn: the program runs, under its init ``pid``."""

    TYPE = "started"
    request_id: int
    pid: int


@register
@dataclasses.dataclass(frozen=True, slots=True)
class Failed(Message):
    """Reply to Spawn: ``step`` failed, with ``errno`` when a syscall failed."""

    TYPE = "failed"
    request_id: int
    step: str
    errno: int | None
    detail: str


@register
@dataclasses.dataclass(frozen=True, slots=True)
class Killed(Message):
    """Reply to Kill."""

    TYPE = "killed"
    request_id: int
    delivered: bool
    errno: int | None


@register
@dataclasses.dataclass(frozen=True, slots=True)
class Exited(Message):
    """The job whose init is ``pid`` was reaped."""

    TYPE = "exited"
    pid: int
    status: ExitStatus

    def fields(self) -> dict[str, Any]:
        """Encodes the exit status's fields beside the pid."""
        return {"pid": self.pid, **dataclasses.asdict(self.status)}

    @classmethod
    def from_fields(cls, fields: dict[str, Any]) -> Self:
        """Decodes the flat fields back into an ExitStatus."""
        names = (f.name for f in dataclasses.fields(ExitStatus))
        return cls(pid=fields["pid"], status=ExitStatus(**{n: fields[n] for n in names}))


@register
@dataclasses.dataclass(frozen=True, slots=True)
class Fatal(Message):
    """The spawner is dying of an internal error."""

    TYPE = "fatal"
    message: str


def encode(message: Message) -> bytes:
    """Returns the record of ``message``."""
    return json.dumps({"type": message.TYPE, **message.fields()}, separators=(",", ":")).encode(
        "ascii"
    )


def decode(record: bytes) -> Message:
    """Returns the message in ``record``.

    Raises:
        ProtocolError: The record is not JSON, names no known type, or lacks a field.
    """
    try:
        fields = json.loads(record)
        cls = _BY_TYPE[fields.pop("type")]
        return cls.from_fields(fields)
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise ProtocolError(f"undecodable record {record[:80]!r}: {err!r}") from err


def describe_failure(errno: int | None, detail: str) -> str:
    """Returns the human message of a failed step.

    For example ``no such file or directory: 'nosuchbinary'``.
    """
    if errno is None:
        return detail
    reason = os.strerror(errno).lower() if errno in errno_module.errorcode else f"errno {errno}"
    return f"{reason}: {detail!r}"
