"""pki_tool: creates the development PKI.

Usage: ``tools/bazel run //api:pki_tool -- init --dir DIR`` writes ca, server, alice, bob
and admin credentials into DIR (see api/certificates.py for the certificate profile).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from absl import app, flags

from api import pki

_DIR = flags.DEFINE_string(
    "dir",
    None,
    "Directory to write the PKI into (required); relative to where you ran the command.",
)


def main(argv: Sequence[str]) -> None:
    """Runs the ``init`` command."""
    if list(argv[1:]) != ["init"] or not _DIR.value:
        raise app.UsageError("usage: pki_tool init --dir DIR")
    # Under `bazel run` the process starts in the runfiles tree; resolve against the
    # directory the user typed the command in.
    directory = Path(os.environ.get("BUILD_WORKING_DIRECTORY", ".")) / _DIR.value
    pki.create_dev_pki(directory)
    print(f"wrote the dev PKI to {directory}")


if __name__ == "__main__":
    app.run(main)
