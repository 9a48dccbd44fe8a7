"""jobworker's library: run Linux processes as isolated, resource-limited jobs.

The public API is re-exported here, lazily (PEP 562 module __getattr__): the spawner, a
fresh interpreter that must start fast and import nothing it does not need, imports
``worker.linux`` and would otherwise load the whole manager with asyncio just to get there.
"""

from __future__ import annotations

import importlib
import types
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from worker.config import ManagerConfig
    from worker.errors import (
        CgroupError,
        InvalidSpec,
        JobNotFound,
        ManagerClosed,
        SpawnerLost,
        StartFailed,
        WorkerError,
    )
    from worker.limits import Limits
    from worker.manager import JobManager
    from worker.spec import DEFAULT_PATH, JobSpec
    from worker.status import JobState, JobStatus, Usage

_MODULE_OF: Final = types.MappingProxyType(
    {
        "CgroupError": "worker.errors",
        "InvalidSpec": "worker.errors",
        "JobNotFound": "worker.errors",
        "ManagerClosed": "worker.errors",
        "SpawnerLost": "worker.errors",
        "StartFailed": "worker.errors",
        "WorkerError": "worker.errors",
        "JobManager": "worker.manager",
        "ManagerConfig": "worker.config",
        "DEFAULT_PATH": "worker.spec",
        "JobSpec": "worker.spec",
        "Limits": "worker.limits",
        "JobState": "worker.status",
        "JobStatus": "worker.status",
        "Usage": "worker.status",
    }
)

__all__ = [
    "DEFAULT_PATH",
    "CgroupError",
    "InvalidSpec",
    "JobManager",
    "JobNotFound",
    "JobSpec",
    "JobState",
    "JobStatus",
    "Limits",
    "ManagerClosed",
    "ManagerConfig",
    "SpawnerLost",
    "StartFailed",
    "Usage",
    "WorkerError",
]


def __getattr__(name: str) -> object:
    """Imports a public name's module on first use (PEP 562)."""
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'worker' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
