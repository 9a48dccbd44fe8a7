"""jobworkerd: the jobworker gRPC daemon (main only wires flags to api/server.py).

Run it with ``tools/bazel run //api:jobworkerd``. Without TLS flags it uses, and creates on
first run, the dev PKI in ``<workspace>/.dev/pki`` (see api/pki.py).

TODO: read these settings from a configuration file once deployments need more than
flags; every default here is hard-coded on purpose until then.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from pathlib import Path

from absl import app, flags, logging

from api import pki, tls_policy
from worker.config import ManagerConfig
from worker.limits import Limits

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
# Limit defaults apply when a request leaves a limit unset; caps reject larger requests.
# TODO: size the defaults and caps from the host (cores, RAM) instead of fixed numbers.
_DEFAULT_CPU = flags.DEFINE_float("default_cpu", 1.0, "Default CPU limit, in cores.")
_DEFAULT_MEMORY = flags.DEFINE_integer(
    "default_memory_bytes", 512 << 20, "Default memory limit in bytes."
)
_DEFAULT_PIDS = flags.DEFINE_integer("default_pids", 256, "Default process/thread limit.")
_DEFAULT_IO_READ = flags.DEFINE_integer(
    "default_io_read_bps", None, "Default read bandwidth limit (bytes/s); unset: unlimited."
)
_DEFAULT_IO_WRITE = flags.DEFINE_integer(
    "default_io_write_bps", None, "Default write bandwidth limit (bytes/s); unset: unlimited."
)
_MAX_CPU = flags.DEFINE_float("max_cpu", 2.0, "Largest CPU limit a request may ask for.")
_MAX_MEMORY = flags.DEFINE_integer(
    "max_memory_bytes", 8 << 30, "Largest memory limit a request may ask for."
)
_MAX_PIDS = flags.DEFINE_integer("max_pids", 4096, "Largest process limit a request may ask for.")
_MAX_IO_READ = flags.DEFINE_integer(
    "max_io_read_bps", 1 << 30, "Largest read bandwidth limit a request may ask for."
)
_MAX_IO_WRITE = flags.DEFINE_integer(
    "max_io_write_bps", 1 << 30, "Largest write bandwidth limit a request may ask for."
)


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


def _limits() -> tuple[Limits, Limits]:
    default = Limits(
        cpu=_DEFAULT_CPU.value,
        memory_bytes=_DEFAULT_MEMORY.value,
        io_read_bps=_DEFAULT_IO_READ.value,
        io_write_bps=_DEFAULT_IO_WRITE.value,
        pids=_DEFAULT_PIDS.value,
    )
    maximum = Limits(
        cpu=_MAX_CPU.value,
        memory_bytes=_MAX_MEMORY.value,
        io_read_bps=_MAX_IO_READ.value,
        io_write_bps=_MAX_IO_WRITE.value,
        pids=_MAX_PIDS.value,
    )
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
    manager = ManagerConfig(
        data_dir=Path(_DATA_DIR.value),
        job_uid=_JOB_UID.value,
        job_gid=_JOB_GID.value,
        default_grace=_DEFAULT_GRACE.value,
        default_limits=default_limits,
        max_limits=max_limits,
    )
    settings = daemon.Settings(_LISTEN.value, _tls_files(), manager, _SHUTDOWN_TIMEOUT.value)
    asyncio.run(daemon.run(settings))


if __name__ == "__main__":
    app.run(main)
