"""The pytest plugin every jobworker test runs with (loaded by //tools:pytest.bzl).

It runs ``async def`` tests on a fresh event loop and fails a test that leaves behind an
asyncio task, a thread, an fd, a child process or a job cgroup. Tests marked ``kernel``
(cgroups, namespaces, another uid) need root: without it the run stops with one line saying
so, rather than skip them and report green.
"""

from __future__ import annotations

import asyncio
import importlib.util
import inspect
import os
from collections.abc import Iterator
from typing import Any

import pytest

from tools.testing.leakcheck import Snapshot, wait_for_no_leaks

KERNEL_NEEDS_ROOT = (
    "kernel tests need root: run as root, or `bazel test //... --test_tag_filters=-kernel`"
)


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Runs coroutine tests to completion and fails them on leftover tasks."""
    func = pyfuncitem.obj
    if not inspect.iscoroutinefunction(func):
        return None
    kwargs = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}

    async def run_and_check() -> None:
        await func(**kwargs)
        current = asyncio.current_task()
        leftover = [t for t in asyncio.all_tasks() if t is not current]
        if leftover:
            for task in leftover:
                task.cancel()
            await asyncio.gather(*leftover, return_exceptions=True)
            pytest.fail(f"test left {len(leftover)} asyncio task(s) running: {leftover!r}")

    # Debug mode reports slow callbacks and never-awaited coroutines with their origin, but
    # records a stack on every call_soon: under the VM's CPU emulation (tools/vm) that cost
    # dominated whole tests, so the guest runs without it; the host run keeps it.
    debug = os.environ.get("JOBWORKER_TEST_IN_VM") != "1"
    with asyncio.Runner(debug=debug) as runner:
        runner.run(run_and_check())
    return True


@pytest.fixture(autouse=True)
def _no_leaks(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fails the test if it leaked threads, fds, child processes or job cgroups."""
    if request.node.get_closest_marker("allow_leaks"):
        yield
        return
    before = Snapshot.take()
    yield
    leaks = wait_for_no_leaks(before)
    if leaks:
        pytest.fail(f"test leaked: {leaks}", pytrace=False)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Stops the run before any test when it holds kernel tests and this is not root.

    Raises:
        pytest.UsageError: With KERNEL_NEEDS_ROOT; Bazel then reports the target failed.
    """
    if os.geteuid() != 0 and any(item.get_closest_marker("kernel") for item in session.items):
        raise pytest.UsageError(KERNEL_NEEDS_ROOT)


def pytest_configure(config: Any) -> None:
    """Registers the markers this plugin reads, and the hypothesis profile where present."""
    config.addinivalue_line("markers", "allow_leaks: skip the leak check (module fixtures only)")
    config.addinivalue_line(
        "markers", "kernel: needs root for cgroups, namespaces or another uid (Bazel tag kernel)"
    )
    # Only targets that use hypothesis depend on it. Their examples are the same on every
    # run, and have no deadline: a stall of the TCG VM or of a loaded host is not a failure.
    if importlib.util.find_spec("hypothesis") is not None:
        import hypothesis

        hypothesis.settings.register_profile(
            "jobworker",
            deadline=None,
            derandomize=True,
            suppress_health_check=[hypothesis.HealthCheck.too_slow],
        )
        hypothesis.settings.load_profile("jobworker")
