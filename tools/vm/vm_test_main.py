"""Runs pytest test files inside a qemu VM on cgroup v2, and fails unless they all pass there.

The host's cgroups are v1/hybrid, so the v2 code paths of worker/ can only be exercised on a
kernel we boot ourselves. This is the main of the //tools/vm:*_vm_test targets; by hand:

    python3 -m tools.vm.vm_test_main --kernel=DIR/vmlinuz worker/cgroup/foo_test.py ...

It never skips: not being root, a missing qemu or kernel are failures, because a green run
must mean that the tests passed on cgroup v2.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tools.vm import initramfs, qemu, result

# The block device the guest's brd module makes (rd_nr=1 gives /dev/ram0, 1:0), for io.max.
_IO_DEVICE = "/dev/ram0"
# Tests that need a throttleable block device read it from here; on the host it is unset and
# they pick a device themselves.
IO_DEVICE_ENV = "JOBWORKER_TEST_IO_DEVICE"
# No colour codes on a serial console. The other flags are pytest_main's, as on the host.
# --durations: the slowest tests, to keep the VM run's time in check. faulthandler_timeout:
# a test still running after 5 minutes gets every thread's traceback printed (pytest's
# faulthandler plugin; it does not stop the test), so a hang in the guest can be diagnosed.
_VM_PYTEST_FLAGS = ("--color=no", "--durations=25", "-o", "faulthandler_timeout=300")
# How much earlier than the host's timeout the guest interrupts pytest: the guest's 30 s grace
# before SIGKILL, the kernel log, and boot time.
_GUEST_TIMEOUT_MARGIN_S = 90
# The guest's TMPDIR: pytest's tmp_path and the tests' job data live there.
_SCRATCH_DISK_BYTES = 4 << 30
_TEST_FILTER_ENV = "TESTBRIDGE_TEST_ONLY"
# Set to "1" in the guest.
IN_VM_ENV = "JOBWORKER_TEST_IN_VM"
_GUEST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_OUTCOME_RE = re.compile(r"^(\S+?\.py)::\S.*? (PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)", re.M)


class HarnessError(Exception):
    """The VM could not be set up or did not report a result."""


def _guest_command(tests: list[str], timeout_s: float) -> initramfs.GuestCommand:
    # The guest sees the host's root at "/", so the host's interpreter, its sys.path (which
    # under Bazel holds the runfiles and @pypi packages) and the cwd are valid there as is.
    cwd = os.getcwd()
    path = [cwd] + [p for p in sys.path[1:] if p and Path(p).is_dir() and p != cwd]
    env: tuple[tuple[str, str], ...] = (
        ("PATH", _GUEST_PATH),
        ("HOME", "/root"),
        ("LANG", "C.UTF-8"),
        ("TERM", "dumb"),
        ("TMPDIR", initramfs.SCRATCH_DIR),
        ("PYTHONPATH", os.pathsep.join(path)),
        # Unbuffered, so pytest's lines reach the console before a hang or a crash.
        ("PYTHONUNBUFFERED", "1"),
        ("PYTHONDONTWRITEBYTECODE", "1"),
        (IO_DEVICE_ENV, _IO_DEVICE),
        # Tests may use it to scale down pure load loops (e.g. thousands of jobs), which TCG
        # runs 5-10 times slower than the host; never to skip a kernel assertion.
        (IN_VM_ENV, "1"),
    )
    # `bazel test --test_filter=EXPR` reaches tools/pytest_main as -k EXPR, in the guest too.
    if test_filter := os.environ.get(_TEST_FILTER_ENV):
        env += ((_TEST_FILTER_ENV, test_filter),)
    # tools/pytest_main.py is the main of every host py_pytest_test: same plugin, same
    # warnings-as-errors flags, same exit code rules.
    # Bazel's host_python runs with -S (no site-packages: @pypi provides the packages), and so
    # must the guest, or the host's site-packages would add plugins the host run lacks.
    site = ("-S",) if sys.flags.no_site else ()
    argv = (sys.executable, *site, "-m", "tools.pytest_main", *_VM_PYTEST_FLAGS, *tests)
    # The guest stops pytest a little before the host stops qemu, so that a hang still ends
    # with pytest's summary, the guest's kernel log and the result line in the test log.
    guest_timeout_s = max(int(timeout_s) - _GUEST_TIMEOUT_MARGIN_S, 1)
    return initramfs.GuestCommand(argv=argv, cwd=cwd, env=env, timeout_s=guest_timeout_s)


def _check_prerequisites(kernel_dir: Path, busybox: Path) -> str:
    if os.geteuid() != 0:
        raise HarnessError("the VM tests must run as root (qemu shares / with 9p passthrough)")
    for needed in (kernel_dir / "vmlinuz", kernel_dir / "modules.load", busybox):
        if not needed.is_file():
            raise HarnessError(f"{needed} is missing (see tools/vm/kernel.bzl)")
    try:
        return qemu.find_qemu()
    except FileNotFoundError as err:
        raise HarnessError(str(err)) from err


def _make_scratch_disk(path: Path) -> None:
    # Sparse: only what the tests write takes host disk space. mkfs.ext4 lives in /usr/sbin,
    # which Bazel's strict test PATH leaves out.
    mkfs = shutil.which("mkfs.ext4", path=f"/usr/sbin:/sbin:{os.environ.get('PATH', '')}")
    if mkfs is None:
        raise HarnessError("mkfs.ext4 is missing; install the Debian package e2fsprogs")
    with path.open("wb") as image:
        image.truncate(_SCRATCH_DISK_BYTES)
    subprocess.run([mkfs, "-q", "-F", "-m", "0", "-L", "vm-tmp", str(path)], check=True)


def per_file_summary(console: str) -> dict[str, dict[str, int]]:
    """Counts pytest -v outcomes per test file, e.g. {"a_test.py": {"PASSED": 3}}."""
    summary: dict[str, dict[str, int]] = {}
    for path, outcome in _OUTCOME_RE.findall(console.replace("\r", "")):
        counts = summary.setdefault(path, {})
        counts[outcome] = counts.get(outcome, 0) + 1
    return summary


def run(args: argparse.Namespace) -> result.GuestResult:
    """Boots the VM with the test files of ``args`` and returns what the guest reported.

    Raises:
        HarnessError: A prerequisite is missing, qemu timed out, or the guest printed no
            result.
    """
    kernel_dir = Path(args.kernel).parent
    busybox = Path(args.busybox)
    qemu_bin = _check_prerequisites(kernel_dir, busybox)
    tests = sorted({t for t in args.tests if t.endswith("_test.py")})
    if not tests:
        raise HarnessError(f"no *_test.py among the given files: {args.tests}")
    print(f"VM harness: running {len(tests)} test file(s) on cgroup v2:", *tests, sep="\n  ")
    with tempfile.TemporaryDirectory(dir=os.environ.get("TEST_TMPDIR")) as tmp:
        image = Path(tmp) / "initramfs.cpio.gz"
        modules = initramfs.read_load_list(kernel_dir)
        initramfs.build(
            image, busybox=busybox, modules=modules, command=_guest_command(tests, args.timeout_s)
        )
        disk = Path(tmp) / "scratch.img"
        _make_scratch_disk(disk)
        config = qemu.VmConfig(
            kernel=kernel_dir / "vmlinuz",
            initramfs=image,
            scratch_disk=disk,
            timeout_s=args.timeout_s,
        )
        vm = qemu.boot(qemu_bin, config, lambda text: print(text, end="", flush=True))
    print(f"\nVM harness: qemu exited with {vm.exit_code} after {vm.seconds:.0f} s")
    for path, counts in sorted(per_file_summary(vm.console).items()):
        print(f"VM harness: {path}: {counts}")
    if vm.timed_out:
        raise HarnessError(f"qemu killed after the {args.timeout_s:.0f} s timeout")
    guest = result.parse(vm.console)
    if guest is None:
        raise HarnessError("the guest printed no result line; it crashed (see the log above)")
    return guest


def main(argv: list[str]) -> int:
    """Runs the VM tests; returns the process exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--kernel", required=True, help="vmlinuz, with modules.load and modules/ beside it"
    )
    parser.add_argument("--busybox", default="/bin/busybox", help="a static busybox binary")
    parser.add_argument("--timeout_s", type=float, default=1200.0, help="kill qemu after this")
    parser.add_argument("tests", nargs="+", help="test files; only *_test.py are run")
    args = parser.parse_args(argv)
    try:
        guest = run(args)
    except HarnessError as err:
        print(f"VM harness FAILED: {err}", file=sys.stderr)
        return 1
    print(f"VM harness: guest kernel {guest.kernel}, controllers {' '.join(guest.controllers)}")
    if guest.reason:
        print(f"VM harness FAILED: guest setup failed: {guest.reason}", file=sys.stderr)
        return 1
    if guest.cgroup_fs != "cgroup2fs":
        print(f"VM harness FAILED: /sys/fs/cgroup is {guest.cgroup_fs}, not v2", file=sys.stderr)
        return 1
    if guest.rc != 0:
        print(f"VM harness FAILED: pytest exited {guest.rc} on cgroup v2", file=sys.stderr)
        return 1
    print("VM harness: all tests passed on cgroup v2 (cgroup2fs)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
