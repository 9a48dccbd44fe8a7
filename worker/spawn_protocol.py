"""Wire format between the manager (worker/spawner.py) and the spawner (worker/spawner_main.py).

Transport: one end each of an ``AF_UNIX``/``SOCK_SEQPACKET`` socketpair. A message is one
record, so the record boundary is the length prefix; its payload is one JSON object (ASCII,
so that lone surrogates of undecodable file names survive the trip). fds travel as
``SCM_RIGHTS`` with the record they belong to (``socket.send_fds``); the receiver sets
``MSG_CMSG_CLOEXEC`` so that no received fd leaks into an unrelated child.

Messages, by ``type``:

=========  =========  ====================================================================
direction  type       fields
=========  =========  ====================================================================
S -> M     ready      pid: the spawner's pid. Always the first record.
M -> S     prepare    key, cgroup_procs: make a sandbox that joins these cgroups and waits
                      for the spawn naming ``key``. No reply; a sandbox that fails is dropped.
M -> S     spawn      id, argv, env, cwd, uid, gid, cgroup_procs, prepared (a prepare key or
                      null); exactly one fd attached, which becomes the job's stdout and
                      stderr. Without a usable prepared sandbox the spawner makes a new one.
M -> S     kill       id, pid, signal, group (bool: signal the job's process group).
S -> M     started    id, pid: the job's program has been exec'd (its report pipe hit EOF).
S -> M     failed     id, step, errno (int or null), detail: the job was never exec'd and
                      nothing of it is left running.
S -> M     killed     id, delivered (bool), errno (int or null).
S -> M     exited     pid, exit_code or signal, user_seconds, system_seconds, max_rss_kib.
S -> M     fatal      message: the spawner is dying of an internal error (best effort).
=========  =========  ====================================================================

Ordering guarantees, which the manager relies on:

* Every request gets exactly one reply carrying its id, unless the spawner dies first.
  Replies to different requests may come in any order (spawns complete asynchronously).
* For each pid, ``started`` comes before that pid's single ``exited``.
* The spawner signals only pids it has reported ``started`` for and not yet reaped; a
  ``kill`` that arrives after the pid was reaped is answered ``delivered: false``, and a
  ``killed`` reply with ``delivered: true`` always precedes that pid's ``exited``.
* EOF on the socket, from either side, ends the conversation: the spawner SIGKILLs every
  job and exits; the manager fails everything outstanding with SpawnerLost.

Two internal channels connect the spawner to each sandbox it forks (worker/sandbox.py):

* the *report pipe* (close-on-exec), sandbox -> spawner: newline-terminated JSON objects,
  each written with one ``write`` of at most PIPE_BUF bytes (so atomic, see pipe(7)):
  ``{"type": "pid", "pid": N}`` from the job's init, ``{"type": "error", "step": ...,
  "errno": ..., "detail": ...}`` from whichever process failed. EOF means the program was
  exec'd (or everything died): ``started`` is replied only at EOF with a pid and no error;
* the *control socket* (seqpacket), spawner -> sandbox: the ``spawn`` message above with the
  output fd attached, sent once; EOF means the sandbox will never get a job.
"""

from __future__ import annotations

import dataclasses
import errno as errno_module
import json
import os
from collections.abc import Mapping
from typing import Any

# A spawn request carries at most worker.spec.MAX_ARGS_BYTES (128 KiB) of argv and env, which
# JSON's \\uXXXX escapes can grow at most six-fold.
MAX_MESSAGE = 1 << 20
# Unix datagram and seqpacket sends fail with EMSGSIZE above the sender's SO_SNDBUF
# (net/unix/af_unix.c, unix_dgram_sendmsg), and the default (net.core.wmem_default) is ~208 KiB.
SEND_BUFFER = 2 * MAX_MESSAGE
# Report records stay below PIPE_BUF (4096) so that each write is atomic.
_MAX_DETAIL = 2048


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
    """

    argv: tuple[str, ...]
    env: Mapping[str, str]
    cwd: str
    uid: int
    gid: int
    cgroup_procs: tuple[str, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class ExitStatus:
    """How a job's program (PID 1 of its namespace) ended, from wait4(2).

    Attributes:
        exit_code: The exit code when it exited normally, else None.
        signal: The terminating signal when a signal killed it, else None.
        user_seconds: User CPU time of the program and the descendants it reaped.
        system_seconds: System CPU time of the same.
        max_rss_kib: Largest resident set size of the program or a reaped descendant.
    """

    exit_code: int | None
    signal: int | None
    user_seconds: float = 0.0
    system_seconds: float = 0.0
    max_rss_kib: int = 0


class ProtocolError(Exception):
    """A record that does not decode to a JSON object."""


def encode(message: dict[str, Any]) -> bytes:
    """Returns the record for ``message``."""
    return json.dumps(message, separators=(",", ":")).encode("ascii")


def decode(record: bytes) -> dict[str, Any]:
    """Returns the message in ``record``.

    Raises:
        ProtocolError: The record is not a JSON object.
    """
    try:
        message = json.loads(record)
    except ValueError as err:
        raise ProtocolError(f"undecodable record {record[:80]!r}") from err
    if not isinstance(message, dict) or not isinstance(message.get("type", ""), str):
        raise ProtocolError(f"record is not a message: {record[:80]!r}")
    return message


def write_report(fd: int, record: dict[str, Any]) -> None:
    """Writes one report record with a single atomic write; used in forked children only."""
    if isinstance(record.get("detail"), str):
        record = {**record, "detail": record["detail"][:_MAX_DETAIL]}
    os.write(fd, encode(record) + b"\n")


def parse_reports(data: bytes) -> list[dict[str, Any]]:
    """Returns the complete report records in ``data``; a torn last line is dropped."""
    records = []
    for line in data.split(b"\n"):
        try:
            records.append(decode(line))
        except ProtocolError:
            continue
    return records


def describe_failure(errno: int | None, detail: str) -> str:
    """Returns the human message of a failed step.

    For example ``no such file or directory: 'nosuchbinary'``.
    """
    if errno is None:
        return detail
    reason = os.strerror(errno).lower() if errno in errno_module.errorcode else f"errno {errno}"
    return f"{reason}: {detail!r}"


def spawn_message(request: SpawnRequest, prepared: str | None = None) -> dict[str, Any]:
    """Returns the ``spawn`` message for ``request``, without its id."""
    return {
        "type": "spawn",
        "prepared": prepared,
        "argv": list(request.argv),
        "env": dict(request.env),
        "cwd": request.cwd,
        "uid": request.uid,
        "gid": request.gid,
        "cgroup_procs": list(request.cgroup_procs),
    }


def exit_status(message: dict[str, Any]) -> ExitStatus:
    """Returns the ExitStatus carried by an ``exited`` message."""
    return ExitStatus(
        exit_code=message["exit_code"],
        signal=message["signal"],
        user_seconds=message["user_seconds"],
        system_seconds=message["system_seconds"],
        max_rss_kib=message["max_rss_kib"],
    )
