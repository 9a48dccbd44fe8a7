"""What a job cannot reach, probed from inside it: the seccomp filter and its namespaces."""

from __future__ import annotations

import ctypes
import json
import os
import platform
from pathlib import Path

import pytest

from worker.seccomp import denied_syscalls
from worker.spawner import Spawner
from worker.testing_spawner import PYTHON, request, run

pytestmark = pytest.mark.kernel

# Each denied call with harmless arguments, as a hostile job would try it; the filter must
# answer EPERM before the kernel looks at them.
_SYSCALLS = """
import ctypes, errno, json, os, platform
libc = ctypes.CDLL(None, use_errno=True)
x86 = platform.machine() == "x86_64"
numbers = {"unshare": 272 if x86 else 97, "mount": 165 if x86 else 40,
           "bpf": 321 if x86 else 280, "keyctl": 250 if x86 else 219,
           "clone3": 435, "getpid": 39 if x86 else 172}
result = {}
for name, number in numbers.items():
    value = libc.syscall(number, 0x10000000 if name == "unshare" else 0, 0, 0, 0, 0)
    result[name] = value if name == "getpid" else -ctypes.get_errno()
if x86:  # The same call through the x32 ABI, which numbers it with bit 30 set.
    libc.syscall(0x40000000 | 39)
    result["x32 getpid"] = -ctypes.get_errno()
    # int 0x80 from a 64-bit process enters the i386 table (arch AUDIT_ARCH_I386).
    code = bytes.fromhex("b814000000cd80c3")  # mov eax, 20 (getpid); int 0x80; ret
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int, ctypes.c_long]
    page = libc.mmap(None, 4096, 7, 0x22, -1, 0)  # RWX, MAP_PRIVATE | MAP_ANONYMOUS.
    ctypes.memmove(page, code, len(code))
    result["i386 getpid"] = ctypes.CFUNCTYPE(ctypes.c_int)(page)()
print(json.dumps(result))
"""


async def test_the_filter_refuses_what_docker_refuses_with_eperm(tmp_path: Path) -> None:
    async with await Spawner.start() as spawner:
        status, output = await run(spawner, request(PYTHON, "-c", _SYSCALLS), tmp_path / "log")
    assert status.exit_code == 0, output
    seen = json.loads(output)
    eperm = -1
    assert seen.pop("getpid") == 2  # Allowed calls still work: the program is pid 2.
    assert seen.pop("clone3") == -38  # ENOSYS, so that glibc falls back to clone.
    expected = dict.fromkeys(("unshare", "mount", "bpf", "keyctl"), eperm)
    if platform.machine() == "x86_64":
        expected |= {"x32 getpid": eperm, "i386 getpid": eperm}
    assert seen == expected


def test_the_deny_list_covers_the_issues_minimum() -> None:
    minimum = {
        "unshare", "setns", "mount", "umount2", "pivot_root", "bpf", "perf_event_open",
        "userfaultfd", "keyctl", "add_key", "request_key", "kexec_load", "kexec_file_load",
        "init_module", "finit_module", "delete_module", "open_by_handle_at", "swapon",
        "swapoff", "reboot",
    }  # fmt: skip
    assert minimum <= set(denied_syscalls())


# What the job sees of the host: its SysV IPC, its POSIX message queues, its name.
_NAMESPACES = """
import ctypes, json, os, socket
libc = ctypes.CDLL(None, use_errno=True)
shm = open("/proc/sysvipc/shm").read().splitlines()[1:]
mq = libc.mq_open(b"/" + os.environ["QUEUE"].encode(), 0)  # O_RDONLY
print(json.dumps({"shm": shm, "mq": [mq, ctypes.get_errno()], "host": socket.gethostname(),
                  "cgroup": sorted({l.rpartition(":")[2] for l in open("/proc/self/cgroup")})}))
"""


async def test_ipc_uts_and_cgroup_namespaces_are_the_jobs_own(tmp_path: Path) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    segment = libc.shmget(0, 4096, 0o1600)  # IPC_PRIVATE, IPC_CREAT | 0600.
    queue = f"jobworker-test-{os.getpid()}"
    libc.mq_open.restype = ctypes.c_int
    mqd = libc.mq_open(f"/{queue}".encode(), 0o100 | 0o2, 0o644, None)  # O_CREAT|O_RDWR.
    assert segment >= 0 and mqd >= 0, ctypes.get_errno()
    try:
        job = request(PYTHON, "-c", _NAMESPACES)
        job = type(job)(job.argv, {"QUEUE": queue}, "/", job.uid, job.gid, (), "job-probe")
        async with await Spawner.start() as spawner:
            status, output = await run(spawner, job, tmp_path / "log")
    finally:
        libc.shmctl(segment, 0, None)  # IPC_RMID
        libc.mq_close(mqd)
        libc.mq_unlink(f"/{queue}".encode())
    assert status.exit_code == 0, output
    assert json.loads(output) == {
        "shm": [],  # The host's segment is not in the job's IPC namespace.
        "mq": [-1, 2],  # ENOENT: nor is its message queue.
        "host": "job-probe",
        "cgroup": ["/\n"],  # Its cgroup namespace's root, in every hierarchy.
    }
