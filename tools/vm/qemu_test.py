from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tools.vm import qemu


def _fake_qemu(tmp_path: Path, body: str) -> str:
    # Stands in for qemu-system-x86_64: the harness's flags are ignored, the body prints and
    # behaves like a guest that finishes, crashes or hangs.
    script = tmp_path / "fake-qemu"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(0o755)
    return str(script)


def _config(tmp_path: Path, timeout_s: float) -> qemu.VmConfig:
    return qemu.VmConfig(
        kernel=tmp_path / "vmlinuz",
        initramfs=tmp_path / "initramfs",
        scratch_disk=tmp_path / "disk",
        timeout_s=timeout_s,
    )


def test_argv_has_the_verified_recipe(tmp_path: Path) -> None:
    argv = qemu.argv("/usr/bin/qemu-system-x86_64", _config(tmp_path, 1))
    assert argv[:4] == ["setpriv", "--pdeathsig", "KILL", "/usr/bin/qemu-system-x86_64"]
    joined = " ".join(argv)
    for flags in (
        "-accel tcg -cpu max",
        "-nographic -no-reboot",
        "-smp 2 -m 1024",
        "-virtfs local,path=/,mount_tag=host,security_model=passthrough,readonly=on,"
        "multidevs=remap",
        f"-kernel {tmp_path}/vmlinuz -initrd {tmp_path}/initramfs",
    ):
        assert flags in joined


def test_boot_streams_the_console_and_returns_the_exit_code(tmp_path: Path) -> None:
    echoed: list[str] = []
    fake = _fake_qemu(tmp_path, "echo 'caf\u00e9 line one'; echo line two; exit 3")
    run = qemu.boot(fake, _config(tmp_path, 60), echoed.append)
    assert run.console == "caf\u00e9 line one\nline two\n"
    assert "".join(echoed) == run.console
    assert (run.exit_code, run.timed_out) == (3, False)


def test_boot_kills_a_hung_guest_at_the_timeout(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    fake = _fake_qemu(tmp_path, f"echo $$ > {pid_file}; echo booted; exec sleep 600")
    run = qemu.boot(fake, _config(tmp_path, 5.0), lambda _: None)
    assert run.timed_out
    assert run.exit_code == -signal.SIGKILL
    assert run.console == "booted\n"
    assert not Path(f"/proc/{pid_file.read_text().strip()}").exists()


def test_qemu_dies_with_a_killed_harness(tmp_path: Path) -> None:
    # The harness process is SIGKILLed (as by a Bazel timeout); setpriv's parent-death signal
    # must take the fake qemu with it.
    pid_file = tmp_path / "pid"
    fake = _fake_qemu(tmp_path, f"echo $$ > {pid_file}; exec sleep 600")
    harness = textwrap.dedent(
        f"""
        from pathlib import Path
        from tools.vm import qemu
        config = qemu.VmConfig(Path("k"), Path("i"), Path("d"), timeout_s=600)
        qemu.boot({fake!r}, config, print)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", harness], env={**os.environ})
    try:
        for _ in range(200):
            if pid_file.exists() and pid_file.read_text().strip():
                break
            time.sleep(0.05)
        fake_pid = int(pid_file.read_text())
    finally:
        proc.kill()
        proc.wait()
    for _ in range(200):
        if not Path(f"/proc/{fake_pid}").exists():
            break
        time.sleep(0.05)
    assert not Path(f"/proc/{fake_pid}").exists()


def test_find_qemu_names_the_package_when_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(FileNotFoundError, match="qemu-system-x86"):
        qemu.find_qemu()
