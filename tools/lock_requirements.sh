#!/usr/bin/env bash
# Regenerates requirements_lock.txt from requirements.in: the one way to change the lock.
#
#   tools/lock_requirements.sh            # re-resolve, keeping the pins that still satisfy .in
#   tools/lock_requirements.sh --upgrade  # move every pin to the newest allowed release
#
# The resolver is uv, pinned below so that the same input gives the same lock; it resolves for
# the one platform the build runs on (CPython 3.11, x86_64 glibc >= 2.28) and records the
# sha256 of every file, which tools/pypi.bzl installs with pip --require-hashes.
set -euo pipefail

readonly UV_VERSION=0.13.9
cd "$(dirname "$0")/.."

uv=(uv)
if [[ "$(uv --version 2>/dev/null)" != "uv ${UV_VERSION} "* ]]; then
  # The registry copy of the pinned resolver, installed into a throwaway virtualenv.
  venv="$(mktemp -d)"
  trap 'rm -rf "${venv}"' EXIT
  python3 -m venv "${venv}"
  "${venv}/bin/pip" install --quiet "uv==${UV_VERSION}"
  uv=("${venv}/bin/uv")
fi

"${uv[@]}" pip compile \
  --quiet \
  --generate-hashes \
  --python-version 3.11 \
  --python-platform x86_64-manylinux_2_28 \
  --custom-compile-command tools/lock_requirements.sh \
  --output-file requirements_lock.txt \
  "$@" \
  requirements.in
