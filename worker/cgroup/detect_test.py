"""Mode detection, controller checks and layout, on fake cgroup trees in tmp_path."""

from __future__ import annotations

import os
import re
from pathlib import Path

import hypothesis
import pytest
from hypothesis import strategies as st

from worker.cgroup import blockdev, detect, v1, v2
from worker.cgroup.base import CgroupMode, job_dir_name
from worker.errors import CgroupError
from worker.limits import Limits

V1_LINES = {
    "cpu": "/",
    "cpuacct": "/",
    "memory": "/svc/daemon",
    "blkio": "/",
    "pids": "/",
    "freezer": "/",
}


def _touch(path: Path, text: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _fake_v1(root: Path, controllers: dict[str, str], *, hybrid: bool = False) -> Path:
    """Makes a v1 tree and returns a fake /proc/self/cgroup for it."""
    lines = []
    for i, (name, path) in enumerate(controllers.items(), start=1):
        _touch(root / name / "cgroup.procs")
        _touch(root / name / path.lstrip("/") / "cgroup.procs")
        lines.append(f"{i}:{name}:{path}")
    if hybrid:
        _touch(root / "unified" / "cgroup.controllers")
    lines.append("0::/")
    proc = root.parent / "proc-self-cgroup"
    proc.write_text("\n".join(lines) + "\n")
    return proc


def _fake_v2(root: Path, controllers: str, own: str = "/") -> Path:
    """Makes a v2 tree with the files the kernel would create, and a fake /proc/self/cgroup."""
    base = root / own.lstrip("/")
    _touch(root / "cgroup.controllers", controllers + "\n")
    _touch(base / "cgroup.controllers", controllers + "\n")
    for directory in (base, base / "jobworker"):
        _touch(directory / "cgroup.subtree_control")
    _touch(base / "jobworker" / "supervisor" / "cgroup.procs")
    proc = root.parent / "proc-self-cgroup"
    proc.write_text(f"0::{own}\n")
    return proc


def test_detect_unified(tmp_path: Path) -> None:
    _fake_v2(tmp_path / "cg", "cpu io memory pids")
    assert detect.detect_mode(tmp_path / "cg") is CgroupMode.UNIFIED


def test_detect_hybrid(tmp_path: Path) -> None:
    _fake_v1(tmp_path / "cg", V1_LINES, hybrid=True)
    assert detect.detect_mode(tmp_path / "cg") is CgroupMode.HYBRID


def test_detect_legacy(tmp_path: Path) -> None:
    _fake_v1(tmp_path / "cg", V1_LINES)
    assert detect.detect_mode(tmp_path / "cg") is CgroupMode.LEGACY


def test_detect_nothing_mounted(tmp_path: Path) -> None:
    (tmp_path / "cg" / "empty").mkdir(parents=True)
    with pytest.raises(CgroupError, match="no cgroup"):
        detect.detect_mode(tmp_path / "cg")


def test_detect_this_host() -> None:
    mode = detect.detect_mode()
    unified = Path("/sys/fs/cgroup/cgroup.controllers").exists()
    assert (mode is CgroupMode.UNIFIED) == unified


def test_parse_proc_cgroup() -> None:
    own = detect.parse_proc_cgroup(
        "12:cpu,cpuacct:/a\n4:memory:/m/x\n1:name=systemd:/s\n0::/u\nbroken\n"
    )
    assert own == {"cpu": "/a", "cpuacct": "/a", "memory": "/m/x", "name=systemd": "/s", "": "/u"}


def test_v1_missing_controllers_are_all_named(tmp_path: Path) -> None:
    proc = _fake_v1(tmp_path / "cg", {"cpu": "/", "memory": "/", "pids": "/"})
    with pytest.raises(CgroupError) as info:
        detect.open_driver(root=tmp_path / "cg", io_paths=(), proc_self_cgroup=proc)
    missing = re.search(r"controllers missing at \S+: ([a-z, ]+) \(", str(info.value))
    assert missing, info.value
    assert missing[1].split(", ") == ["cpuacct", "blkio", "freezer"]
    assert not (tmp_path / "cg" / "cpu" / "jobworker").exists()


def test_v2_missing_controllers_are_all_named(tmp_path: Path) -> None:
    proc = _fake_v2(tmp_path / "cg", "cpuset cpu memory")
    with pytest.raises(CgroupError, match=r"not available in .*: io, pids"):
        detect.open_driver(root=tmp_path / "cg", io_paths=(), proc_self_cgroup=proc)
    assert (tmp_path / "cg" / "jobworker" / "supervisor" / "cgroup.procs").read_text() == ""


def test_v1_layout_under_own_paths(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    proc = _fake_v1(root, V1_LINES, hybrid=True)
    driver = detect.open_driver(root=root, io_paths=(), proc_self_cgroup=proc)
    assert isinstance(driver, v1.V1Driver)
    assert driver.mode is CgroupMode.HYBRID
    assert driver.parents["memory"] == root / "memory/svc/daemon/jobworker"
    assert driver.parents["pids"] == root / "pids/jobworker"
    assert all(p.is_dir() for p in driver.parents.values())


@pytest.mark.parametrize("own", ["/", "/system.slice/jobworkerd.service"])
def test_v2_moves_into_leaf_and_is_idempotent(tmp_path: Path, own: str) -> None:
    root = tmp_path / "cg"
    proc = _fake_v2(root, "cpu io memory pids", own)
    driver = detect.open_driver(root=root, io_paths=(), proc_self_cgroup=proc)
    assert isinstance(driver, v2.V2Driver)
    base = root / own.lstrip("/")
    assert driver.parent == base / "jobworker"
    supervisor = base / "jobworker" / "supervisor"
    assert (supervisor / "cgroup.procs").read_text() == str(os.getpid())
    # The second driver in the same process sees it sits in its leaf already.
    proc.write_text(f"0::{own.rstrip('/')}/jobworker/supervisor\n")
    again = detect.open_driver(root=root, io_paths=(), proc_self_cgroup=proc)
    assert isinstance(again, v2.V2Driver)
    assert again.parent == driver.parent
    assert not (supervisor / "jobworker").exists()


@pytest.mark.parametrize(
    ("own", "base"),
    [
        ("/", "/"),
        ("/jobworker/supervisor", "/"),
        ("/a/b/jobworker/supervisor", "/a/b"),
        ("/a/supervisor", "/a/supervisor"),
    ],
)
def test_v2_own_base(own: str, base: str) -> None:
    assert v2.own_base(own) == base


def test_refused_limit_removes_the_job_dir(tmp_path: Path) -> None:
    # The fake tree has no cpu.max file, so applying the CPU limit fails like a refusal.
    root = tmp_path / "cg"
    proc = _fake_v2(root, "cpu io memory pids")
    driver = detect.open_driver(root=root, io_paths=(), proc_self_cgroup=proc)
    with pytest.raises(CgroupError, match=r"cpu\.max"):
        driver.create("j1", Limits(cpu=0.5))
    assert not (root / "jobworker" / "job-j1").exists()


def test_io_limit_without_a_disk_fails(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    proc = _fake_v2(root, "cpu io memory pids")
    driver = detect.open_driver(root=root, io_paths=("/proc",), proc_self_cgroup=proc)
    with pytest.raises(CgroupError, match="no block device"):
        driver.create("j1", Limits(io_read_bps=1 << 20))
    assert not (root / "jobworker" / "job-j1").exists()


@pytest.mark.parametrize("job_id", ["", "..", "a/b", "x" * 129, "a b"])
def test_bad_job_ids_are_refused(tmp_path: Path, job_id: str) -> None:
    root = tmp_path / "cg"
    proc = _fake_v2(root, "cpu io memory pids")
    driver = detect.open_driver(root=root, io_paths=(), proc_self_cgroup=proc)
    with pytest.raises(CgroupError, match="job id"):
        driver.create(job_id, Limits())
    assert sorted(p.name for p in (root / "jobworker").iterdir() if p.is_dir()) == ["supervisor"]


def _fake_sysfs(tmp_path: Path) -> Path:
    """A disk 8:0 with partition 8:1, and a whole disk 254:0, as sysfs links them."""
    devices = tmp_path / "devices"
    _touch(devices / "sda" / "dev", "8:0\n")
    _touch(devices / "sda" / "sda1" / "dev", "8:1\n")
    _touch(devices / "sda" / "sda1" / "partition", "1\n")
    _touch(devices / "vda" / "dev", "254:0\n")
    links = tmp_path / "dev-block"
    links.mkdir()
    (links / "8:0").symlink_to(devices / "sda")
    (links / "8:1").symlink_to(devices / "sda" / "sda1")
    (links / "254:0").symlink_to(devices / "vda")
    return links


@pytest.mark.parametrize(
    ("dev", "disk"),
    [
        (blockdev.BlockDevice(8, 1), blockdev.BlockDevice(8, 0)),
        (blockdev.BlockDevice(8, 0), blockdev.BlockDevice(8, 0)),
        (blockdev.BlockDevice(254, 0), blockdev.BlockDevice(254, 0)),
        (blockdev.BlockDevice(0, 45), None),  # tmpfs, overlay, 9p
        (blockdev.BlockDevice(9, 9), None),  # no sysfs entry
    ],
)
def test_partition_maps_to_whole_disk(
    tmp_path: Path, dev: blockdev.BlockDevice, disk: blockdev.BlockDevice | None
) -> None:
    assert blockdev.whole_disk(dev, sys_dev_block=_fake_sysfs(tmp_path)) == disk


def test_disks_behind_real_paths() -> None:
    assert blockdev.disks_behind(["/proc", "/sys"]) == ()
    root_dev = os.stat("/").st_dev
    disks = blockdev.disks_behind(["/", "/"])
    if os.major(root_dev) == 0:
        assert disks == ()
    else:
        assert len(disks) == 1
        assert (Path("/sys/dev/block") / str(disks[0]) / "partition").exists() is False


def test_disks_behind_missing_path() -> None:
    with pytest.raises(CgroupError, match="io path /nonexistent"):
        blockdev.disks_behind(["/nonexistent"])


@pytest.mark.parametrize("text", ["8:x", "8", ""])
def test_bad_device_number(text: str) -> None:
    with pytest.raises(CgroupError, match="device number"):
        blockdev.BlockDevice.parse(text)


@hypothesis.given(st.text())
def test_job_dir_name_is_one_safe_path_component(job_id: str) -> None:
    try:
        name = job_dir_name(job_id)
    except CgroupError:
        return
    assert name.startswith("job-")
    assert Path(name).name == name
    assert name not in (".", "..")
    assert "\x00" not in name


@hypothesis.given(st.text())
def test_parse_proc_cgroup_never_fails(text: str) -> None:
    own = detect.parse_proc_cgroup(text)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in own.items())
