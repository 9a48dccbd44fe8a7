"""py_pytest_test: a py_test that runs pytest with jobworker's plugin and warning rules."""

def py_pytest_test(name, srcs, deps = [], data = [], args = [], tags = [], size = "medium", **kwargs):
    """Runs the tests in `srcs` with pytest under Bazel.

    The main is //tools:pytest_main.py. Files named `*_test.py` or `test_*.py` in `srcs` are
    passed to pytest; other files in `srcs` are helpers they import. The test fails on any pytest
    exit code but 0, including "no tests collected" (5).

    Args:
      name: the test target's name.
      srcs: the test files and their local helpers.
      deps: py_library deps; pytest and //tools/testing (the plugin) are always added.
      data: runfiles the tests read.
      args: extra pytest arguments, after the test files.
      tags: Bazel tags; tests that touch the kernel (cgroups, namespaces, jobs) need "local".
      size: Bazel test size (sets the default timeout).
      **kwargs: passed through to py_test (e.g. timeout, shard_count, env).
    """
    test_files = [
        src
        for src in srcs
        if src.endswith("_test.py") or src.split("/")[-1].split(":")[-1].startswith("test_")
    ]
    if not test_files:
        fail("py_pytest_test %s: no *_test.py or test_*.py in srcs" % name)
    main = "//tools:pytest_main.py"
    always = {
        "//tools/testing": ["//tools/testing", "//tools/testing:testing"],
        "@pypi//:pytest": ["@pypi//:pytest"],
    }
    extra_deps = [
        label
        for label, spellings in always.items()
        if not [s for s in spellings if s in deps]
    ]
    native.py_test(
        name = name,
        srcs = srcs + [main],
        main = main,
        deps = deps + extra_deps,
        data = data,
        args = ["$(rootpath %s)" % src for src in test_files] + args,
        tags = tags,
        size = size,
        python_version = "PY3",
        srcs_version = "PY3",
        **kwargs
    )
