"""vm_pytest_test: runs pytest test files inside a qemu VM booted on cgroup v2."""

def vm_pytest_test(name, tests, deps = [], timeout_s = 1200, tags = [], **kwargs):
    """Boots Debian's kernel under qemu and runs pytest on `tests` there, on cgroup v2.

    The guest sees the host's root read-only (9p) under a tmpfs overlay, and runs the same
    interpreter, runfiles and pytest flags (//tools:pytest_main.py) as a host
    py_pytest_test. The test fails unless pytest exits 0 in a guest whose /sys/fs/cgroup is
    cgroup2; it fails, never skips, when not root or when qemu or the kernel is missing.

    Args:
      name: the test target's name.
      tests: labels of test files, or of filegroups holding them (e.g. a package's py_srcs);
        only the files named *_test.py are run, the others are their helpers.
      deps: py_library deps of the tests.
      timeout_s: qemu is killed after this many seconds (TCG is slow: give it room).
      tags: extra tags; "local" (qemu, 9p passthrough of /), "exclusive" (the VM wants both
        cores, and the throttling tests in it want them undisturbed) and "kernel" (root, as
        for every kernel test: tools/testing/pytest_plugin.py) are always set.
      **kwargs: passed through to py_test.
    """
    native.py_test(
        name = name,
        srcs = ["//tools/vm:vm_test_main.py", "//tools:pytest_main.py"],
        main = "//tools/vm:vm_test_main.py",
        deps = deps + [
            "//tools/vm",
            "//tools/testing",
            "@pypi//:pytest",
        ],
        data = tests + ["@vm_kernel//:kernel", "@vm_kernel//:vmlinuz"],
        args = [
            "--kernel=$(rootpath @vm_kernel//:vmlinuz)",
            "--timeout_s=%d" % timeout_s,
        ] + ["$(rootpaths %s)" % t for t in tests],
        size = "enormous",
        tags = tags + ["local", "exclusive", "kernel"],
        python_version = "PY3",
        srcs_version = "PY3",
        **kwargs
    )
