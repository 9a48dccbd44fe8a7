"""Runs the daemon: a job manager from worker/ behind the server from api/server.py.

Imports grpc, so jobworkerd's main imports this module only after api/tls_policy.py has
restricted TLS 1.2.
"""

from __future__ import annotations

import dataclasses
import resource

from api import server
from api.pki import TlsFiles
from api.tls import server_credentials
from worker.config import ManagerConfig
from worker.manager import JobManager


@dataclasses.dataclass(frozen=True, slots=True)
class Settings:
    """Everything the daemon is configured with (from jobworkerd's flags).

    Attributes:
        listen: ``host:port`` to serve on.
        tls: The server's certificate and key, and the CA that clients must chain to.
        manager: The job manager's configuration.
        shutdown_timeout: Seconds for the graceful shutdown before the hard stop.
    """

    listen: str
    tls: TlsFiles
    manager: ManagerConfig
    shutdown_timeout: float


def raise_fd_limit() -> int:
    """Raises this process's soft RLIMIT_NOFILE to its hard limit; returns the new limit.

    Every follower of a job's output holds one fd, and every running job two (its log and
    its cgroup lock), so the usual soft limit of 1024 would let a few hundred streams make
    every start fail with EMFILE. The hard limit is the administrator's cap (LimitNOFILE in
    deploy/jobworkerd.service).
    """
    # TODO: cap open streams and running jobs per identity (RESOURCE_EXHAUSTED), so that
    # one user cannot use up the whole fd budget; today only the total is bounded.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


async def run(settings: Settings) -> None:
    """Starts the job manager and serves until SIGTERM/SIGINT.

    Raises:
        OSError: A certificate file cannot be read.
        RuntimeError: The listen address cannot be bound.
        worker.errors.WorkerError: The job manager cannot start.
    """
    raise_fd_limit()
    credentials = server_credentials(settings.tls)
    async with JobManager(settings.manager) as manager:
        await server.serve(manager, credentials, settings.listen, settings.shutdown_timeout)
