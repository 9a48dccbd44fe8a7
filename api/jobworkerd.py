"""jobworkerd: the jobworker gRPC daemon (main only wires flags to api/server.py).

Run it with ``tools/bazel run //api:jobworkerd``. Without TLS flags it uses, and creates on
first run, the dev PKI in ``<workspace>/.dev/pki`` (see api/pki.py).

TODO: read these settings from a configuration file once deployments need more than
flags; every default here is hard-coded on purpose until then.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from absl import app, flags, logging

from api import pki, tls_policy
from worker.config import JobWorld, ManagerConfig
from worker.limits import LIMIT_TABLE, LimitInfo, Limits

_LISTEN = flags.DEFINE_string("listen", "127.0.0.1:50051", "host:port to serve on.")
_PKI_DIR = flags.DEFINE_string(
    "pki_dir",
    None,
    "Dev PKI directory, created on first run (default <workspace>/.dev/pki under bazel "
    "run, else ./.dev/pki). Ignored when --tls_ca/--tls_cert/--tls_key are given.",
)
_TLS_CA = flags.DEFINE_string("tls_ca", None, "CA certificate that client certificates chain to.")
_TLS_CERT = flags.DEFINE_string("tls_cert", None, "The server's certificate (PEM).")
_TLS_KEY = flags.DEFINE_string("tls_key", None, "The server's private key (PEM).")
_DATA_DIR = flags.DEFINE_string("data_dir", "/var/lib/jobworker", "Where job output logs are kept.")
_JOB_UID = flags.DEFINE_integer("job_uid", 65534, "Unprivileged uid jobs run as (nobody).")
_JOB_GID = flags.DEFINE_integer("job_gid", 65534, "Unprivileged gid jobs run as (nogroup).")
_DEFAULT_GRACE = flags.DEFINE_float(
    "default_grace", 5.0, "Seconds between SIGTERM and SIGKILL when stopping a job."
)
_SHUTDOWN_TIMEOUT = flags.DEFINE_float(
    "shutdown_timeout", 15.0, "Seconds to stop jobs and end streams on SIGTERM before a hard stop."
)
_JOB_ROOT = flags.DEFINE_string(
    "job_root",
    "/",
    "Directory bound read-only as every job's /. The host's root by default, so that jobs "
    "find the host's programs and libraries; they write only to their private /tmp.",
)
_JOB_HIDDEN_PATHS = flags.DEFINE_list(
    "job_hidden_paths",
    [],
    "Host paths jobs see as empty, besides --data_dir and the TLS files (and the dev PKI).",
)
_JOB_TMP_BYTES = flags.DEFINE_integer(
    "job_tmp_bytes",
    256 << 20,
    "Size cap of each job's private /tmp, /var/tmp and /dev/shm (also charged to its memory).",
    lower_bound=1 << 20,
)


def _define_limit(
    flag: str, info: LimitInfo, default: float | None, help_template: str
) -> flags.FlagHolder[Any]:
    """Defines the float (cores) or integer flag of a limit and returns it.

    Args:
        flag: The flag's name.
        info: The limit's row of the table.
        default: The flag's default.
        help_template: The help text, with ``{}`` where the limit goes ("cpu limit (cores)").
    """
    unit = f" ({info.unit.value})" if info.unit.value else ""
    help_text = help_template.format(f"{info.label} limit{unit}")
    # What DEFINE_float and DEFINE_integer do, with the parser picked by the unit.
    parser: flags.ArgumentParser[Any] = (
        flags.FloatParser() if info.unit.python_type is float else flags.IntegerParser()
    )
    return flags.DEFINE(parser, flag, default, help_text, serializer=flags.ArgumentSerializer())


# Limit defaults apply when a request leaves a limit unset; caps reject larger requests.
# TODO: size the defaults and caps from the host (cores, RAM) instead of the fixed numbers of
# worker/limits.py.
_DEFAULT_LIMITS: Final[Mapping[str, flags.FlagHolder[Any]]] = {
    name: _define_limit(
        f"default_{name}",
        info,
        info.daemon_default,
        "Default {} of a job that sets none; unset: unlimited.",
    )
    for name, info in LIMIT_TABLE.items()
}
_MAX_LIMITS: Final[Mapping[str, flags.FlagHolder[Any]]] = {
    name: _define_limit(
        f"max_{name}", info, info.daemon_maximum, "Largest {} a request may ask for; unset: no cap."
    )
    for name, info in LIMIT_TABLE.items()
}


def _default_pki_dir() -> Path:
    # `bazel run` starts us inside the runfiles tree; BUILD_WORKSPACE_DIRECTORY is the
    # source workspace, where .dev/ is gitignored.
    return Path(os.environ.get("BUILD_WORKSPACE_DIRECTORY", ".")) / ".dev" / "pki"


def _tls_files() -> pki.TlsFiles:
    given = (_TLS_CA.value, _TLS_CERT.value, _TLS_KEY.value)
    if any(given):
        if not all(given):
            raise app.UsageError("--tls_ca, --tls_cert and --tls_key go together")
        ca, cert, key = (Path(p) for p in given if p)
        return pki.TlsFiles(ca, cert, key)
    directory = Path(_PKI_DIR.value) if _PKI_DIR.value else _default_pki_dir()
    pki.ensure_dev_pki(directory)
    logging.info("using the dev PKI in %s", directory)
    return pki.TlsFiles.in_pki_dir(directory, pki.SERVER_NAME)


def _world(tls: pki.TlsFiles) -> JobWorld:
    """The jobs' view of the host: the root, and hidden paths the daemon's keys among them."""
    hidden = [tls.ca, tls.cert, tls.key]
    if not any((_TLS_CA.value, _TLS_CERT.value, _TLS_KEY.value)):
        hidden.append(tls.key.parent)  # The dev PKI directory: every user's key is there.
    hidden += [Path(p) for p in _JOB_HIDDEN_PATHS.value]
    return JobWorld(
        root=_JOB_ROOT.value,
        hidden=tuple(str(p.absolute()) for p in hidden),
        tmp_bytes=_JOB_TMP_BYTES.value,
    )


def _limits() -> tuple[Limits, Limits]:
    default = Limits(**{name: flag.value for name, flag in _DEFAULT_LIMITS.items()})
    maximum = Limits(**{name: flag.value for name, flag in _MAX_LIMITS.items()})
    default.check_within(maximum)
    return default, maximum


def main(argv: Sequence[str]) -> None:
    """Wires flags, PKI, job manager and server, and serves until SIGTERM/SIGINT."""
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    # grpc reads its cipher list once, at import; api/tls_policy.py explains the trick.
    tls_policy.forbid_tls12()
    from api import daemon  # Late on purpose: grpc must not load before forbid_tls12.

    default_limits, max_limits = _limits()
    tls = _tls_files()
    manager = ManagerConfig(
        data_dir=Path(_DATA_DIR.value).absolute(),
        job_uid=_JOB_UID.value,
        job_gid=_JOB_GID.value,
        default_grace=_DEFAULT_GRACE.value,
        default_limits=default_limits,
        max_limits=max_limits,
        world=_world(tls),
    )
    settings = daemon.Settings(_LISTEN.value, tls, manager, _SHUTDOWN_TIMEOUT.value)
    asyncio.run(daemon.run(settings))


if __name__ == "__main__":
    app.run(main)
