"""Repository rules for the host Python toolchain and the locked third-party packages.

These stand in for rules_python (which cannot be fetched offline for Bazel 4.2.3):

- `host_python` finds `python3` on PATH, checks its version, and declares it as the Python
  toolchain, so tests, binaries and pip all use one interpreter.
- `pypi_install` runs `pip install --require-hashes --no-deps --only-binary=:all: --target` on
  the hash-locked requirements, then generates one `py_library` per installed distribution from
  its `*.dist-info/RECORD` (the exact file list) and `METADATA` (`Requires-Dist`, for deps).
  Labels are `@pypi//:<name>` with the name normalised as in PEP 503 with underscores
  (`absl_py`, `grpcio_tools`, `types_protobuf`).

These rules go away with third_party/ on the move to bzlmod (the TODO in MODULE.bazel).
"""

def _host_python_impl(rctx):
    python = rctx.which("python3")
    if python == None:
        fail("host_python: no python3 on PATH")
    result = rctx.execute([
        python,
        "-c",
        "import sys; print(sys.executable); print('%d.%d' % sys.version_info[:2])",
    ])
    if result.return_code != 0:
        fail("host_python: %s failed: %s" % (python, result.stderr))
    executable, version = result.stdout.strip().split("\n")
    if version != rctx.attr.python_version:
        fail("host_python: %s is Python %s, but the lock is for Python %s" % (
            executable,
            version,
            rctx.attr.python_version,
        ))
    rctx.file("interpreter_path.txt", executable + "\n")

    # -S: no site module, so the interpreter's own site-packages (on a developer machine, full
    # of pip-installed packages) are not importable; a target sees exactly its declared deps.
    rctx.file("python3", "#!/bin/sh\nexec '%s' -S \"$@\"\n" % executable, executable = True)
    rctx.file("BUILD.bazel", """\
load("@bazel_tools//tools/python:toolchain.bzl", "py_runtime_pair")

exports_files(["interpreter_path.txt"])

# The host interpreter found by the host_python repository rule ({executable}), started through
# a wrapper that isolates it from its site-packages.
py_runtime(
    name = "py3_runtime",
    interpreter = "python3",
    python_version = "PY3",
    stub_shebang = "#!{executable}",
)

py_runtime_pair(
    name = "runtime_pair",
    py3_runtime = ":py3_runtime",
)

toolchain(
    name = "toolchain",
    toolchain = ":runtime_pair",
    toolchain_type = "@bazel_tools//tools/python:toolchain_type",
)
""".format(executable = executable))

host_python = repository_rule(
    implementation = _host_python_impl,
    attrs = {
        "python_version": attr.string(mandatory = True, doc = "Required MAJOR.MINOR."),
    },
    environ = ["PATH", "PYENV_VERSION"],
    local = True,
    doc = "Declares the python3 on PATH as the Python toolchain (register @NAME//:toolchain).",
)

def _pypi_install_impl(rctx):
    python = rctx.read(rctx.attr.interpreter).strip()
    lock = rctx.path(rctx.attr.requirements_lock)
    rctx.report_progress("pip install -r %s" % lock)
    result = rctx.execute(
        [
            python,
            "-m",
            "pip",
            "install",
            "--require-hashes",
            "--no-deps",
            "--only-binary=:all:",
            "--no-compile",
            "--no-warn-script-location",
            "--disable-pip-version-check",
            "--target=site",
            "--requirement=%s" % lock,
        ],
        timeout = rctx.attr.timeout,
        environment = {"PYTHONNOUSERSITE": "1"},
        quiet = True,
    )
    if result.return_code != 0:
        fail("pypi_install: pip install failed (%d):\n%s\n%s" % (
            result.return_code,
            result.stdout,
            result.stderr,
        ))
    result = rctx.execute([
        python,
        rctx.path(rctx.attr._generator),
        "site",
        "BUILD.bazel",
    ])
    if result.return_code != 0:
        fail("pypi_install: generating BUILD.bazel failed:\n%s" % result.stderr)

pypi_install = repository_rule(
    implementation = _pypi_install_impl,
    attrs = {
        "requirements_lock": attr.label(mandatory = True, allow_single_file = True),
        "interpreter": attr.label(
            mandatory = True,
            allow_single_file = True,
            doc = "interpreter_path.txt of a host_python repository.",
        ),
        "timeout": attr.int(default = 1200, doc = "Seconds pip may take."),
        "_generator": attr.label(default = "//tools:pypi_build_gen.py", allow_single_file = True),
    },
    doc = "pip-installs a hash-locked requirements file; one py_library per distribution.",
)
