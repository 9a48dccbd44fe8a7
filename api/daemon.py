"""Runs the daemon: a job manager from worker/ behind the server from api/server.py.

Imports grpc, so jobworkerd's main imports this module only after api/tls_policy.py has
restricted TLS 1.2.
"""

from __future__ import annotations

import dataclasses

from api import server
from api.pki import TlsFiles
from api.tls import server_credentials
from worker.manager import JobManager, ManagerConfig


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


async def run(settings: Settings) -> None:
    """Starts the job manager and serves until SIGTERM/SIGINT.

    Raises:
        OSError: A certificate file cannot be read.
        RuntimeError: The listen address cannot be bound.
        worker.errors.WorkerError: The job manager cannot start.
    """
    credentials = server_credentials(settings.tls)
    async with JobManager(settings.manager) as manager:
        await server.serve(manager, credentials, settings.listen, settings.shutdown_timeout)
