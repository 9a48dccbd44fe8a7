"""Each controller's limit writers and usage readers, on fake cgroup directories in tmp_path.

The writers are checked through V1JobCgroup.apply() and V2JobCgroup.apply(), with files.write
recorded, so the tests also cover which controller each version calls; the kernel's side of
the same writes is tested in limits_test.py.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from worker.cgroup import cpu, files, freezer, memory, v1, v2
from worker.cgroup.blockdev import BlockDevice
from worker.errors import CgroupError
from worker.limits import Limits
from worker.status import Usage

MiB = 1 << 20
DISKS = (BlockDevice(8, 0), BlockDevice(254, 0))
ALL_LIMITS = Limits(
    cpu=0.5, memory_bytes=64 * MiB, io_read_bps=1 * MiB, io_write_bps=2 * MiB, pids=8
)
# What the kernel would create and the writers check for, besides the files they write.
SWAP_FILES = {"v1": "memory/memory.memsw.limit_in_bytes", "v2": "memory.swap.max"}

Writes = list[tuple[str, str]]


@pytest.fixture
def writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Writes:
    """Records every files.write() as (path relative to tmp_path, value)."""
    recorded: Writes = []

    def record(path: Path, value: str) -> None:
        recorded.append((str(path.relative_to(tmp_path)), value))

    monkeypatch.setattr(files, "write", record)
    return recorded


def _touch(path: Path, text: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _v1_job(root: Path, devices: tuple[BlockDevice, ...] = DISKS) -> v1.V1JobCgroup:
    dirs = {c: root / c for c in v1.REQUIRED_CONTROLLERS}
    for path in dirs.values():
        path.mkdir(parents=True, exist_ok=True)
    return v1.V1JobCgroup(dirs, None, devices)


def _v2_job(root: Path, devices: tuple[BlockDevice, ...] = DISKS) -> v2.V2JobCgroup:
    return v2.V2JobCgroup(root, None, devices)


JOBS: dict[str, Callable[..., v1.V1JobCgroup | v2.V2JobCgroup]] = {"v1": _v1_job, "v2": _v2_job}


@pytest.mark.parametrize(
    ("cores", "quota"),
    [
        (0.5, 50_000),
        (2.0, 200_000),
        (0.123456, 12_346),
        (0.01, 1_000),
        (0.001, 1_000),
        (1024, 102_400_000),
    ],
)
def test_quota_is_run_time_per_period_at_least_one_ms(cores: float, quota: int) -> None:
    assert cpu.quota_us(cores) == quota


def test_v1_writes_every_set_limit(tmp_path: Path, writes: Writes) -> None:
    _touch(tmp_path / SWAP_FILES["v1"])
    _v1_job(tmp_path).apply(ALL_LIMITS)
    assert writes == [
        ("cpu/cpu.cfs_period_us", "100000"),
        ("cpu/cpu.cfs_quota_us", "50000"),
        ("memory/memory.limit_in_bytes", str(64 * MiB)),
        ("memory/memory.memsw.limit_in_bytes", str(64 * MiB)),
        ("blkio/blkio.throttle.read_bps_device", f"8:0 {MiB}"),
        ("blkio/blkio.throttle.read_bps_device", f"254:0 {MiB}"),
        ("blkio/blkio.throttle.write_bps_device", f"8:0 {2 * MiB}"),
        ("blkio/blkio.throttle.write_bps_device", f"254:0 {2 * MiB}"),
        ("pids/pids.max", "8"),
    ]


def test_v2_writes_every_set_limit(tmp_path: Path, writes: Writes) -> None:
    _touch(tmp_path / SWAP_FILES["v2"])
    _v2_job(tmp_path).apply(ALL_LIMITS)
    assert writes == [
        ("cpu.max", "50000 100000"),
        ("memory.max", str(64 * MiB)),
        ("memory.swap.max", "0"),
        ("io.max", f"8:0 rbps={MiB} wbps={2 * MiB}"),
        ("io.max", f"254:0 rbps={MiB} wbps={2 * MiB}"),
        ("pids.max", "8"),
    ]


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("v1", [("blkio/blkio.throttle.write_bps_device", "8:0 4096")]),
        ("v2", [("io.max", "8:0 wbps=4096")]),
    ],
)
def test_one_io_direction_writes_only_its_rule(
    tmp_path: Path, writes: Writes, version: str, expected: Writes
) -> None:
    JOBS[version](tmp_path, DISKS[:1]).apply(Limits(io_write_bps=4096))
    assert writes == expected


@pytest.mark.parametrize("version", JOBS)
def test_unset_limits_write_nothing(tmp_path: Path, writes: Writes, version: str) -> None:
    JOBS[version](tmp_path).apply(Limits())
    assert writes == []


@pytest.mark.parametrize("version", JOBS)
def test_io_limit_without_a_disk_fails(tmp_path: Path, writes: Writes, version: str) -> None:
    with pytest.raises(CgroupError, match="io read limit set, but no block device"):
        JOBS[version](tmp_path, ()).apply(Limits(io_read_bps=MiB))
    assert writes == []


@pytest.mark.parametrize("version", JOBS)
def test_memory_limit_without_swap_accounting(
    tmp_path: Path, writes: Writes, monkeypatch: pytest.MonkeyPatch, version: str
) -> None:
    # No memsw or memory.swap.max file: the kernel does not account swap.
    job = JOBS[version](tmp_path)
    monkeypatch.setattr(memory, "host_has_swap", lambda: True)
    with pytest.raises(CgroupError, match=r"memory limit cannot keep the job out of swap"):
        job.apply(Limits(memory_bytes=64 * MiB))
    assert len(writes) == 1  # Only the memory limit itself, which the failed start removes.
    writes.clear()
    # A host without swap has nothing to escape to: the memory limit alone is complete.
    monkeypatch.setattr(memory, "host_has_swap", lambda: False)
    job.apply(Limits(memory_bytes=64 * MiB))
    assert [value for _, value in writes] == [str(64 * MiB)]


V1_COUNTERS = {
    "cpuacct/cpuacct.usage": "123456789\n",
    "cpu/cpu.stat": "nr_periods 40\nnr_throttled 10\nthrottled_time 3000000\nnr_bursts 0\n",
    "pids/pids.events": "max 3\n",
    "memory/memory.failcnt": "1\n",
    "memory/memory.memsw.failcnt": "4\n",
    "memory/memory.usage_in_bytes": "4096\n",
    "memory/memory.max_usage_in_bytes": "8192\n",
    "memory/memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
    "blkio/blkio.throttle.io_service_bytes": (
        "8:0 Read 4096\n8:0 Write 8192\n8:0 Sync 12288\n8:0 Async 0\n8:0 Discard 0\n"
        "8:0 Total 12288\n254:0 Read 1000\n254:0 Write 0\n254:0 Total 1000\nTotal 13288\n"
    ),
}
V2_COUNTERS = {
    "cpu.stat": (
        "usage_usec 123456\nuser_usec 100000\nsystem_usec 23456\n"
        "nr_periods 40\nnr_throttled 10\nthrottled_usec 3000\n"
    ),
    "pids.events": "max 3\n",
    "memory.current": "4096\n",
    "memory.peak": "8192\n",
    "memory.events": "low 0\nhigh 0\nmax 5\noom 2\noom_kill 2\noom_group_kill 0\n",
    "io.stat": (
        "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n"
        "254:0 rbytes=1000 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n"
    ),
}
COUNTED = Usage(
    cpu_usec=123456,
    memory_bytes=4096,
    memory_peak_bytes=8192,
    io_read_bytes=5096,
    io_write_bytes=8192,
    oom_kills=2,
    pids_refused=3,
    memory_max_events=5,
    cpu_periods=40,
    cpu_throttled_periods=10,
    cpu_throttled_usec=3000,
)


@pytest.mark.parametrize(("version", "counters"), [("v1", V1_COUNTERS), ("v2", V2_COUNTERS)])
def test_usage_reads_every_controller(
    tmp_path: Path, version: str, counters: dict[str, str]
) -> None:
    for name, text in counters.items():
        _touch(tmp_path / name, text)
    assert JOBS[version](tmp_path).usage() == COUNTED


def test_v2_memory_high_events(tmp_path: Path) -> None:
    for name, text in V2_COUNTERS.items():
        _touch(tmp_path / name, text.replace("high 0", "high 7"))
    assert _v2_job(tmp_path).usage().memory_high_events == 7


def test_v2_usage_without_memory_peak(tmp_path: Path) -> None:
    for name, text in V2_COUNTERS.items():
        if name != "memory.peak":  # Before Linux 5.19.
            _touch(tmp_path / name, text)
    assert _v2_job(tmp_path).usage().memory_peak_bytes == 0


@pytest.mark.parametrize(
    ("frozen", "expected"),
    [
        (freezer.frozen_v1, [("freezer.state", "FROZEN"), ("freezer.state", "THAWED")]),
        (freezer.frozen_v2, [("cgroup.freeze", "1"), ("cgroup.freeze", "0")]),
    ],
)
def test_freezer_thaws_even_when_the_body_fails(
    tmp_path: Path,
    writes: Writes,
    frozen: Callable[[Path], AbstractContextManager[None]],
    expected: Writes,
) -> None:
    with pytest.raises(CgroupError, match="signal failed"), frozen(tmp_path):
        assert writes == expected[:1]
        raise CgroupError("signal failed")
    assert writes == expected
