"""The fixtures every end-to-end module shares: one daemon per module, the leak check."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.testing_e2e import Daemon, module_daemon, no_leaks_except_job_cgroups


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """A jobworkerd for the whole module; at the end, a check that it left no cgroup."""
    yield from module_daemon(tmp_path_factory.mktemp("e2e"))


@pytest.fixture(autouse=True)
def _no_leaks_except_job_cgroups() -> Iterator[None]:
    yield from no_leaks_except_job_cgroups()
