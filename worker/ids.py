"""Job ids: random, unguessable, URL-safe tokens."""

from __future__ import annotations

import re
import secrets

# 16 random bytes are 128 bits, above the 122 bits of a random UUID, and encode to exactly
# 22 URL-safe base64 characters (secrets.token_urlsafe strips the "==" padding).
ID_BYTES = 16
ID_LENGTH = 22
_ID_PATTERN = re.compile(rf"[A-Za-z0-9_-]{{{ID_LENGTH}}}")


def new_job_id() -> str:
    """Returns a fresh job id from the operating system's CSPRNG (secrets module).

    An id never starts with "-", so that ``jobctl logs $id`` and every other command line
    never mistake one for an option. Redrawing 1 in 64 ids costs 6/64 of a bit: at least
    127.9 bits remain.
    """
    while (job_id := secrets.token_urlsafe(ID_BYTES)).startswith("-"):
        continue
    return job_id


def is_job_id(text: object) -> bool:
    """Returns True when ``text`` has the shape of a job id.

    Only the shape is checked, cheaply and without touching any table, so that a malformed id
    never reaches a file or cgroup path.
    """
    return isinstance(text, str) and _ID_PATTERN.fullmatch(text) is not None
